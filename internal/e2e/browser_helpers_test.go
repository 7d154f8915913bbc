package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// browserEnabled reports whether the browser tests should run. They run by
// default (and fail when a tool is missing); SLUICE_E2E_BROWSER=0 or -short
// lets a developer skip them locally.
func browserEnabled(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: browser test skipped (CI runs it)")
	}
	if os.Getenv("SLUICE_E2E_BROWSER") == "0" {
		t.Skip("SLUICE_E2E_BROWSER=0: browser tests skipped")
	}
}

// chromiumPath is the browser the tests drive.
func chromiumPath() string {
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// requireTools fails the test (it does not skip) when a tool the browser
// test needs is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	if fi, err := os.Stat(chromiumPath()); err != nil || fi.IsDir() {
		t.Fatalf("chromium is missing at %s (install Debian's chromium: apt-get install chromium; or set SLUICE_CHROMIUM; SLUICE_E2E_BROWSER=0 skips this test): %v", chromiumPath(), err)
	}
	for _, tool := range tools {
		if tool == "go" {
			goTool() // fails over to GOROOT below
			continue
		}
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing from PATH; the browser test needs it (SLUICE_E2E_BROWSER=0 skips this test)", tool)
		}
	}
}

// ensureNodeModules runs `npm ci` in web/ when the players or playwright-core
// are not installed yet.
func ensureNodeModules(t *testing.T, webDir string) {
	t.Helper()
	need := []string{
		"playwright-core/package.json",
		"dashjs/dist/modern/umd/dash.all.min.js",
		"dashjs/dist/modern/umd/dash.mss.min.js",
		"hls.js/dist/hls.min.js",
	}
	missing := false
	for _, n := range need {
		if _, err := os.Stat(filepath.Join(webDir, "node_modules", n)); err != nil {
			missing = true
		}
	}
	if !missing {
		return
	}
	t.Logf("web/node_modules incomplete: running npm ci in %s", webDir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = webDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", webDir, err, out)
	}
}

// mpd is the part of a DASH MPD the tests read.
type mpd struct {
	Type    string `xml:"type,attr"`
	Periods []struct {
		AdaptationSets []struct {
			ContentType     string `xml:"contentType,attr"`
			MimeType        string `xml:"mimeType,attr"`
			SegmentTemplate *tmpl  `xml:"SegmentTemplate"`
			Representations []struct {
				MimeType        string `xml:"mimeType,attr"`
				SegmentTemplate *tmpl  `xml:"SegmentTemplate"`
			} `xml:"Representation"`
		} `xml:"AdaptationSet"`
	} `xml:"Period"`
}

// videoSegments counts the segments the SegmentTimeline of the first video
// adaptation set lists (S elements with their repeat counts).
func videoSegments(body []byte) (int, error) {
	var m mpd
	if err := xml.Unmarshal(body, &m); err != nil {
		return 0, err
	}
	for _, p := range m.Periods {
		for _, as := range p.AdaptationSets {
			video := as.ContentType == "video" || strings.HasPrefix(as.MimeType, "video/")
			for _, r := range as.Representations {
				video = video || strings.HasPrefix(r.MimeType, "video/")
			}
			if !video {
				continue
			}
			tl := as.SegmentTemplate
			if tl == nil && len(as.Representations) > 0 {
				tl = as.Representations[0].SegmentTemplate
			}
			if tl == nil {
				return 0, errors.New("video adaptation set without a SegmentTemplate")
			}
			n := 0
			for _, s := range tl.S {
				n += 1 + max(s.R, 0)
			}
			return n, nil
		}
	}
	return 0, errors.New("no video adaptation set")
}

