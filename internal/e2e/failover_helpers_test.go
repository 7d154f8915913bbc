package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// roleNode is one `sluice <role>` child process on 127.0.0.1.
type roleNode struct {
	name string
	bin  string
	argv []string // after the binary
	base string   // http://127.0.0.1:port
	data string
	log  string
	p    *proc
	runs int
}

// startRole starts `sluice <role> --listen <port> --data <dir>/<name> extra...`
// and waits for /healthz.
func startRole(t *testing.T, bin, dir, role, name string, extra ...string) *roleNode {
	t.Helper()
	port := freePort(t)
	n := &roleNode{name: name, bin: bin, base: fmt.Sprintf("http://127.0.0.1:%d", port), data: filepath.Join(dir, name)}
	n.argv = append([]string{role, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data", n.data}, extra...)
	n.start(t)
	return n
}

// startIngestPair starts ingest B and ingest A, which forwards every push
// to B (push proxy); both accept pushes to the points.
func startIngestPair(t *testing.T, bin, dir string, points ...string) (a, b *roleNode) {
	t.Helper()
	var args []string
	for _, p := range points {
		args = append(args, "--point", p)
	}
	b = startRole(t, bin, dir, "ingest", "ingest-b", args...)
	a = startRole(t, bin, dir, "ingest", "ingest-a", append(args, "--standby", b.base)...)
	return a, b
}

// startPullOrigin starts an origin that pulls point live from the ingests,
// in this order of preference.
func startPullOrigin(t *testing.T, bin, dir, name string, ingests ...*roleNode) *roleNode {
	t.Helper()
	args := []string{"--point", "live"}
	for _, in := range ingests {
		args = append(args, "--ingest", in.base)
	}
	return startRole(t, bin, dir, "origin", name, args...)
}

// pushURL is the ingest URL of a point's stream of the same name.
func (n *roleNode) pushURL(point string) string {
	return n.base + "/" + point + ".isml/Streams(" + point + ")"
}

// waitReady waits until every node answers /readyz.
func waitReady(t *testing.T, timeout time.Duration, nodes ...*roleNode) {
	t.Helper()
	for _, n := range nodes {
		waitHTTP(t, n.base+"/readyz", timeout, n.p)
	}
}

// start (re)starts the process and waits until it answers /healthz.
func (n *roleNode) start(t *testing.T) {
	t.Helper()
	n.runs++
	n.log = filepath.Join(artifactsDir(t), fmt.Sprintf("%s-%d.log", n.name, n.runs))
	n.p = startProc(t, n.name, n.log, append([]string{n.bin}, n.argv...)...)
	waitHTTP(t, n.base+"/healthz", 30*time.Second, n.p)
}

// kill9 kills the process with SIGKILL and waits for it.
func (n *roleNode) kill9(t *testing.T) {
	t.Helper()
	syscall.Kill(n.p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-n.p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not die on SIGKILL", n.name)
	}
}

// logs returns the output of every run of the node (for failure reports).
func (n *roleNode) logs() string {
	var b strings.Builder
	for i := 1; i <= n.runs; i++ {
		data, _ := os.ReadFile(filepath.Join(filepath.Dir(n.log), fmt.Sprintf("%s-%d.log", n.name, i)))
		fmt.Fprintf(&b, "--- %s run %d ---\n%s", n.name, i, data)
	}
	return b.String()
}

// dumpLogs logs every node's output when the test failed.
func dumpLogs(t *testing.T, nodes ...*roleNode) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range nodes {
			if n != nil {
				t.Log(n.logs())
			}
		}
	})
}

// streamManifest fetches a node's StreamManifest of a point.
type streamManifestDoc struct {
	Anchor  time.Time `json:"anchor"`
	Streams []struct {
		ID     string `json:"id"`
		Tracks []struct {
			ID        string `json:"id"`
			Timescale uint32 `json:"timescale"`
			Ended     bool   `json:"ended"`
			Fragments int    `json:"fragments"`
			Last      int64  `json:"last"`
		} `json:"tracks"`
	} `json:"streams"`
}

