package e2e

// pacing_browser_test.go is the browser acceptance test of client-controlled
// pacing (docs/pacing.md): dash.js with CMCD enabled, in header mode
// and in query mode, plays the live demo channel of `sluice serve --pacing
// client` in Debian's Chromium, and the server applies the rtp of every
// request that is not urgent. The test reads the server's debug log, where
// every media response has a "pacing" line with the side channel it saw
// (via, rtp, bl, br), the rate it applied and the rate read back from the
// socket with getsockopt(SO_MAX_PACING_RATE) (socket_bps).

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pacingLine is one "msg=pacing" debug line of the server log.
type pacingLine map[string]string

func (l pacingLine) int(k string) int64 {
	v, err := strconv.ParseInt(l[k], 10, 64)
	if err != nil {
		return -1
	}
	return v
}

func (l pacingLine) uint(k string) uint64 {
	v, err := strconv.ParseUint(l[k], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// pacingLines returns the pacing lines of a slog text log from byte offset
// from on.
func pacingLines(t *testing.T, logPath string, from int64) []pacingLine {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var out []pacingLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, " msg=pacing ") {
			continue
		}
		l := pacingLine{}
		for _, kv := range strings.Fields(line) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				l[k] = strings.Trim(v, `"`)
			}
		}
		out = append(out, l)
	}
	return out
}

func pacingLogSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// pacingWantRTP is the rate (bytes/s) the server must apply for a CMCD rtp
// with the default configuration: rtp, but not below 1.2 x br, within
// 100 kbit/s .. 10 Gbit/s (docs/pacing.md).
func pacingWantRTP(rtp, br int64) uint64 {
	rate := uint64(rtp) * 125
	if br > 0 {
		rate = max(rate, uint64(br)*150)
	}
	return min(max(rate, 100*125), 10_000_000*125)
}

// pacingCheckRTP checks that every non-urgent media request that carried
// rtp over the expected transport got that rate on its socket, and that
// urgent ones went out unpaced. It returns the number of paced responses.
func pacingCheckRTP(t *testing.T, lines []pacingLine, via string) int {
	t.Helper()
	paced, urgent := 0, 0
	for _, l := range lines {
		if l["via"] != via {
			t.Errorf("a media request with CMCD via %q in %s mode: %v", l["via"], via, l)
			continue
		}
		switch l["source"] {
		case "rtp":
			rtp := l.int("rtp")
			want := pacingWantRTP(rtp, l.int("br"))
			if rtp <= 0 || l.uint("socket_bps") != want || l.uint("rate_kbps") != want*8/1000 {
				t.Errorf("rtp %d (br %s): applied %s kbit/s, socket %s B/s; want %d B/s: %v",
					rtp, l["br"], l["rate_kbps"], l["socket_bps"], want, l)
			}
			paced++
		case "urgent":
			if l.uint("socket_bps") != ^uint64(0) || l["urgent"] == "" {
				t.Errorf("urgent request paced: %v", l)
			}
			urgent++
		case "none": // e.g. an init segment requested without rtp
			if l["rtp"] != "" {
				t.Errorf("rtp not applied: %v", l)
			}
		default:
			t.Errorf("source %q for a dash.js request with CMCD: %v", l["source"], l)
		}
	}
	t.Logf("CMCD %s mode: %d media responses paced at the player's rtp, %d urgent (su, bs or bl < 2 s) unpaced", via, paced, urgent)
	return paced
}

// TestBrowserPacingCMCD is the acceptance test of pacing with a real
// player: dash.js 5.2.1 with CMCD in header mode (mode "headers") and in
// query mode plays the live demo channel in Chromium; Sluice logs and
// applies the rtp of each request.
func TestBrowserPacingCMCD(t *testing.T) {
	b := setupBrowser(t)
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(art, "sluice.log")
	serve := startProc(t, "sluice serve", logPath, bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", filepath.Join(tmp, "data"),
		"--player-dir", filepath.Join(webDir, "node_modules"), "--pacing", "client", "--log-level", "debug")
	waitHTTP(t, base+"/", 30*time.Second, serve)
	waitVideoSegments(t, base+"/demo.isml/manifest.mpd", 3, 45*time.Second, serve)

	for _, c := range []struct{ mode, via string }{
		{"headers", "header"}, // dash.js 5.2.1: "header" (as its typings say) silently means query mode
		{"query", "query"},
	} {
		if serve.exited() {
			t.Fatalf("sluice serve exited (%v):\n%s", serve.err, serve.out)
		}
		t.Setenv("SLUICE_DASH_SETTINGS", fmt.Sprintf(`{"streaming":{"cmcd":{"enabled":true,"mode":%q}}}`, c.mode))
		from := pacingLogSize(t, logPath)
		start := time.Now()
		r := runPlay(t, webDir, base+"/demo.isml/manifest.mpd", "dash", 10, 7,
			filepath.Join(art, "screenshot-cmcd-"+c.mode+".png"))
		t.Logf("dash.js CMCD %s mode played in %v", c.mode, time.Since(start).Round(time.Millisecond))
		checkPlay(t, r, 7)
		lines := pacingLines(t, logPath, from)
		if n := pacingCheckRTP(t, lines, c.via); n < 3 {
			t.Errorf("CMCD %s mode: %d responses paced at rtp, want at least 3 (of %d media responses)", c.mode, n, len(lines))
		}
	}
	if got := pacingScrape(t, base, `sluice_pacing_responses_total{source="rtp"}`); got < 6 {
		t.Errorf(`sluice_pacing_responses_total{source="rtp"} = %v, want >= 6`, got)
	}
	if t.Failed() {
		t.Logf("artifacts (server log, screenshots) in %s", art)
	}
}

// pacingScrape reads one series from /metrics (-1: absent).
func pacingScrape(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte(series+" ")); ok {
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// pacingVideoFragment returns the URL path of the first video fragment
// listed by a Sluice MPD (SegmentTemplate with a SegmentTimeline).
func pacingVideoFragment(t *testing.T, point string, body []byte) string {
	t.Helper()
	var m struct {
		Periods []struct {
			Sets []struct {
				ContentType string `xml:"contentType,attr"`
				MimeType    string `xml:"mimeType,attr"`
				Template    struct {
					Media string `xml:"media,attr"`
					S     []struct {
						T int64 `xml:"t,attr"`
					} `xml:"SegmentTimeline>S"`
				} `xml:"SegmentTemplate"`
				Reps []struct {
					ID string `xml:"id,attr"`
				} `xml:"Representation"`
			} `xml:"AdaptationSet"`
		} `xml:"Period"`
	}
	if err := xml.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Periods {
		for _, as := range p.Sets {
			if as.ContentType != "video" && !strings.HasPrefix(as.MimeType, "video/") {
				continue
			}
			if as.Template.Media == "" || len(as.Template.S) == 0 || len(as.Reps) == 0 {
				t.Fatalf("video adaptation set without a SegmentTemplate timeline:\n%s", body)
			}
			u := strings.ReplaceAll(as.Template.Media, "$RepresentationID$", as.Reps[0].ID)
			u = strings.ReplaceAll(u, "$Time$", strconv.FormatInt(as.Template.S[0].T, 10))
			return "/" + point + ".isml/" + u
		}
	}
	t.Fatalf("no video adaptation set in:\n%s", body)
	return ""
}
