package e2e

// Helpers that read a scheduler's per-session manifests: the HLS master's
// pathways (content steering) and media playlists, the DASH MPD's
// BaseURLs, resolved to the segment URLs a player fetches; and the four
// browser players that play those sessions.

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sessSegment is one URL of a session's media playlists.
type sessSegment struct {
	url, track, file string
}

// sessPlaylist is one media playlist of a session on one pathway, as
// fetched: its URL, track, and the URIs it lists resolved against it (the
// EXT-X-MAP first, then the segments in order).
type sessPlaylist struct {
	url, pathway, track string
	uris                []string
	text                string
}

// segments returns the playlist's URIs as sessSegments.
func (p sessPlaylist) segments() []sessSegment {
	var out []sessSegment
	for _, u := range p.uris {
		out = append(out, sessSegment{url: u, track: p.track, file: u[strings.LastIndexByte(u, '/')+1:]})
	}
	return out
}

var (
	pathwayAttrRe  = regexp.MustCompile(`PATHWAY-ID="([^"]+)"`)
	groupAttrRe    = regexp.MustCompile(`GROUP-ID="audio-([^"]+)"`)
	uriAttrRe      = regexp.MustCompile(`URI="([^"]+)"`)
	steeringAttrRe = regexp.MustCompile(`#EXT-X-CONTENT-STEERING:.*PATHWAY-ID="([^"]+)"`)
)

// masterPlaylists parses a master playlist: every media playlist URI by
// pathway ("" without pathways), resolved against base, and the default
// pathway (the direct one when listed, else EXT-X-CONTENT-STEERING's).
func masterPlaylists(base *url.URL, master string) (map[string][]string, string) {
	out := map[string][]string{}
	def := ""
	lines := strings.Split(master, "\n")
	for i, line := range lines {
		line = strings.TrimSpace(line)
		var uri, pw string
		switch {
		case strings.HasPrefix(line, "#EXT-X-CONTENT-STEERING:"):
			if m := steeringAttrRe.FindStringSubmatch(line); m != nil {
				def = m[1]
			}
			continue
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			m := uriAttrRe.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			uri = m[1]
			if g := groupAttrRe.FindStringSubmatch(line); g != nil {
				pw = g[1]
			}
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			if i+1 >= len(lines) {
				continue
			}
			uri = strings.TrimSpace(lines[i+1])
			if p := pathwayAttrRe.FindStringSubmatch(line); p != nil {
				pw = p[1]
			}
		default:
			continue
		}
		if u, err := base.Parse(uri); err == nil {
			out[pw] = append(out[pw], u.String())
		}
	}
	if _, ok := out["direct"]; ok {
		def = "direct"
	}
	return out, def
}

// sessionPlaylists opens an HLS session at the scheduler (point may name
// an open session: "<point>/~<session>") and returns the media playlists
// of its default pathway (the direct one when the scheduler has owner-set
// names), fetched with c.
func sessionPlaylists(c *http.Client, sched, point, query string) ([]sessPlaylist, error) {
	masterURL := sched + "/s/" + point + "/master.m3u8" + query
	master, err := fetchText(c, masterURL)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(masterURL)
	byPathway, def := masterPlaylists(base, master)
	var out []sessPlaylist
	for _, u := range byPathway[def] {
		pl, err := fetchPlaylist(c, u, def)
		if err != nil {
			return nil, err
		}
		out = append(out, pl)
	}
	return out, nil
}

// fetchPlaylist fetches a media playlist and resolves its URIs.
func fetchPlaylist(c *http.Client, u, pathway string) (sessPlaylist, error) {
	text, err := fetchText(c, u)
	if err != nil {
		return sessPlaylist{}, err
	}
	pu, err := url.Parse(u)
	if err != nil {
		return sessPlaylist{}, err
	}
	dir := strings.TrimSuffix(pu.Path, "/media.m3u8")
	pl := sessPlaylist{url: u, pathway: pathway, track: dir[strings.LastIndexByte(dir, '/')+1:], text: text}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		ref := ""
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			if m := uriAttrRe.FindStringSubmatch(line); m != nil {
				ref = m[1]
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			ref = line
		}
		if ref == "" {
			continue
		}
		r, err := pu.Parse(ref)
		if err != nil {
			return pl, err
		}
		pl.uris = append(pl.uris, r.String())
	}
	return pl, nil
}

// fetchText GETs a text resource (200 only).
func fetchText(c *http.Client, u string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %.200s", u, resp.StatusCode, b)
	}
	return string(b), nil
}

// sessionSegments opens an HLS session at the scheduler and returns the
// init and segment URLs of all its media playlists on its default pathway
// (resolved: at a sender, or an owner-set name on the direct pathway).
func sessionSegments(t *testing.T, sched, point, query string) []sessSegment {
	t.Helper()
	pls, err := sessionPlaylists(http.DefaultClient, sched, point, query)
	if err != nil {
		t.Logf("session playlists of %s: %v", point, err)
		return nil
	}
	var out []sessSegment
	for _, pl := range pls {
		out = append(out, pl.segments()...)
	}
	return out
}

// minSegmentsPerTrack is the least number of segments (inits not counted)
// that segs lists for one of its tracks; 0 for none.
func minSegmentsPerTrack(segs []sessSegment) int {
	n := map[string]int{}
	for _, s := range segs {
		if s.file != "init.mp4" {
			n[s.track]++
		} else if _, ok := n[s.track]; !ok {
			n[s.track] = 0
		}
	}
	least := -1
	for _, c := range n {
		if least < 0 || c < least {
			least = c
		}
	}
	return max(least, 0)
}