func streamManifest(t *testing.T, base, point string) (streamManifestDoc, bool) {
	t.Helper()
	var sm streamManifestDoc
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(base + "/" + point + ".isml/StreamManifest")
	if err != nil {
		return sm, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&sm) != nil {
		return sm, false
	}
	return sm, true
}

// ended reports whether every track of every stream has ended.
func (sm streamManifestDoc) ended() bool {
	n := 0
	for _, s := range sm.Streams {
		for _, tr := range s.Tracks {
			if !tr.Ended {
				return false
			}
			n++
		}
	}
	return n > 0
}

// timescales maps every track to its timescale.
func (sm streamManifestDoc) timescales() map[string]uint32 {
	ts := map[string]uint32{}
	for _, s := range sm.Streams {
		for _, tr := range s.Tracks {
			ts[tr.ID] = tr.Timescale
		}
	}
	return ts
}

// waitEnded waits until point has ended on every node.
func waitEnded(t *testing.T, timeout time.Duration, point string, nodes ...*roleNode) {
	t.Helper()
	waitUntil(t, timeout, point+" ends on "+nodeNames(nodes), func() (bool, string) {
		for _, n := range nodes {
			if sm, _ := streamManifest(t, n.base, point); !sm.ended() {
				return false, n.name + " has not ended it"
			}
		}
		return true, ""
	})
}

// nodeNames lists the nodes' names.
func nodeNames(nodes []*roleNode) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.name
	}
	return strings.Join(names, ", ")
}

// fragments counts the fragments of every track.
func (sm streamManifestDoc) fragments() int {
	n := 0
	for _, s := range sm.Streams {
		for _, tr := range s.Tracks {
			n += tr.Fragments
		}
	}
	return n
}

// newest returns the newest fragment start over all tracks, in seconds.
func (sm streamManifestDoc) newest() float64 {
	n := 0.0
	for _, s := range sm.Streams {
		for _, tr := range s.Tracks {
			if tr.Fragments > 0 && tr.Timescale > 0 {
				n = max(n, float64(tr.Last)/float64(tr.Timescale))
			}
		}
	}
	return n
}

