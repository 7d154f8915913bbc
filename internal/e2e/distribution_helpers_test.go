package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testmedia"
)

// distCounter is a reverse proxy in front of an origin that counts the GET
// requests per path: the upstream traffic of a distribution server.
type distCounter struct {
	URL string
	mu  sync.Mutex
	n   map[string]int
}

func newDistCounter(t *testing.T, target string) *distCounter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c := &distCounter{n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			c.mu.Lock()
			c.n[r.URL.Path]++
			c.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// counts returns a copy of the per-path counts.
func (c *distCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// distStartRole starts `sluice <role> --listen 127.0.0.1:<port> args...` and
// waits for its /healthz.
func distStartRole(t *testing.T, bin, role, logName string, port int, args ...string) (string, *proc) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	argv := append([]string{bin, role, "--listen", addr}, args...)
	p := startProc(t, role, filepath.Join(artifactsDir(t), logName), argv...)
	base := "http://" + addr
	waitHTTP(t, base+"/healthz", 30*time.Second, p)
	return base, p
}

// distPush pushes the bundled sample in a loop, epoch-anchored, to a point.
func distPush(t *testing.T, bin, base, point string) *proc {
	t.Helper()
	return startProc(t, "push-"+point, filepath.Join(artifactsDir(t), "push-"+point+".log"),
		bin, "push", "--loop", "--quiet", testmedia.Sample(t),
		base+"/"+point+".isml/Streams("+point+")")
}

// distMetric is scrapeMetric of base/metrics that fails the test when the
// scrape fails, with labels given as "k=v".
func distMetric(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	want := make([]string, len(labels))
	for i, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		want[i] = k + `="` + v + `"`
	}
	sum, err := scrapeMetric(base, name, want...)
	if err != nil {
		t.Fatalf("%s/metrics: %v", base, err)
	}
	return sum
}

// distAggregate is the aggregate line of `sluice play --sessions N --json`.
type distAggregate struct {
	Aggregate    bool           `json:"aggregate"`
	Sessions     int            `json:"sessions"`
	SessionsOK   int            `json:"sessions_ok"`
	StartupP95MS int64          `json:"startup_p95_ms"`
	Stalls       int            `json:"stalls"`
	Fragments    int            `json:"fragments"`
	Errors       int            `json:"errors"`
	HTTPStatus   map[string]int `json:"http_status"`
	LatencyP50MS int64          `json:"latency_p50_ms"`
	LatencyP95MS int64          `json:"latency_p95_ms"`
}

// distPlay runs `sluice play --sessions n --duration d --json url` and
// returns its aggregate.
func distPlay(t *testing.T, bin, url string, n int, d time.Duration, extra ...string) distAggregate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+60*time.Second)
	defer cancel()
	args := append([]string{"play", "--sessions", strconv.Itoa(n), "--duration", d.String(), "--json", "--log-level", "error"}, extra...)
	args = append(args, url)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	runErr := cmd.Run()
	var agg distAggregate
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a distAggregate
		if json.Unmarshal(sc.Bytes(), &a) == nil && a.Aggregate {
			agg = a
		}
	}
	if !agg.Aggregate {
		t.Fatalf("sluice play: %v, no aggregate line\nstderr:\n%s", runErr, stderr)
	}
	if runErr != nil {
		t.Logf("sluice play: %v (stderr tail: %s)", runErr, stderr)
	}
	return agg
}

// distGet fetches a URL and returns the status and body.
func distGet(t *testing.T, url string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
