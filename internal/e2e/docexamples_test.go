package e2e

// docexamples_test.go: every example command of the README, of docs/ and of
// every `sluice <command> --help` is run. TestDocExamples extracts them (a
// command line starting with sluice, ffmpeg, go, etcd, etcdctl or bash,
// after optional VAR=value assignments, with its backslash continuations;
// `export` and VAR=value lines set the variables of the rest of their
// block), points their hosts at processes of the test — one `sluice serve`
// for the :8080 and :8090 hosts, three senders for the :900x hosts, a plain
// etcd for :2379, or the block's own etcd once the block started one — and
// runs each: a one-shot command (etcdctl too) must exit 0; a role (serve,
// ingest, origin, distribution, sender, scheduler, etcd) must answer its
// health check; a `sluice push` must store fragments; an ffmpeg push runs
// for 3 s of media and must exit 0 and be stored. An etcd example with TLS
// (--cert-file, --key-file, --trusted-ca-file) gets the files it names, and
// client.pem/client.key, from a CA the test makes. The rewrites are the ones
// a reader makes (host names, ports, data directories, certificates, a
// sample file for movie.mp4); everything else — flags, paths, point names,
// users, quoting — runs as documented, so an example that is wrong for
// `sluice serve` fails here.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/membership"
)

// docExample is one example command and where it was found.
type docExample struct {
	where string // file or "sluice <cmd> --help", with the line
	block int    // the code block (commands of one block share its background processes)
	line  string // as written, continuations joined
	env   map[string]string
}

// exampleStart matches the first line of an example command.
var exampleStart = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*=\S* +)*(sluice|ffmpeg|go|etcd|etcdctl|bash) `)

// assignment matches a shell variable assignment (VAR=value).
var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// extractExamples returns the example commands of text: in Markdown, the
// lines of fenced sh/bash/untagged blocks; in help texts (md false), the
// indented lines. `export K=V ...` and `K=V ...` lines set the environment
// of the commands after them in the same block.
func extractExamples(where, text string, md bool) []docExample {
	var out []docExample
	lines := strings.Split(text, "\n")
	fenced, in, block := false, !md, 0
	env := map[string]string{}
	for i := 0; i < len(lines); i++ {
		raw := lines[i]
		l := strings.TrimSpace(raw)
		if md && strings.HasPrefix(l, "```") {
			lang := strings.TrimPrefix(l, "```")
			fenced = !fenced
			in = fenced && (lang == "" || lang == "sh" || lang == "bash" || lang == "console")
			block++
			env = map[string]string{}
			continue
		}
		if !in {
			continue
		}
		if !md && strings.HasPrefix(raw, "Flags:") {
			break // the flag descriptions are not examples
		}
		if !md && !strings.HasPrefix(raw, "  ") {
			continue
		}
		if !exampleStart.MatchString(l) {
			if a := strings.TrimPrefix(l, "export "); assignment.MatchString(a) {
				words, _ := shellWords(a, func(k string) string { return env[k] })
				for _, w := range words {
					if k, v, ok := strings.Cut(w, "="); ok && assignment.MatchString(w) {
						env[k] = v
					}
				}
			}
			continue
		}
		start := i
		cmd := l
		for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, `\`) + " " + strings.TrimSpace(lines[i])
		}
		e := docExample{where: fmt.Sprintf("%s:%d", where, start+1), block: block, line: cmd, env: map[string]string{}}
		for k, v := range env {
			e.env[k] = v
		}
		out = append(out, e)
	}
	return out
}

// yamlFile matches the first line of a YAML block that names its file.
var yamlFile = regexp.MustCompile(`^# ([A-Za-z0-9_.-]+\.yaml)\b`)

// extractYAMLFiles returns the YAML blocks of a Markdown text whose first
// line names a file ("# origin-1.yaml ..."): the files its commands read.
func extractYAMLFiles(text string) map[string]string {
	files := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(text, -1) {
		first, _, _ := strings.Cut(m[1], "\n")
		if f := yamlFile.FindStringSubmatch(first); f != nil {
			files[f[1]] = m[1]
		}
	}
	return files
}