// playResult is the JSON printed by web/test/play.mjs.
type playResult struct {
	// Markers are the ad marker and timed metadata callbacks (--markers).
	Markers        []playMarker      `json:"markers"`
	Kind           string            `json:"kind"`
	Page           string            `json:"page"`
	OK             bool              `json:"ok"`
	Failure        string            `json:"failure"`
	StartupSeconds float64           `json:"startupSeconds"`
	StartTime      float64           `json:"startTime"`
	EndTime        float64           `json:"endTime"`
	Advanced       float64           `json:"advanced"`
	SampledSeconds float64           `json:"sampledSeconds"`
	Stalls         int               `json:"stalls"`
	Underruns      int               `json:"underruns"`
	WaitingEvents  int               `json:"waitingEvents"`
	Errors         []json.RawMessage `json:"errors"`
	Warnings       []json.RawMessage `json:"warnings"`
	PageErrors     []string          `json:"pageErrors"`
	Events         []json.RawMessage `json:"events"`
	Width          int               `json:"width"`
	Height         int               `json:"height"`
	TotalFrames    int               `json:"totalFrames"`
	DroppedFrames  int               `json:"droppedFrames"`
	Bitrates       []int             `json:"bitrates"`
	BufferMin      float64           `json:"bufferMin"`
	BufferMax      float64           `json:"bufferMax"`
	Latency        *float64          `json:"latency"`
	Screenshot     string            `json:"screenshot"`
	// Ended and Duration are set with --until-ended (playEnv.args).
	Ended    bool     `json:"ended"`
	Duration *float64 `json:"duration"`
	// Samples are currentTime and the buffer, once a second.
	Samples []struct {
		T    float64  `json:"t"`
		Buf  float64  `json:"buf"`
		Lat  *float64 `json:"lat"`  // latency reported by the page (s), if any
		Rate float64  `json:"rate"` // the media element's playback rate
	} `json:"samples"`
	// Resources are the page's completed requests with the protocol each
	// went over (play.mjs --protocols).
	Resources []struct {
		URL    string `json:"u"` // path and query
		Proto  string `json:"p"` // Resource Timing nextHopProtocol, e.g. "h2"
		Status int    `json:"s"` // HTTP status; 0 (and no protocol) when aborted
	} `json:"resources"`
	// Fetched lists the segments the page got from senders (play.mjs
	// --record, SLUICE_RECORD=1).
	Fetched []fetchedSegment `json:"fetched"`
	// TypeSupported answers MediaSource.isTypeSupported for each type of
	// play.mjs --mse-types.
	TypeSupported map[string]bool `json:"typeSupported"`
	// TextTracks, PlayingDate and PlayingTime are set with --text-cues.
	TextTracks  []playTextTrack `json:"textTracks"`
	PlayingDate *float64        `json:"playingDate"`
	PlayingTime float64         `json:"playingTime"`
}

// playTextTrack is a text track of the video element (play.mjs --text-cues).
type playTextTrack struct {
	Kind     string `json:"kind"`
	Label    string `json:"label"`
	Language string `json:"language"`
	Mode     string `json:"mode"`
	Cues     []struct {
		Start float64 `json:"start"`
		End   float64 `json:"end"`
		Text  string  `json:"text"`
	} `json:"cues"`
}

// playMarker is one ad marker or timed metadata callback of a player
// (play.mjs --markers).
type playMarker struct {
	Player string   `json:"player"`
	Ev     string   `json:"ev"`
	Scheme string   `json:"scheme"`
	T      *float64 `json:"t"`
	Key    string   `json:"key"`
	Data   string   `json:"data"` // hex
}

