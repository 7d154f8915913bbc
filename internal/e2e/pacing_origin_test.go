package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPacingOrigin runs `sluice serve --pacing both` and requests a real
// fragment of the demo VOD asset over one keep-alive connection with each
// kind of side channel: the server's debug log shows the rate it applied and
// the rate read back from the socket, and the responses carry CMSD-Static
// and CMSD-Dynamic. No browser: this checks the wiring (ConnContext, the
// middleware in front of the origin's media routes, CMSD-Static) that the
// unit tests of internal/pacing do not.
func TestPacingOrigin(t *testing.T) {
	pacingRequireGo(t)
	root := repoRoot(t)
	art := artifactsDir(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(art, "sluice.log")
	serve := startProc(t, "sluice serve", logPath, bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", filepath.Join(tmp, "data"),
		"--pacing", "both", "--log-level", "debug")
	mpd := waitHTTP(t, base+"/demo-vod.isml/manifest.mpd", 60*time.Second, serve)
	frag := pacingVideoFragment(t, "demo-vod", mpd)

	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	get := func(path string, hdr map[string]string) (*http.Response, pacingLine) {
		t.Helper()
		from := pacingLogSize(t, logPath)
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		var line pacingLine
		for deadline := time.Now().Add(3 * time.Second); line == nil && time.Now().Before(deadline); {
			for _, l := range pacingLines(t, logPath, from) {
				if l["path"] == strings.SplitN(path, "?", 2)[0] {
					line = l
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if line == nil {
			t.Fatalf("no pacing line for %s in the server log", path)
		}
		return resp, line
	}
	q := "?CMCD=" + url.QueryEscape("bl=9000,br=800,ot=v,rtp=7000")
	for i, s := range []struct {
		path   string
		hdr    map[string]string
		source string
		bps    uint64
	}{
		{frag, nil, "first", ^uint64(0)}, // no spec: server estimate, first response unpaced
		{frag, map[string]string{"CMCD-Status": "rtp=5000", "CMCD-Request": "bl=8000"}, "rtp", 625_000},
		{frag + q, nil, "rtp", 875_000},
		{frag, map[string]string{"Sluice-Pacing": "rate=3000, burst=4"}, "spec", 375_000},
		{frag, map[string]string{"Sluice-Pacing": "rate=3000", "CMCD-Request": "su"}, "urgent", ^uint64(0)},
		// Malformed: ignored, so the server estimate decides: a probe
		// (unpaced) while loopback transfers are too short to measure, or
		// paced at its estimate on a loaded machine.
		{frag, map[string]string{"Sluice-Pacing": "rate=}}"}, "probe", ^uint64(0)},
	} {
		resp, l := get(s.path, s.hdr)
		if s.source == "probe" && l["source"] == "estimate" && l.uint("socket_bps") > 0 && l.uint("socket_bps")*8/1000 == l.uint("rate_kbps") {
			s.source, s.bps = "estimate", l.uint("socket_bps")
		}
		if l["source"] != s.source || l.uint("socket_bps") != s.bps {
			t.Errorf("step %d: source %s socket %s B/s, want %s %d: %v", i, l["source"], l["socket_bps"], s.source, s.bps, l)
		}
		dyn, st := resp.Header.Get("CMSD-Dynamic"), resp.Header.Get("CMSD-Static")
		if !strings.HasPrefix(dyn, `"sluice";`) || !strings.Contains(dyn, ";com.sluice-src="+s.source) {
			t.Errorf("step %d: CMSD-Dynamic %q", i, dyn)
		}
		if !strings.Contains(st, "ot=v") || !strings.Contains(st, "br=") || !strings.Contains(st, "d=") {
			t.Errorf("step %d: CMSD-Static %q", i, st)
		}
		if exp := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "CMSD-Dynamic") {
			t.Errorf("CMSD not exposed to scripts: %q", exp)
		}
	}
	// Manifests are not paced.
	from := pacingLogSize(t, logPath)
	resp, err := c.Get(base + "/demo-vod.isml/manifest.mpd")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("CMSD-Dynamic") != "" || len(pacingLines(t, logPath, from)) != 0 {
		t.Error("the manifest went through the pacer")
	}
}

// pacingRequireGo fails when the go command cannot be found (buildSluice needs it).
func pacingRequireGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(goTool()); err != nil {
		t.Fatalf("go is missing: %v", err)
	}
}