// writeYAML writes a documented configuration file into the examples'
// directory with its hosts pointed at the test's processes and its data
// directory in the test's directory; listen stays (the --listen the run
// adds overrides it).
func (e *docEnv) writeYAML(name, content string) {
	var out []string
	for _, l := range strings.Split(content, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "listen:"):
		case strings.HasPrefix(strings.TrimSpace(l), "data:"):
			l = "data: " + filepath.Join(e.dir, "data-"+strings.TrimSuffix(name, ".yaml"))
		default:
			words, _ := e.rewrite([]string{l})
			l = words[0]
		}
		out = append(out, l)
	}
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(strings.Join(out, "\n")), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// shellWords splits a command as sh would for these examples: single
// quotes, double quotes with $VAR expanded from env, an unquoted $VAR
// expanded and split at white space, a comment from an unquoted " #", a
// trailing "&".
func shellWords(s string, env func(string) string) (words []string, background bool) {
	var w strings.Builder
	have := false
	flush := func() {
		if have {
			words = append(words, w.String())
			w.Reset()
			have = false
		}
	}
	expand := func(rs []rune, i int) (string, int) {
		j := i + 1
		for j < len(rs) && (rs[j] == '_' || rs[j] >= 'A' && rs[j] <= 'Z' || rs[j] >= 'a' && rs[j] <= 'z' || rs[j] >= '0' && rs[j] <= '9') {
			j++
		}
		return env(string(rs[i+1 : j])), j
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			w.WriteString(string(rs[i+1 : j]))
			have, i = true, j
		case r == '"':
			j := i + 1
			for j < len(rs) && rs[j] != '"' {
				if rs[j] == '$' {
					v, k := expand(rs, j)
					w.WriteString(v)
					j = k
					continue
				}
				w.WriteRune(rs[j])
				j++
			}
			have, i = true, j
		case r == '$':
			// Unquoted: the value is split into words at white space.
			v, k := expand(rs, i)
			for j, f := range strings.Fields(v) {
				if j > 0 {
					flush()
				}
				w.WriteString(f)
				have = true
			}
			i = k - 1
		case r == '#' && !have:
			flush()
			return words, background
		case r == ' ' || r == '\t':
			flush()
		default:
			w.WriteRune(r)
			have = true
		}
	}
	flush()
	if n := len(words); n > 0 && words[n-1] == "&" {
		words, background = words[:n-1], true
	}
	return words, background
}

// notRun lists the examples this test does not run, each with the reason
// and the test that covers what it shows. An entry that matches no example
// any more fails the test, so the list cannot outlive the docs.
var notRun = map[string]string{}

// docEnv is the world the examples run in.
type docEnv struct {
	t       *testing.T
	root    string
	bin     string
	dir     string // working directory of the examples
	art     string
	serve   string   // base URL of the sluice serve (http://127.0.0.1:port)
	data    string   // its data directory
	senders []string // base URLs of the three senders, secret S
	etcd    string   // base URL of the plain etcd
	// blockEtcd is the base URL of the etcd the current block started
	// (an etcd example), which its :2379 hosts then stand for.
	blockEtcd string
	token     string // admin token of serve
	n         int
}

var hostPort = regexp.MustCompile(`(https?://)?([A-Za-z0-9.-]*):([0-9]{2,5})\b`)