// fetchedSegment is one sender response a player got (play.mjs --record).
type fetchedSegment struct {
	URL    string `json:"url"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
	AtMS   int64  `json:"t"` // when it arrived, Unix ms
}

// summary is a one-line description of a play result for the test log.
func (r playResult) summary() string {
	lat := "-"
	if r.Latency != nil {
		lat = strconv.FormatFloat(*r.Latency, 'f', 2, 64)
	}
	return fmt.Sprintf("%s: ok=%v startup=%.1fs currentTime %.2f -> %.2f (advanced %.2f s in %.1f s) stalls=%d waiting=%d %dx%d frames=%d dropped=%d bitrates=%v buffer=[%.1f,%.1f] latency=%s errors=%d warnings=%d pageErrors=%d%s",
		r.Kind, r.OK, r.StartupSeconds, r.StartTime, r.EndTime, r.Advanced, r.SampledSeconds, r.Stalls, r.WaitingEvents,
		r.Width, r.Height, r.TotalFrames, r.DroppedFrames, r.Bitrates, r.BufferMin, r.BufferMax, lat,
		len(r.Errors), len(r.Warnings), len(r.PageErrors), ifNotEmpty(" failure="+r.Failure, r.Failure))
}

func ifNotEmpty(s, cond string) string {
	if cond == "" {
		return ""
	}
	return s
}

// runPlay runs web/test/play.mjs for one player and returns its result. The
// node process is bounded by a timeout of seconds + 120 s; the screenshot
// goes to shot when it is not empty.
func runPlay(t *testing.T, webDir, target, kind string, seconds, minAdvance int, shot string) playResult {
	t.Helper()
	return runPlayIn(t, playEnv{}, webDir, target, kind, seconds, minAdvance, shot)
}

// playEnv is where runPlayIn runs the browser: behind a command prefix
// (e.g. inHostsNamespace), with extra environment (e.g.
// SLUICE_CHROMIUM_ARGS).
type playEnv struct {
	prefix []string
	env    []string
	// args are extra play.mjs flags (e.g. --until-ended).
	args []string
}

// runPlayIn is runPlay in a playEnv.
func runPlayIn(t *testing.T, pe playEnv, webDir, target, kind string, seconds, minAdvance int, shot string) playResult {
	t.Helper()
	r, stderr, err := playIn(pe, webDir, target, kind, seconds, minAdvance, shot)
	if err != nil {
		t.Fatal(err)
	}
	if stderr != "" {
		t.Logf("play.mjs %s stderr (tail):\n%s", kind, stderr)
	}
	return r
}

// playIn is runPlayIn without a testing.T, for players run concurrently:
// it returns the result, the tail of play.mjs's stderr, and an error when
// play.mjs printed no result.
func playIn(pe playEnv, webDir, target, kind string, seconds, minAdvance int, shot string) (playResult, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+120)*time.Second)
	defer cancel()
	argv := append(append([]string{}, pe.prefix...), "node", filepath.Join(webDir, "test", "play.mjs"))
	argv = append(append(argv, pe.args...), target, kind, strconv.Itoa(seconds), strconv.Itoa(minAdvance))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = webDir
	cmd.Env = append(append(os.Environ(), "SLUICE_CHROMIUM="+chromiumPath(), "SLUICE_SCREENSHOT="+shot), pe.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 32 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	start := time.Now()
	runErr := cmd.Run()
	// Chromium children may outlive node when it is killed: end the group.
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var r playResult
	line := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return r, stderr.String(), fmt.Errorf("play.mjs %s %s: %v after %v, no JSON result (%v)\nstdout:\n%s\nstderr:\n%s",
			kind, target, runErr, time.Since(start).Round(time.Second), err, stdout.String(), stderr)
	}
	return r, stderr.String(), nil
}

// checkPlay logs a play result in detail and fails the test when the player
// failed, did not advance by minAdvance, or reported errors.
func checkPlay(t *testing.T, r playResult, minAdvance float64) {
	t.Helper()
	t.Log(r.summary())
	if r.Screenshot != "" {
		t.Logf("%s screenshot: %s", r.Kind, r.Screenshot)
	}
	for _, e := range r.Errors {
		t.Logf("%s player error: %s", r.Kind, e)
	}
	for i, w := range r.Warnings {
		if i == 10 {
			t.Logf("%s: %d more warnings", r.Kind, len(r.Warnings)-10)
			break
		}
		t.Logf("%s player warning: %s", r.Kind, w)
	}
	for _, e := range r.PageErrors {
		t.Logf("%s page error: %s", r.Kind, e)
	}
	if !r.OK || r.Advanced < minAdvance || len(r.Errors) > 0 {
		var ev []string
		for _, e := range r.Events {
			ev = append(ev, string(e))
		}
		t.Errorf("%s playback failed: %s (advanced %.2f s, want >= %.0f; %d errors); player events: %s",
			r.Kind, r.Failure, r.Advanced, minAdvance, len(r.Errors), strings.Join(ev, " "))
	}
}

// fixSmoothManifest works around ffmpeg's smoothstreaming muxer, whose
// on-demand Manifest omits the start time of the first chunk (implying 0)
// while the first fragment files start later (B-frame delay, AAC priming):
// it adds t="<first start>" to the first <c> of each StreamIndex, taken from
// the Fragments(<type>=<t>) file names.
func fixSmoothManifest(t *testing.T, dir string) {
	t.Helper()
	first := map[string]int64{}
	qls, err := filepath.Glob(filepath.Join(dir, "QualityLevels(*)", "Fragments(*)"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range qls {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "Fragments("), ")")
		typ, ts, ok := strings.Cut(name, "=")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			continue
		}
		if cur, seen := first[typ]; !seen || v < cur {
			first[typ] = v
		}
	}
	path := filepath.Join(dir, "Manifest")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var out strings.Builder
	for {
		i := strings.Index(s, "<StreamIndex ")
		if i < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:i])
		s = s[i:]
		typ := ""
		if j := strings.Index(s, `Type="`); j >= 0 {
			typ, _, _ = strings.Cut(s[j+6:], `"`)
		}
		if c := strings.Index(s, `<c n="0"`); c >= 0 {
			if v, ok := first[typ]; ok && !strings.Contains(s[c:c+40], " t=") {
				s = s[:c] + fmt.Sprintf(`<c n="0" t="%d"`, v) + s[c+len(`<c n="0"`):]
			}
		}
		end := strings.Index(s, "</StreamIndex>")
		if end < 0 {
			out.WriteString(s)
			break
		}
		out.WriteString(s[:end+len("</StreamIndex>")])
		s = s[end+len("</StreamIndex>"):]
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitVideoSegments polls the MPD at url until it answers 200 and lists at
// least n video segments (videoSegments), and returns that MPD. It fails the
// test when timeout passes (with the last answer and the output of the
// watched processes) or as soon as a watched process exits.
func waitVideoSegments(t *testing.T, url string, n int, timeout time.Duration, watch ...*proc) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 3 * time.Second}
	var last []byte
	for {
		for _, p := range watch {
			if p.exited() {
				t.Fatalf("%s exited (%v) before %s listed %d video segments; its output:\n%s", p.name, p.err, url, n, p.out)
			}
		}
		if resp, err := client.Get(url); err == nil {
			last = readAll(resp)
			if c, err := videoSegments(last); resp.StatusCode == http.StatusOK && err == nil && c >= n {
				return last
			}
		}
		if time.Now().After(deadline) {
			var outs strings.Builder
			for _, p := range watch {
				fmt.Fprintf(&outs, "\n%s output:\n%s", p.name, p.out)
			}
			t.Fatalf("%s did not list %d video segments within %v; last answer:\n%s%s", url, n, timeout, last, outs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// browserSetup is what a browser test starts from.
type browserSetup struct {
	root   string // the repository
	webDir string // web/, with the players' node modules installed
	art    string // the test's artifacts directory (logs, screenshots)
	tmp    string // a temporary directory for the test
	bin    string // the sluice binary
}

// setupBrowser skips t as browserEnabled does, requires chromium, node, npm
// and the given tools, installs the web players' node modules when they are
// missing, and returns the test's directories and the sluice binary.
func setupBrowser(t *testing.T, tools ...string) browserSetup {
	t.Helper()
	browserEnabled(t)
	requireTools(t, append([]string{"node", "npm"}, tools...)...)
	root := repoRoot(t)
	b := browserSetup{root: root, webDir: filepath.Join(root, "web"), art: artifactsDir(t), tmp: t.TempDir()}
	ensureNodeModules(t, b.webDir)
	b.bin = buildSluice(t, root, b.tmp)
	return b
}