// sessionMPD is the part of a session MPD the tests read.
type sessionMPD struct {
	Location []string `xml:"Location"`
	BaseURL  []struct {
		Value           string `xml:",chardata"`
		ServiceLocation string `xml:"serviceLocation,attr"`
	} `xml:"BaseURL"`
	ContentSteering *struct {
		Value                  string `xml:",chardata"`
		DefaultServiceLocation string `xml:"defaultServiceLocation,attr"`
	} `xml:"ContentSteering"`
	Periods []struct {
		AdaptationSets []struct {
			SegmentTemplate *mpdTemplate `xml:"SegmentTemplate"`
			Representations []struct {
				SegmentTemplate *mpdTemplate `xml:"SegmentTemplate"`
			} `xml:"Representation"`
		} `xml:"AdaptationSet"`
	} `xml:"Period"`
}

// mpdTemplate is a SegmentTemplate's URL templates.
type mpdTemplate struct {
	Media          string `xml:"media,attr"`
	Initialization string `xml:"initialization,attr"`
}

// templates returns the distinct URL templates of an MPD (on adaptation
// sets or representations), sorted.
func (m sessionMPD) templates() []string {
	var out []string
	add := func(t *mpdTemplate) {
		if t != nil && !slices.Contains(out, t.Media+" "+t.Initialization) {
			out = append(out, t.Media+" "+t.Initialization)
		}
	}
	for _, p := range m.Periods {
		for _, as := range p.AdaptationSets {
			add(as.SegmentTemplate)
			for _, r := range as.Representations {
				add(r.SegmentTemplate)
			}
		}
	}
	slices.Sort(out)
	return out
}

// parseSessionMPD parses a session MPD.
func parseSessionMPD(body string) (sessionMPD, error) {
	var m sessionMPD
	err := xml.Unmarshal([]byte(body), &m)
	return m, err
}

// newest keeps the inits and the last n segments of each track.
func newest(segs []sessSegment, n int) []sessSegment {
	byTrack := map[string][]sessSegment{}
	var out []sessSegment
	for _, s := range segs {
		if s.file == "init.mp4" {
			out = append(out, s)
			continue
		}
		byTrack[s.track] = append(byTrack[s.track], s)
	}
	for _, ss := range byTrack {
		out = append(out, ss[max(0, len(ss)-n):]...)
	}
	return out
}

// waitSessionsListed waits (60 s at most) until a session of each point
// at base lists at least n segments of every track, failing the test when
// one of procs (the encoder, the server) ends first, with their output.
func waitSessionsListed(t *testing.T, base string, points []string, n int, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := true
		for _, pt := range points {
			if minSegmentsPerTrack(sessionSegments(t, base, pt, "")) < n {
				ready = false
				break
			}
		}
		if ready {
			return
		}
		for _, p := range procs {
			if p.exited() {
				var out strings.Builder
				for _, q := range procs {
					fmt.Fprintf(&out, "%s (exited %v, %v):\n%s\n", q.name, q.exited(), q.err, q.out)
				}
				t.Fatalf("%s exited before %v listed %d segments per track\n%s", p.name, points, n, out.String())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not list %d segments per track within 60 s at %s", points, n, base)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sessionPlayer is one of the four browser players of the session tests
// (hls.js, Shaka Player with HLS and with DASH, dash.js), each with a 6 s
// buffer, recording what it fetched (SLUICE_RECORD=1).
type sessionPlayer struct {
	name, kind string
	file       string // the session manifest it opens: master.m3u8 or manifest.mpd
	res        playResult
}

func sessionPlayers() []*sessionPlayer {
	return []*sessionPlayer{
		{name: "hls.js", kind: "hls", file: "master.m3u8"},
		{name: "Shaka (HLS)", kind: "shaka", file: "master.m3u8"},
		{name: "Shaka (DASH)", kind: "shaka", file: "manifest.mpd"},
		{name: "dash.js", kind: "dash", file: "manifest.mpd"},
	}
}

// playSessions plays every player at the URL target gives it, each in its
// own browser, all at once, for playFor seconds (a screenshot per player
// and point in art); the returned func waits until all have ended and
// their results are in res.
func playSessions(t *testing.T, webDir, art, point string, players []*sessionPlayer, playFor int, target func(*sessionPlayer) string) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for _, p := range players {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := playEnv{env: []string{"SLUICE_PLAYER_CONFIG=" + sixSecondBuffer[p.kind], "SLUICE_RECORD=1", "SLUICE_STARTUP_SECS=60"}}
			shot := filepath.Join(art, strings.NewReplacer(" ", "-", "(", "", ")", "", ".", "").Replace(p.name)+"-"+point+".png")
			p.res = runPlayIn(t, env, webDir, target(p), p.kind, playFor, playFor*8/10, shot)
		}()
	}
	return wg.Wait
}

// checkPlayed logs a session player's result and fails the test on its
// errors, page errors, a failure or an underrun; label names it in the
// messages.
func checkPlayed(t *testing.T, label string, r playResult) {
	t.Helper()
	t.Logf("%s: %s", label, r.summary())
	for _, w := range r.Warnings {
		t.Logf("%s warning: %s", label, w)
	}
	for _, e := range r.Errors {
		t.Errorf("%s error: %s", label, e)
	}
	for _, e := range r.PageErrors {
		t.Errorf("%s page error: %s", label, e)
	}
	if !r.OK || r.Underruns > 0 {
		t.Errorf("%s: ok=%v failure=%q underruns=%d (stalls=%d)", label, r.OK, r.Failure, r.Underruns, r.Stalls)
	}
}