// rewrite points the example's hosts at the test's processes and its data
// directories into the test's directory; it returns the words to run and,
// for a role, the address it listens on.
func (e *docEnv) rewrite(words []string) ([]string, string) {
	out := make([]string, 0, len(words)+2)
	senderOf := map[string]string{}
	listen := ""
	role := len(words) > 1 && words[0] == "sluice" && isRole(words[1])
	for i := 0; i < len(words); i++ {
		w := words[i]
		if (w == "--listen" || w == "-listen") && i+1 < len(words) {
			listen = fmt.Sprintf("127.0.0.1:%d", freePort(e.t))
			out = append(out, w, listen)
			i++
			continue
		}
		if (w == "--dns-listen" || w == "--owner-set-url") && i+1 < len(words) {
			// A DNS server on a free port instead of 53 (which needs
			// root); a host name template is not a host to map.
			v := words[i+1]
			if w == "--dns-listen" {
				v = fmt.Sprintf("127.0.0.1:%d", freePort(e.t))
			}
			out = append(out, w, v)
			i++
			continue
		}
		if role && words[1] == "sender" && i > 0 && words[i-1] == "--data" && filepath.IsAbs(w) {
			w = filepath.Join(e.dir, "sender"+strings.ReplaceAll(w, "/", "-")) // a block directory of its own
		} else if w == "./data" || (i > 0 && words[i-1] == "--data" && filepath.IsAbs(w)) {
			w = e.data // the server's data directory
		} else if strings.HasPrefix(w, "./") && i > 0 && (words[i-1] == "--data" || words[i-1] == "--data-dir") {
			w = filepath.Join(e.dir, w)
		} else if strings.HasPrefix(w, "testdata/") {
			w = filepath.Join(e.root, w)
		} else if w == "movie.mp4" {
			w = filepath.Join(e.root, "testdata", "sample", "sample.mp4")
		}
		w = hostPort.ReplaceAllStringFunc(w, func(m string) string {
			sub := hostPort.FindStringSubmatch(m)
			scheme, host, port := sub[1], sub[2], sub[3]
			if scheme == "" && host == "" {
				return m
			}
			switch {
			case port == "8080" || port == "8090":
				return e.serve
			case port == "2379" && e.blockEtcd != "":
				return e.blockEtcd
			case port == "2379":
				return e.etcd
			case strings.HasPrefix(port, "900"):
				k := host + ":" + port
				if _, ok := senderOf[k]; !ok {
					senderOf[k] = e.senders[len(senderOf)%len(e.senders)]
				}
				return senderOf[k]
			}
			return m
		})
		out = append(out, w)
	}
	if role && listen == "" {
		listen = fmt.Sprintf("127.0.0.1:%d", freePort(e.t))
		out = append(out[:2], append([]string{"--listen", listen}, out[2:]...)...)
	}
	if len(out) > 0 && out[0] == "sluice" {
		out[0] = e.bin
	}
	return out, listen
}

func isRole(cmd string) bool {
	switch cmd {
	case "serve", "ingest", "origin", "distribution", "sender", "scheduler":
		return true
	}
	return false
}

// pointOf is the publishing point of a push URL.
func pointOf(u string) string {
	i := strings.Index(u, "://")
	rest := u[i+3:]
	rest = rest[strings.Index(rest, "/")+1:]
	return rest[:strings.Index(rest, ".isml/")]
}

// storedFragments is the number of fragments serve holds of a point.
func (e *docEnv) storedFragments(point string) (int, ingest.StreamManifest) {
	var sm ingest.StreamManifest
	resp, err := http.Get(e.serve + "/" + point + ".isml/StreamManifest")
	if err != nil {
		return 0, sm
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&sm) != nil {
		return 0, sm
	}
	n := 0
	for _, s := range sm.Streams {
		for _, tr := range s.Tracks {
			n += tr.Fragments
		}
	}
	return n, sm
}

