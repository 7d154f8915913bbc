package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tierPollInterval is how often the latency poller reloads each manifest.
const tierPollInterval = 10 * time.Millisecond

// tierSource is one manifest the poller reloads at one tier: parse returns
// the start times (milliseconds of media time) of the reference video
// track's fragments it lists.
type tierSource struct {
	tier, format, url string
	parse             func([]byte) ([]int64, error)
	// next, if set, gives the query of the next request from the last
	// answer (an LL-HLS blocking reload for the next part, as a
	// low-latency player asks): the poller then asks again at once.
	next func([]byte) string
}

// tierSightings records, per tier and format, when each fragment was first
// listed (wall clock at the end of the response).
type tierSightings struct {
	mu sync.Mutex
	// first[tier/format][start ms]; initial holds what the first answer
	// listed (listed before the poll began: no sighting time).
	first   map[string]map[int64]time.Time
	initial map[string]map[int64]bool
	polls   map[string]int
	errors  map[string]int
}

func newTierSightings() *tierSightings {
	return &tierSightings{first: map[string]map[int64]time.Time{}, initial: map[string]map[int64]bool{},
		polls: map[string]int{}, errors: map[string]int{}}
}

// pollTier reloads src every tierPollInterval until ctx ends.
func pollTier(ctx context.Context, c *http.Client, src tierSource, s *tierSightings) {
	key := src.tier + "/" + src.format
	tick := time.NewTicker(tierPollInterval)
	defer tick.Stop()
	query := ""
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, src.url+query, nil)
		resp, err := c.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		at := time.Now()
		var starts []int64
		if err == nil {
			starts, err = src.parse(body)
		}
		s.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				s.errors[key]++
			}
		} else {
			s.polls[key]++
			if s.first[key] == nil {
				s.first[key] = map[int64]time.Time{}
				s.initial[key] = map[int64]bool{}
				for _, t := range starts {
					s.initial[key][t] = true
				}
			}
			for _, t := range starts {
				if _, ok := s.first[key][t]; !ok && !s.initial[key][t] {
					s.first[key][t] = at
				}
			}
		}
		s.mu.Unlock()
		if src.next != nil && err == nil {
			if query = src.next(body); query != "" {
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// tierStats summarises delays in milliseconds.
type tierStats struct {
	N             int
	P50, P95, Max float64
}

func statsOf(ms []float64) tierStats {
	if len(ms) == 0 {
		return tierStats{}
	}
	s := append([]float64(nil), ms...)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[int(math.Ceil(p*float64(len(s))))-1] }
	return tierStats{N: len(s), P50: q(0.5), P95: q(0.95), Max: s[len(s)-1]}
}

func (st tierStats) String() string {
	if st.N == 0 {
		return "       -"
	}
	return fmt.Sprintf("%4.0f %4.0f %5.0f", st.P50, st.P95, st.Max)
}

// tierDelays returns, for a format, the delays (ms) by which tier b lists
// each fragment after tier a, over the fragments both saw appear.
func (s *tierSightings) tierDelays(a, fa, b, fb string) []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []float64
	for t, tb := range s.first[b+"/"+fb] {
		if ta, ok := s.first[a+"/"+fa][t]; ok {
			out = append(out, float64(tb.Sub(ta).Microseconds())/1000)
		}
	}
	return out
}

// tierTmpl is a DASH SegmentTemplate with its timescale and timeline.
type tierTmpl struct {
	Timescale int64 `xml:"timescale,attr"`
	S         []struct {
		T *int64 `xml:"t,attr"`
		D int64  `xml:"d,attr"`
		R int    `xml:"r,attr"`
	} `xml:"SegmentTimeline>S"`
}

// mpdVideoStarts lists the fragment starts (ms) of the Representation id
// in an MPD.
func mpdVideoStarts(id string) func([]byte) ([]int64, error) {
	return func(body []byte) ([]int64, error) {
		var m struct {
			Sets []struct {
				Tmpl *tierTmpl `xml:"SegmentTemplate"`
				Reps []struct {
					ID   string    `xml:"id,attr"`
					Tmpl *tierTmpl `xml:"SegmentTemplate"`
				} `xml:"Representation"`
			} `xml:"Period>AdaptationSet"`
		}
		if err := xml.Unmarshal(body, &m); err != nil {
			return nil, err
		}
		for _, as := range m.Sets {
			for _, r := range as.Reps {
				if r.ID != id {
					continue
				}
				tp := r.Tmpl
				if tp == nil {
					tp = as.Tmpl
				}
				if tp == nil || tp.Timescale <= 0 {
					return nil, fmt.Errorf("no SegmentTemplate with a timescale for %s", id)
				}
				var out []int64
				var cur int64
				for _, s := range tp.S {
					if s.T != nil {
						cur = *s.T
					}
					for i := 0; i <= s.R; i++ {
						out = append(out, cur*1000/tp.Timescale)
						cur += s.D
					}
				}
				return out, nil
			}
		}
		return nil, fmt.Errorf("no Representation %s", id)
	}
}

