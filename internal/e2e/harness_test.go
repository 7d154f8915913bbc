package e2e

// harness_test.go: the generic parts of the end-to-end harness, in the manner
// of caddy's caddytest: the sluice binary (built once, in TestMain, for every
// test of the package), child processes with their logs, free ports, and
// polling with deadlines. Helpers that know a role, a protocol or a player
// live in the *_helpers_test.go files next to the tests that use them.
//
// `go test -short ./internal/e2e/` is the fast local loop: it skips the
// browser tests and the tests marked with longTest (many processes, etcd,
// nginx, or minutes of media). CI runs everything. docs/testing.md lists what
// each test needs.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sluiceBin is the path of the sluice binary TestMain built for this run.
var sluiceBin string

// TestMain builds ./cmd/sluice once for the whole package (every test runs
// the same binary as a child process), runs the tests and removes the build.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if l := flag.Lookup("test.list"); l != nil && l.Value.String() != "" {
		return m.Run() // listing tests runs none of them
	}
	dir, err := os.MkdirTemp("", "sluice-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	bin, err := buildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
	}
	sluiceBin = bin
	return m.Run()
}

// buildBinary runs go build ./cmd/sluice at the repository root into dir.
func buildBinary(dir string) (string, error) {
	root, err := findRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sluice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./cmd/sluice")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sluice: %w\n%s", err, out)
	}
	return bin, nil
}

// buildSluice returns the sluice binary TestMain built. It keeps the
// signature of the per-test build it replaced (root and dir are unused), so
// tests written against it need no change.
func buildSluice(t *testing.T, root, dir string) string {
	t.Helper()
	if sluiceBin == "" {
		t.Fatal("the sluice binary was not built (TestMain did not run)")
	}
	return sluiceBin
}

// longTest skips t under -short: the test starts many processes, a browser,
// etcd or nginx, or plays minutes of media.
func longTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: long end-to-end test skipped (CI runs it)")
	}
}

// goTool is the go command: from PATH, else from the GOROOT of the test.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// repoRoot is the directory of go.mod above the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// findRoot is the directory of go.mod above the working directory.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above %s", dir)
		}
		dir = parent
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append([]byte(nil), b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// proc is a child process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startProc starts a long-running child in its own process group, with its
// output copied to logPath and the last 64 KiB kept in memory. t.Cleanup
// stops the whole group (SIGTERM, then SIGKILL after 5 s) and waits for it.
func startProc(t *testing.T, name, logPath string, argv ...string) *proc {
	t.Helper()
	return startProcIn(t, "", name, logPath, argv...)
}

// startProcIn is startProc with the child's working directory dir ("": the
// test's).
func startProcIn(t *testing.T, dir, name, logPath string, argv ...string) *proc {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	w := io.MultiWriter(logf, p.out)
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends the process group of p and waits for it, at most about 10 s.
func (p *proc) stop(t *testing.T) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Logf("%s did not stop on SIGTERM within 5 s; killing", p.name)
		syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
		}
	}
}

// waitHTTP polls url until it answers 200 or the timeout passes, failing
// early when one of the watched processes exits.
func waitHTTP(t *testing.T, url string, timeout time.Duration, watch ...*proc) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 3 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		for _, p := range watch {
			if p.exited() {
				t.Fatalf("%s exited (%v) while waiting for %s; its output:\n%s", p.name, p.err, url, p.out)
			}
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return body
			}
			last = fmt.Sprintf("status %d: %.200s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within %v (last: %s)", url, timeout, last)
	return nil
}

// waitUntil polls cond every 100 ms until it holds or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