// run executes one example. Processes it leaves running (roles, background
// commands) are returned to be stopped at the end of its block.
func (e *docEnv) run(t *testing.T, ex docExample) []*proc {
	env := func(k string) string {
		if v, ok := ex.env[k]; ok {
			return v
		}
		switch k {
		case "TOKEN":
			return e.token
		case "SLUICE_CLUSTER_SECRET":
			return "S"
		}
		return os.Getenv(k)
	}
	words, _ := shellWords(ex.line, env)
	e.n++
	logPath := filepath.Join(e.art, fmt.Sprintf("example-%02d.log", e.n))
	// The children inherit the test's environment: the block's variables
	// (their hosts pointed at the test's, as in a command), the cluster
	// secret of the senders (S) and the admin token; VAR=value before the
	// command sets VAR for that command only.
	t.Setenv("SLUICE_CLUSTER_SECRET", env("SLUICE_CLUSTER_SECRET"))
	t.Setenv("TOKEN", e.token)
	for k, v := range ex.env {
		vs, _ := e.rewrite([]string{v})
		t.Setenv(k, vs[0])
	}
	for len(words) > 1 && assignment.MatchString(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		prev, had := os.LookupEnv(k)
		t.Setenv(k, v)
		defer func() {
			if had {
				os.Setenv(k, prev)
			} else {
				os.Unsetenv(k)
			}
		}()
		words = words[1:]
	}
	oneShot := func(argv []string, dir string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		os.WriteFile(logPath, out, 0o644)
		if err != nil {
			t.Fatalf("%s: %q: %v\n%s", ex.where, argv, err, out)
		}
	}
	switch words[0] {
	case "go":
		switch {
		case len(words) > 2 && words[1] == "install":
			oneShot(words, e.root) // with GOBIN in the test's directory
		case len(words) > 2 && words[1] == "build":
			argv := append([]string(nil), words...)
			for i := range argv {
				if i > 0 && argv[i-1] == "-o" {
					argv[i] = filepath.Join(e.dir, "built-"+strconv.Itoa(e.n))
				}
			}
			oneShot(argv, e.root)
		case len(words) > 1 && words[1] == "run":
			// `go run ./cmd/sluice serve` is `sluice serve` (run below) built
			// by go run: check that it builds.
			oneShot([]string{"go", "build", "-o", filepath.Join(e.dir, "run-"+strconv.Itoa(e.n)), words[2]}, e.root)
		case len(words) > 1 && words[1] == "test":
			e.listTests(t, ex, words)
		default:
			t.Fatalf("%s: no way to run %q", ex.where, ex.line)
		}
		return nil
	case "bash":
		// The whole suite cannot run inside itself: its script must parse.
		oneShot([]string{"bash", "-n", filepath.Join(e.root, words[1])}, e.root)
		return nil
	case "etcd":
		return []*proc{e.startEtcd(t, words, logPath)}
	case "etcdctl":
		argv, _ := e.rewrite(words)
		oneShot(argv, e.dir)
		return nil
	case "ffmpeg":
		words, _ := e.rewrite(words)
		url := words[len(words)-1]
		before, _ := e.storedFragments(pointOf(url))
		runFFmpeg(t, finitePush(t, words, url, 3))
		if after, _ := e.storedFragments(pointOf(url)); after <= before {
			t.Fatalf("%s: the push stored nothing (%d fragments before, %d after)", ex.where, before, after)
		}
		return nil
	}
	if words[0] != "sluice" {
		t.Fatalf("%s: no way to run %q", ex.where, ex.line)
	}
	argv, listen := e.rewrite(words)
	if len(words) == 1 || strings.HasPrefix(words[1], "-") {
		oneShot(argv, e.dir)
		return nil
	}
	switch cmd := words[1]; {
	case isRole(cmd):
		p := startProcIn(t, e.dir, "sluice "+cmd+" example", logPath, argv...)
		waitHTTP(t, "http://"+listen+"/healthz", 90*time.Second, p)
		return []*proc{p}
	case cmd == "push":
		var urls []string
		for _, w := range argv {
			if strings.Contains(w, "/Streams(") {
				urls = append(urls, w)
			}
		}
		point := pointOf(urls[0])
		before, _ := e.storedFragments(point)
		p := startProcIn(t, e.dir, "sluice push example", logPath, argv...)
		waitUntil(t, 90*time.Second, ex.where+": the push stores fragments of "+point, func() (bool, string) {
			if p.exited() && p.err != nil {
				t.Fatalf("%s: push exited: %v\n%s", ex.where, p.err, p.out)
			}
			n, _ := e.storedFragments(point)
			return n > before+2, fmt.Sprintf("%d fragments (%d before)", n, before)
		})
		p.stop(t)
		return nil
	case cmd == "archive":
		e.cut(t, ex, argv, oneShot)
		return nil
	case cmd == "sender-load" && len(argv) > 3:
		// The asset to load: a reader imports one first when the data
		// directory has none of that name.
		data, asset := argv[len(argv)-2], argv[len(argv)-1]
		if _, err := os.Stat(filepath.Join(data, asset)); err != nil {
			oneShot([]string{e.bin, "import", "--quiet", filepath.Join(e.root, "testdata", "sample", "sample.mp4"), asset, "--data", data}, e.dir)
		}
	case cmd == "sign-url":
		for i, w := range argv {
			if i > 0 && argv[i-1] == "--key-file" {
				os.WriteFile(filepath.Join(e.dir, w), []byte("a key of the doc examples\n"), 0o600)
			}
		}
	}
	oneShot(argv, e.dir)
	return nil
}