// hlsStarts lists the fragment starts (ms) of an HLS media playlist whose
// segment URIs end in <start>.m4s, in the given timescale.
func hlsStarts(timescale int64) func([]byte) ([]int64, error) {
	return func(body []byte) ([]int64, error) {
		var out []int64
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			name := l[strings.LastIndexByte(l, '/')+1:]
			name, _, _ = strings.Cut(name, "?")
			v, err := strconv.ParseInt(strings.TrimSuffix(name, ".m4s"), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("segment URI %q: %w", l, err)
			}
			out = append(out, v*1000/timescale)
		}
		return out, nil
	}
}

// smoothVideoStarts lists the fragment starts (ms) of the first video
// StreamIndex of a Smooth manifest.
func smoothVideoStarts(body []byte) ([]int64, error) {
	var m struct {
		TimeScale int64 `xml:"TimeScale,attr"`
		Streams   []struct {
			Type      string `xml:"Type,attr"`
			TimeScale int64  `xml:"TimeScale,attr"`
			C         []struct {
				T *int64 `xml:"t,attr"`
				D int64  `xml:"d,attr"`
				R int    `xml:"r,attr"`
			} `xml:"c"`
		} `xml:"StreamIndex"`
	}
	if err := xml.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for _, s := range m.Streams {
		if s.Type != "video" {
			continue
		}
		ts := s.TimeScale
		if ts == 0 {
			ts = m.TimeScale
		}
		if ts == 0 {
			ts = 10_000_000
		}
		var out []int64
		var cur int64
		for _, c := range s.C {
			if c.T != nil {
				cur = *c.T
			}
			for i := 0; i < max(c.R, 1); i++ {
				out = append(out, cur*1000/ts)
				cur += c.D
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no video StreamIndex")
}

// ingestStarts lists the newest fragment start (ms) of a track in an
// ingest's StreamManifest.
func ingestStarts(track string) func([]byte) ([]int64, error) {
	return func(body []byte) ([]int64, error) {
		var sm streamManifestDoc
		if err := json.Unmarshal(body, &sm); err != nil {
			return nil, err
		}
		for _, st := range sm.Streams {
			for _, tr := range st.Tracks {
				if tr.ID == track && tr.Fragments > 0 && tr.Timescale > 0 {
					return []int64{tr.Last * 1000 / int64(tr.Timescale)}, nil
				}
			}
		}
		return nil, fmt.Errorf("track %s not in the StreamManifest", track)
	}
}

// TestTierLatency measures what each tier adds to the moment a fragment is
// listed, in standard (non-LL) mode: `sluice push` → ingest → origin
// (pulling) → distribution → nginx proxy_cache, every live manifest (DASH
// MPD, HLS media playlist, Smooth Manifest) reloaded every 10 ms at every
// tier. It prints p50/p95/max per tier, relative to the tier before and
// to the ingest. The assertion is deliberately loose (a timed test on a
// shared machine): the distribution tier and nginx must each add less
// than 400 ms at the median — a cached live manifest kept for a whole
// second (the regression this guards) adds about 500. The ≤ 50 ms target
// is measured by bench/tier-latency.sh ($SLUICE_TIER_SECONDS, default 16,
// sets how long the poller runs).
func TestTierLatency(t *testing.T) {
	longTest(t)
	t.Parallel() // the bound is loose enough for a shared CPU (see the doc comment)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	seconds := 16
	if v, err := strconv.Atoi(os.Getenv("SLUICE_TIER_SECONDS")); err == nil && v > 0 {
		seconds = v
	}

	ingest := startRole(t, bin, dir, "ingest", "ingest", "--point", "live")
	origin := startPullOrigin(t, bin, dir, "origin", ingest)
	dport := freePort(t)
	dbase, _ := distStartRole(t, bin, "distribution", "distribution.log", dport, "--origin", origin.base)
	naddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNginx(t, filepath.Join(dir, "nginx"), naddr, fmt.Sprintf("127.0.0.1:%d", dport))
	nbase := "http://" + naddr
	push := distPush(t, bin, ingest.base, "live")
	dumpLogs(t, ingest, origin)

	// The reference track: the first video Representation of the MPD.
	body := waitVideoSegments(t, origin.base+"/live.isml/manifest.mpd", 2, 60*time.Second, push, origin.p)
	var m struct {
		Sets []struct {
			Type string `xml:"contentType,attr"`
			Mime string `xml:"mimeType,attr"`
			Reps []struct {
				ID   string `xml:"id,attr"`
				Mime string `xml:"mimeType,attr"`
			} `xml:"Representation"`
			Tmpl *tierTmpl `xml:"SegmentTemplate"`
		} `xml:"Period>AdaptationSet"`
	}
	if err := xml.Unmarshal(body, &m); err != nil {
		t.Fatalf("MPD: %v\n%s", err, body)
	}
	var track string
	var timescale int64
	for _, as := range m.Sets {
		if (as.Type == "video" || strings.HasPrefix(as.Mime, "video/")) && len(as.Reps) > 0 && as.Tmpl != nil {
			track, timescale = as.Reps[0].ID, as.Tmpl.Timescale
			break
		}
	}
	if track == "" || timescale == 0 {
		t.Fatalf("no video representation with a set-level timescale in\n%s", body)
	}
	// The segment timescale of the HLS URIs is the track's (its MPD one).
	sources := []tierSource{{tier: "ingest", format: "stream", url: ingest.base + "/live.isml/StreamManifest", parse: ingestStarts(track)}}
	for _, tier := range []struct{ name, base string }{{"origin", origin.base}, {"distribution", dbase}, {"nginx", nbase}} {
		sources = append(sources,
			tierSource{tier: tier.name, format: "dash", url: tier.base + "/live.isml/manifest.mpd", parse: mpdVideoStarts(track)},
			tierSource{tier: tier.name, format: "hls", url: tier.base + "/live.isml/tracks/" + track + "/media.m3u8", parse: hlsStarts(timescale)},
			tierSource{tier: tier.name, format: "smooth", url: tier.base + "/live.isml/Manifest", parse: smoothVideoStarts})
	}
	s := newTierSightings()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
	defer cancel()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var wg sync.WaitGroup
	for _, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pollTier(ctx, c, src, s)
		}()
	}
	upBefore := distMetric(t, dbase, "sluice_distribution_upstream_requests_total")
	t0 := time.Now()
	wg.Wait()
	upAfter := distMetric(t, dbase, "sluice_distribution_upstream_requests_total")
	elapsed := time.Since(t0).Seconds()

	var table strings.Builder
	fmt.Fprintf(&table, "tier latency over %.0f s (%d-ms polls), delay in ms p50 p95 max (n fragments):\n", elapsed, tierPollInterval.Milliseconds())
	fmt.Fprintf(&table, "%-8s %-13s %-16s %-16s %s\n", "format", "tier", "vs tier before", "vs ingest", "n")
	prev := map[string]string{"origin": "ingest", "distribution": "origin", "nginx": "distribution"}
	regression := map[string][]float64{}
	for _, format := range []string{"dash", "hls", "smooth"} {
		for _, tier := range []string{"origin", "distribution", "nginx"} {
			pf := format
			if prev[tier] == "ingest" {
				pf = "stream"
			}
			before := statsOf(s.tierDelays(prev[tier], pf, tier, format))
			vsIngest := statsOf(s.tierDelays("ingest", "stream", tier, format))
			if format == "smooth" {
				// The Smooth manifest holds back the look-ahead fragments:
				// its listing trails the ingest by design.
				vsIngest = tierStats{}
				if tier == "origin" {
					before = tierStats{}
				}
			}
			fmt.Fprintf(&table, "%-8s %-13s %-16s %-16s %d\n", format, tier, before, vsIngest, before.N)
			if tier != "origin" {
				regression[tier] = append(regression[tier], s.tierDelays(prev[tier], format, tier, format)...)
			}
		}
	}
	s.mu.Lock()
	fmt.Fprintf(&table, "polls %v, errors %v\n", s.polls, s.errors)
	s.mu.Unlock()
	fmt.Fprintf(&table, "distribution upstream requests: %.1f/s for 3 live manifests (%.0f in %.0f s)\n",
		(upAfter-upBefore)/elapsed, upAfter-upBefore, elapsed)
	t.Log("\n" + table.String())
	if out := os.Getenv("SLUICE_TIER_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(table.String()), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		}
	}
	for _, tier := range []string{"distribution", "nginx"} {
		st := statsOf(regression[tier])
		if st.N < 3 {
			t.Errorf("%s: only %d fragments seen appear at both tiers", tier, st.N)
			continue
		}
		if st.P50 >= 400 {
			t.Errorf("%s adds %.0f ms at the median (p95 %.0f, n %d) to the moment a fragment is listed; want < 400 (a live manifest cached for its whole lifetime?)",
				tier, st.P50, st.P95, st.N)
		}
	}
}