// eachFragment calls fn with the track, the start time (the file name
// without .m4s) and the bytes of every fragment file a node stored for a
// point, track by track.
func eachFragment(t *testing.T, data, point string, fn func(track, start string, b []byte)) {
	t.Helper()
	tracks, _ := os.ReadDir(filepath.Join(data, point, "t"))
	for _, tr := range tracks {
		files, _ := os.ReadDir(filepath.Join(data, point, "t", tr.Name()))
		for _, f := range files {
			start, ok := strings.CutSuffix(f.Name(), ".m4s")
			if !ok {
				continue
			}
			b, err := os.ReadFile(filepath.Join(data, point, "t", tr.Name(), f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			fn(tr.Name(), start, b)
		}
	}
}

// fragFiles maps "<track>/<start>" to the digest of every fragment file a
// node stored for a point.
func fragFiles(t *testing.T, data, point string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	eachFragment(t, data, point, func(track, start string, b []byte) {
		out[track+"/"+start] = sha256.Sum256(b)
	})
	return out
}

// sameFiles reports whether two fragment sets are equal, and how they differ.
func sameFiles(a, b map[string][32]byte) (bool, string) {
	var missing, extra, differ []string
	for k, v := range a {
		w, ok := b[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case v != w:
			differ = append(differ, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra)+len(differ) == 0 {
		return true, ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return false, fmt.Sprintf("%d vs %d fragments; missing %v; extra %v; bytes differ %v", len(a), len(b), missing, extra, differ)
}

// span is one stored fragment's time range in its track's timescale.
type span struct{ start, end int64 }

// timelines reads every fragment file of a point and returns, per track,
// the time ranges in order.
func timelines(t *testing.T, data, point string) map[string][]span {
	t.Helper()
	out := map[string][]span{}
	eachFragment(t, data, point, func(track, start string, b []byte) {
		moof, _, err := media.SplitFragment(b)
		if err != nil {
			t.Fatalf("%s/%s: %v", track, start, err)
		}
		m, err := media.DecodeMoof(moof)
		if err != nil {
			t.Fatalf("%s/%s: %v", track, start, err)
		}
		fi, err := m.Inspect(nil, uint64(len(b)))
		if err != nil {
			t.Fatalf("%s/%s: %v", track, start, err)
		}
		if strconv.FormatInt(fi.Start, 10) != start {
			t.Fatalf("fragment %s/%s.m4s holds time %d", track, start, fi.Start)
		}
		out[track] = append(out[track], span{fi.Start, fi.Start + int64(fi.Duration)})
	})
	for _, ss := range out {
		sort.Slice(ss, func(i, j int) bool { return ss[i].start < ss[j].start })
	}
	return out
}

// checkContiguous fails unless every track's fragments follow each other
// without gap or overlap (each fragment time exactly once) and cover the
// media time [from, to) seconds (to within one fragment at either end,
// since audio and video fragments do not end at the same instant).
func checkContiguous(t *testing.T, who string, tl map[string][]span, timescales map[string]uint32, from, to float64) {
	t.Helper()
	if len(tl) == 0 {
		t.Fatalf("%s: no fragments", who)
	}
	for track, ss := range tl {
		for i := 1; i < len(ss); i++ {
			if ss[i].start != ss[i-1].end {
				t.Errorf("%s %s: fragment at %d follows one ending at %d (gap or overlap)", who, track, ss[i].start, ss[i-1].end)
			}
		}
		ts := float64(timescales[track])
		if ts == 0 {
			t.Fatalf("%s %s: unknown timescale", who, track)
		}
		first, last := float64(ss[0].start)/ts, float64(ss[len(ss)-1].end)/ts
		slack := float64(ss[0].end-ss[0].start)/ts + 0.1
		if first > from+slack || last < to-slack {
			t.Errorf("%s %s: holds %.3f..%.3f s, the encoder sent %.3f..%.3f s", who, track, first, last, from, to)
		}
	}
}

// scrapeMetric sums the samples of a Prometheus metric at base/metrics
// whose label set contains every "k=\"v\"" in labels.
func scrapeMetric(base, name string, labels ...string) (float64, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// startPush starts `sluice push --quiet args... <sample> urls...` (output
// in the artifacts as <name>.log); the test's end stops it if it still runs.
func startPush(t *testing.T, bin, name string, args []string, urls ...string) *proc {
	t.Helper()
	argv := append([]string{bin, "push", "--quiet"}, args...)
	argv = append(append(argv, testmedia.Sample(t)), urls...)
	return startProc(t, name, filepath.Join(artifactsDir(t), name+".log"), argv...)
}

// waitPush waits for a push started by startPush to exit, fails the test
// unless it succeeds within timeout, and returns the media time range it
// reports.
func waitPush(t *testing.T, p *proc, timeout time.Duration) (from, to float64) {
	t.Helper()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s: %v\n%s", p.name, p.err, p.out)
		}
	case <-time.After(timeout):
		t.Fatalf("%s did not finish:\n%s", p.name, p.out)
	}
	return pushRange(t, p.out.String())
}

// pushRange parses the media time range `sluice push` reports.
func pushRange(t *testing.T, out string) (from, to float64) {
	t.Helper()
	i := strings.Index(out, "media time ")
	if i < 0 {
		t.Fatalf("no media time in the push output:\n%s", out)
	}
	if _, err := fmt.Sscanf(out[i:], "media time %f s to %f s", &from, &to); err != nil {
		t.Fatalf("push output %q: %v", out[i:], err)
	}
	return from, to
}