// startEtcd runs an etcd example on free loopback ports with its data
// directory in the test's. With --cert-file it serves TLS: the test makes a
// CA and writes the files the example names (--trusted-ca-file, --cert-file,
// --key-file) and a client certificate, client.pem and client.key, into the
// examples' directory; the block's :2379 hosts then stand for this etcd.
func (e *docEnv) startEtcd(t *testing.T, words []string, logPath string) *proc {
	t.Helper()
	peer, client := freePort(t), freePort(t)
	argv := []string{"etcd"}
	files := map[string]string{}
	for i := 1; i < len(words); i++ {
		w := words[i]
		if i+1 < len(words) {
			switch w {
			case "--data-dir":
				argv = append(argv, w, filepath.Join(e.dir, "etcd-"+strconv.Itoa(e.n)))
				i++
				continue
			case "--listen-client-urls", "--advertise-client-urls":
				i++ // set below, on the test's port
				continue
			case "--trusted-ca-file", "--cert-file", "--key-file":
				files[w] = words[i+1]
			}
		}
		argv = append(argv, w)
	}
	scheme := "http"
	var tlsFiles membership.TLSFiles
	if files["--cert-file"] != "" {
		scheme = "https"
		caCert, caKey := makeCA(t)
		tlsFiles.CA = writePEM(t, e.dir, files["--trusted-ca-file"], "CERTIFICATE", caCert.Raw)
		srvCert, srvKey := makeLeaf(t, caCert, caKey, "etcd", x509.ExtKeyUsageServerAuth)
		writePEM(t, e.dir, files["--cert-file"], "CERTIFICATE", srvCert)
		writePEM(t, e.dir, files["--key-file"], "EC PRIVATE KEY", srvKey)
		cliCert, cliKey := makeLeaf(t, caCert, caKey, "sluice", x509.ExtKeyUsageClientAuth)
		tlsFiles.Cert = writePEM(t, e.dir, "client.pem", "CERTIFICATE", cliCert)
		tlsFiles.Key = writePEM(t, e.dir, "client.key", "EC PRIVATE KEY", cliKey)
	}
	cu := fmt.Sprintf("%s://127.0.0.1:%d", scheme, client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	name := "default"
	for i := range argv {
		if i > 0 && argv[i-1] == "--name" {
			name = argv[i]
		}
	}
	argv = append(argv, "--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu, "--initial-cluster", name+"="+pu)
	p := startProcIn(t, e.dir, "etcd example", logPath, argv...)
	tc, err := tlsFiles.Config()
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	waitUntil(t, time.Minute, "the etcd example answers /health", func() (bool, string) {
		if p.exited() {
			t.Fatalf("etcd example exited: %v\n%s", p.err, p.out)
		}
		resp, err := c.Get(cu + "/health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	e.blockEtcd = cu
	return p
}

// cut runs an archive cut example over the point's real archive: its
// source point gets a push first when it holds nothing, and the times of
// --from and --to (seconds or RFC 3339, as written) become the range the
// archive holds.
func (e *docEnv) cut(t *testing.T, ex docExample, argv []string, oneShot func([]string, string)) {
	t.Helper()
	var pos []string
	for i := 2; i < len(argv); i++ {
		if strings.HasPrefix(argv[i], "--") {
			if argv[i] != "--json" {
				i++
			}
			continue
		}
		pos = append(pos, argv[i])
	}
	if len(pos) < 3 {
		t.Fatalf("%s: an archive cut without point and asset: %q", ex.where, argv)
	}
	point := pos[1]
	// An asset an earlier example made already has the name: a reader
	// picks a new one.
	if _, err := os.Stat(filepath.Join(e.data, pos[2])); err == nil {
		for i := range argv {
			if argv[i] == pos[2] {
				argv[i] = pos[2] + "-" + strconv.Itoa(e.n)
				break
			}
		}
	}
	if n, _ := e.storedFragments(point); n < 4 {
		p := startProc(t, "push for "+point, filepath.Join(e.art, "cut-push-"+strconv.Itoa(e.n)+".log"),
			e.bin, "push", "--quiet", "--duration", "5s", filepath.Join(e.root, "testdata", "sample", "sample.mp4"),
			e.serve+"/"+point+".isml/Streams(cut)")
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
		}
		if p.err != nil {
			t.Fatalf("push for the cut: %v\n%s", p.err, p.out)
		}
	}
	_, sm := e.storedFragments(point)
	var from, to float64
	for _, s := range sm.Streams {
		for _, tr := range s.Tracks {
			if tr.Kind != "video" || tr.Timescale == 0 {
				continue
			}
			f, l := float64(tr.First)/float64(tr.Timescale), float64(tr.Last)/float64(tr.Timescale)
			if from == 0 || f < from {
				from = f
			}
			if l > to {
				to = l
			}
		}
	}
	if to <= from {
		t.Fatalf("%s: point %s holds no video range: %+v", ex.where, point, sm)
	}
	for i := range argv {
		if i == 0 || (argv[i-1] != "--from" && argv[i-1] != "--to") {
			continue
		}
		v := from
		if argv[i-1] == "--to" {
			v = to + 1
		}
		if _, err := time.Parse(time.RFC3339, argv[i]); err == nil && from > 1e9 {
			// a wall clock, for an epoch-anchored point (else seconds)
			argv[i] = time.Unix(int64(v), 0).UTC().Format(time.RFC3339)
		} else {
			argv[i] = strconv.FormatInt(int64(v), 10)
		}
	}
	oneShot(argv, e.dir)
}

// listTests runs a documented `go test` as `go test -list`: the package
// builds and the tests or fuzz targets it names exist.
func (e *docEnv) listTests(t *testing.T, ex docExample, words []string) {
	t.Helper()
	pattern, pkg := ".", ""
	for i := 2; i < len(words); i++ {
		switch w := words[i]; {
		case (w == "-run" || w == "-fuzz") && i+1 < len(words):
			if words[i+1] != "^$" {
				pattern = words[i+1]
			}
			i++
		case w == "-fuzztime" || w == "-timeout" || w == "-count" || w == "-bench" || w == "-benchtime":
			i++
		case strings.HasPrefix(w, "./"):
			pkg = w
		}
	}
	cmd := exec.Command(goTool(), "test", "-list", pattern, pkg)
	cmd.Dir = e.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: go test -list %s %s: %v\n%s", ex.where, pattern, pkg, err, out)
	}
	found := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Test") || strings.HasPrefix(l, "Fuzz") || strings.HasPrefix(l, "Benchmark") {
			found++
		}
	}
	if found == 0 {
		t.Fatalf("%s: %q names no test of %s", ex.where, pattern, pkg)
	}
}

// TestDocExamples runs every example command of README.md, docs/*.md and
// every command's --help (see the top of this file).
func TestDocExamples(t *testing.T) {
	longTest(t)
	for _, tool := range []string{"ffmpeg", "etcd", "etcdctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing from PATH (scripts/setup.sh installs it)", tool)
		}
	}
	root := repoRoot(t)
	bin := buildSluice(t, root, "")
	tmp := t.TempDir()
	art := artifactsDir(t)
	e := &docEnv{t: t, root: root, bin: bin, dir: filepath.Join(tmp, "work"), art: art,
		data: filepath.Join(tmp, "serve-data"), token: "example-admin-token"}
	os.MkdirAll(e.dir, 0o755)
	t.Setenv("GOBIN", filepath.Join(tmp, "gobin"))

	var exs []docExample
	yamls := map[string]map[string]string{} // doc -> its configuration files
	for _, p := range append([]string{"README.md"}, mustGlob(t, filepath.Join(root, "docs", "*.md"))...) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		exs = append(exs, extractExamples(rel, string(b), true)...)
		yamls[rel] = extractYAMLFiles(string(b))
	}
	var help bytes.Buffer
	c := exec.Command(bin, "--help")
	c.Stdout = &help
	if err := c.Run(); err != nil {
		t.Fatalf("sluice --help: %v", err)
	}
	var cmds []string
	for _, l := range strings.Split(help.String(), "\n") {
		if strings.HasPrefix(l, "  ") && len(strings.Fields(l)) > 1 {
			cmds = append(cmds, strings.Fields(l)[0])
		}
	}
	sort.Strings(cmds)
	block := 1000
	for _, name := range cmds {
		out, err := exec.Command(bin, name, "--help").Output()
		if err != nil {
			t.Fatalf("sluice %s --help: %v", name, err)
		}
		for _, ex := range extractExamples("sluice "+name+" --help", string(out), false) {
			block++
			ex.block = block
			exs = append(exs, ex)
		}
	}
	if len(exs) < 30 {
		t.Fatalf("found only %d examples", len(exs))
	}

	// The processes the examples' hosts stand for: a sluice serve per
	// document (each document is read on its own: one's channels do not
	// meet another's), one etcd and three senders for all.
	var serve *proc
	newServe := func(doc string) {
		if serve != nil {
			serve.stop(t)
		}
		port := freePort(t)
		e.serve = fmt.Sprintf("http://127.0.0.1:%d", port)
		e.data = filepath.Join(tmp, "serve-data-"+strconv.Itoa(e.n))
		serve = startProc(t, "serve for "+doc, filepath.Join(art, fmt.Sprintf("serve-%02d.log", e.n)), bin, "serve", "--no-demo",
			"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data", e.data, "--admin-token", e.token)
		waitHTTP(t, e.serve+"/healthz", time.Minute, serve)
	}
	peer, client := freePort(t), freePort(t)
	e.etcd = fmt.Sprintf("http://127.0.0.1:%d", client)
	etcd := startProc(t, "etcd", filepath.Join(art, "etcd.log"), "etcd", "--data-dir", filepath.Join(tmp, "etcd"),
		"--listen-client-urls", e.etcd, "--advertise-client-urls", e.etcd,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peer))
	for i := 0; i < 3; i++ {
		sp := freePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", sp)
		p := startProc(t, "sender", filepath.Join(art, fmt.Sprintf("sender-%d.log", i)), bin, "sender",
			"--listen", fmt.Sprintf("127.0.0.1:%d", sp), "--data", filepath.Join(tmp, fmt.Sprintf("s%d", i)),
			"--ram", "64M", "--cluster-secret", "S")
		waitHTTP(t, base+"/healthz", time.Minute, p)
		e.senders = append(e.senders, base)
	}
	waitHTTP(t, e.etcd+"/health", time.Minute, etcd)

	var running []*proc
	seen := map[string]bool{}
	lastBlock, lastDoc := -1, ""
	for _, ex := range exs {
		if doc, _, _ := strings.Cut(ex.where, ":"); doc != lastDoc {
			for _, p := range running {
				p.stop(t)
			}
			running, lastBlock = nil, -1
			newServe(doc)
			for name, content := range yamls[doc] {
				e.writeYAML(name, content)
			}
			lastDoc = doc
		}
		if ex.block != lastBlock {
			for _, p := range running {
				p.stop(t)
			}
			running, lastBlock, e.blockEtcd = nil, ex.block, ""
		}
		skip := false
		for prefix, why := range notRun {
			if strings.HasPrefix(ex.line, prefix) {
				t.Logf("%s: not run (%s): %s", ex.where, why, ex.line)
				seen[prefix], skip = true, true
			}
		}
		if skip {
			continue
		}
		start := time.Now()
		running = append(running, e.run(t, ex)...)
		t.Logf("%s: ok in %v: %s", ex.where, time.Since(start).Round(100*time.Millisecond), ex.line)
	}
	for _, p := range running {
		p.stop(t)
	}
	for prefix := range notRun {
		if !seen[prefix] {
			t.Errorf("notRun lists %q, which no example starts with any more", prefix)
		}
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}
