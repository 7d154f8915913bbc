package player

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// testLog writes slog output to the test log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// play runs one session against a test origin and logs its JSON report.
func play(t *testing.T, cfg Config) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rep, err := Run(ctx, cfg)
	b, _ := json.Marshal(rep)
	t.Logf("report: %s", b)
	if err != nil {
		t.Logf("run error: %v", err)
	}
	return rep
}

var ladder = []int64{300_000, 1_000_000, 3_000_000}

// formatURLs are the manifest of each format on the fake origin.
var formatURLs = map[Format]string{
	FormatDASH:   "manifest.mpd",
	FormatHLS:    "master.m3u8",
	FormatSmooth: "Manifest",
}

func expectClean(t *testing.T, rep Report) {
	t.Helper()
	if !rep.OK || rep.Error != "" {
		t.Errorf("session not ok: %q", rep.Error)
	}
	if rep.StartupMS < 0 {
		t.Errorf("never started")
	}
	if rep.Stalls != 0 || rep.StallMS != 0 {
		t.Errorf("stalls = %d (%d ms), want none", rep.Stalls, rep.StallMS)
	}
	if rep.Errors != 0 || rep.InvalidFragments != 0 || rep.Skipped != 0 {
		t.Errorf("errors = %d invalid = %d skipped = %d, want none", rep.Errors, rep.InvalidFragments, rep.Skipped)
	}
}

// TestStatic plays a short on-demand presentation in each format from start
// to end.
func TestStatic(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{FormatDASH, FormatHLS, FormatSmooth} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			o := (&fakeOrigin{t: t, video: ladder, audio: 96_000, total: 6}).serve()
			rep := play(t, Config{URL: o.url(formatURLs[f]), Startup: time.Second})
			expectClean(t, rep)
			if rep.Format != f || rep.Live || !rep.Ended {
				t.Errorf("format %s live %v ended %v, want %s static played to the end", rep.Format, rep.Live, rep.Ended, f)
			}
			if rep.FragmentsByKind["video"] != 6 || rep.FragmentsByKind["audio"] != 6 || rep.Fragments != 12 {
				t.Errorf("fragments %v, want 6 video + 6 audio", rep.FragmentsByKind)
			}
			if rep.PlayedMS < 2900 || rep.PlayedMS > 3100 {
				t.Errorf("played %d ms, want the whole 3 s", rep.PlayedMS)
			}
			if rep.HTTPStatus["200"] == 0 || len(rep.Bitrates) == 0 || rep.Bitrates[0] != 300_000 {
				t.Errorf("http %v bitrates %v", rep.HTTPStatus, rep.Bitrates)
			}
			if rep.Bytes == 0 || rep.AvgBitrate == 0 {
				t.Errorf("bytes %d avg bitrate %d", rep.Bytes, rep.AvgBitrate)
			}
		})
	}
}

// TestDASHNumberTemplate plays a $Number$/@duration MPD, static and live.
func TestDASHNumberTemplate(t *testing.T) {
	t.Parallel()
	t.Run("static", func(t *testing.T) {
		t.Parallel()
		o := (&fakeOrigin{t: t, video: ladder[:1], audio: 96_000, total: 4}).serve()
		rep := play(t, Config{URL: o.url("number.mpd"), Startup: time.Second})
		expectClean(t, rep)
		if rep.Fragments != 8 {
			t.Errorf("fragments %d, want 8", rep.Fragments)
		}
	})
	t.Run("live", func(t *testing.T) {
		t.Parallel()
		o := (&fakeOrigin{t: t, video: ladder[:2], audio: 96_000, total: 1000, live: true, backlog: 10}).serve()
		rep := play(t, Config{URL: o.url("number.mpd"), Duration: 3 * time.Second, Startup: time.Second})
		expectClean(t, rep)
		if !rep.Live || rep.FragmentsByKind["video"] < 5 {
			t.Errorf("live %v, video fragments %d, want live and ≥ 5", rep.Live, rep.FragmentsByKind["video"])
		}
		// The session starts near the live edge, not at fragment 0.
		if n := o.fragmentRequests("v300000") + o.fragmentRequests("v1000000"); n > 12 {
			t.Errorf("%d video fragment requests: did not start at the live edge", n)
		}
	})
}

// TestLive follows a growing live presentation in each format.
func TestLive(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{FormatDASH, FormatHLS, FormatSmooth} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			o := (&fakeOrigin{t: t, video: ladder, audio: 96_000, total: 1000, live: true, backlog: 8}).serve()
			rep := play(t, Config{URL: o.url(formatURLs[f]), Duration: 4 * time.Second})
			expectClean(t, rep)
			if !rep.Live || rep.Ended {
				t.Errorf("live %v ended %v", rep.Live, rep.Ended)
			}
			// Started three fragments behind the edge and kept up: about
			// 3 + 4 s / 0.5 s fragments of each kind.
			if v := rep.FragmentsByKind["video"]; v < 8 || v > 13 {
				t.Errorf("%d video fragments, want about 11", v)
			}
			if rep.StartupMS > 2500 {
				t.Errorf("startup %d ms", rep.StartupMS)
			}
			if rep.DurationMS < 3900 || rep.DurationMS > 5000 {
				t.Errorf("session lasted %d ms, want the 4 s asked for", rep.DurationMS)
			}
		})
	}
}

// TestLiveToVOD: a live presentation that ends turns static; the session
// plays to the end and stops before its duration.
func TestLiveToVOD(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{FormatDASH, FormatHLS} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			o := (&fakeOrigin{t: t, video: ladder[:1], audio: 96_000, total: 10, live: true, backlog: 6}).serve()
			rep := play(t, Config{URL: o.url(formatURLs[f]), Duration: 10 * time.Second, Startup: time.Second})
			expectClean(t, rep)
			if rep.DurationMS > 6000 {
				t.Errorf("session lasted %d ms; it should end with the presentation", rep.DurationMS)
			}
			if !rep.Live || !rep.Ended {
				t.Errorf("live %v ended %v, want a live session that played to the end", rep.Live, rep.Ended)
			}
			if rep.FragmentsByKind["video"] < 6 {
				t.Errorf("%d video fragments", rep.FragmentsByKind["video"])
			}
		})
	}
}

// TestABRThrottledHighBitrate: the session starts at the highest rendition,
// which the server delivers slower than its bitrate; the player switches
// down and keeps away from it.
func TestABRThrottledHighBitrate(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder, audio: 96_000, total: 12,
		throttle: func(rep string) int64 {
			if rep == "v3000000" {
				return 2_000_000
			}
			return 0
		}}).serve()
	rep := play(t, Config{URL: o.url("manifest.mpd"), Startup: time.Second, Duration: 5 * time.Second,
		ABR: ABRConfig{StartBitrate: 3_000_000}})
	if len(rep.Bitrates) < 2 || rep.Bitrates[0] != 3_000_000 || rep.Bitrates[1] >= 3_000_000 || rep.Switches < 1 {
		t.Errorf("bitrates %v switches %d: want to start at 3 Mbit/s and switch down", rep.Bitrates, rep.Switches)
	}
	if n := o.fragmentRequests("v3000000"); n > 3 {
		t.Errorf("%d requests at the throttled bitrate; ABR should leave it", n)
	}
	if rep.FragmentsByKind["video"] < 8 {
		t.Errorf("%d video fragments in 5 s", rep.FragmentsByKind["video"])
	}
}

// TestABRUpSwitch: on an unthrottled link the player climbs from the
// lowest rendition. (A machine too loaded to move 50 kB fast can measure
// less than the ladder needs; the test then only logs.)
func TestABRUpSwitch(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder, audio: 96_000, total: 6}).serve()
	rep := play(t, Config{URL: o.url("manifest.mpd"), Startup: time.Second})
	expectClean(t, rep)
	if rep.Bitrates[0] != 300_000 {
		t.Errorf("bitrates %v: want to start at the lowest", rep.Bitrates)
	}
	if len(rep.Bitrates) < 2 {
		if rep.ThroughputBPS > 5_000_000 {
			t.Errorf("measured %d bit/s but never switched up", rep.ThroughputBPS)
		} else {
			t.Logf("measured only %d bit/s on loopback: no up-switch expected", rep.ThroughputBPS)
		}
	}
}

// TestABRPicksLowUnderThrottle: every response is delivered at 700 kbit/s;
// the player stays at the rendition that fits and does not stall.
func TestABRPicksLowUnderThrottle(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder, audio: 96_000, total: 8,
		throttle: func(string) int64 { return 700_000 }}).serve()
	rep := play(t, Config{URL: o.url("master.m3u8"), Startup: time.Second})
	expectClean(t, rep)
	if !slices.Equal(rep.Bitrates, []int64{300_000}) || rep.Switches != 0 {
		t.Errorf("bitrates %v switches %d, want 300 kbit/s only", rep.Bitrates, rep.Switches)
	}
	if rep.ThroughputBPS <= 0 || rep.ThroughputBPS > 800_000 {
		t.Errorf("throughput estimate %d, want at most about 700000", rep.ThroughputBPS)
	}
}

// TestMaxBitrate: the cap holds, even for the first choice.
func TestMaxBitrate(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder, audio: 96_000, total: 6}).serve()
	rep := play(t, Config{URL: o.url("Manifest"), Startup: time.Second, MaxBitrate: 1_500_000,
		ABR: ABRConfig{StartBitrate: 10_000_000}})
	expectClean(t, rep)
	if rep.Bitrates[0] != 1_000_000 || slices.Max(rep.Bitrates) != 1_000_000 || o.fragmentRequests("v3000000") != 0 {
		t.Errorf("bitrates %v, want 1 Mbit/s and no higher", rep.Bitrates)
	}
}

// TestStallWhenFragmentWithheld: one fragment is held back 3 s by the
// server; the buffer runs dry and playback stalls.
func TestStallWhenFragmentWithheld(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder[:1], audio: 96_000, total: 8,
		fault: func(w http.ResponseWriter, rep string, k, n int) bool {
			if rep == "v300000" && k == 4 {
				time.Sleep(3 * time.Second)
			}
			return false
		}}).serve()
	rep := play(t, Config{URL: o.url("master.m3u8"), Startup: time.Second})
	if rep.Stalls != 1 || rep.StallMS < 500 || rep.StallMS > 2500 {
		t.Errorf("stalls %d (%d ms), want one of about 1 s", rep.Stalls, rep.StallMS)
	}
	if !rep.OK || rep.Fragments != 16 {
		t.Errorf("ok %v fragments %d, want 16 after the stall", rep.OK, rep.Fragments)
	}
}

// TestStallWhenLiveWithheld: a live origin stops producing for 3 s, then
// releases the withheld fragments.
func TestStallWhenLiveWithheld(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder[:1], audio: 96_000, total: 1000, live: true, backlog: 6,
		freezeAt: time.Second, freezeFor: 3 * time.Second}).serve()
	rep := play(t, Config{URL: o.url("manifest.mpd"), Duration: 6 * time.Second, Startup: time.Second})
	if rep.Stalls < 1 || rep.StallMS < 500 {
		t.Errorf("stalls %d (%d ms), want at least one", rep.Stalls, rep.StallMS)
	}
	if !rep.OK {
		t.Errorf("not ok: %s", rep.Error)
	}
}

// TestRetryAndErrors: a 503 is retried once and succeeds; a fragment that
// is not moof+mdat is counted, retried, tried once more after two manifest
// reloads (the failover, which finds the same URL), and finally skipped.
func TestRetryAndErrors(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder[:1], audio: 96_000, total: 6,
		fault: func(w http.ResponseWriter, rep string, k, n int) bool {
			switch {
			case rep == "v300000" && k == 1 && n == 1:
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return true
			case rep == "a96000" && k == 2:
				// An mdat with no moof, every time.
				_, _ = w.Write([]byte{0, 0, 0, 12, 'm', 'd', 'a', 't', 1, 2, 3, 4})
				return true
			}
			return false
		}}).serve()
	rep := play(t, Config{URL: o.url("manifest.mpd"), Startup: time.Second})
	if rep.HTTPStatus["503"] != 1 || rep.InvalidFragments != 3 || rep.Errors != 4 {
		t.Errorf("http %v invalid %d errors %d, want one 503 and three invalid", rep.HTTPStatus, rep.InvalidFragments, rep.Errors)
	}
	if rep.Retries != 2 || rep.Skipped != 1 || rep.FailoverReloads != 2 || rep.Failovers != 0 {
		t.Errorf("retries %d skipped %d failover reloads %d failovers %d, want 2, 1, 2, 0", rep.Retries, rep.Skipped, rep.FailoverReloads, rep.Failovers)
	}
	if rep.FragmentsByKind["video"] != 6 || rep.FragmentsByKind["audio"] != 5 {
		t.Errorf("fragments %v", rep.FragmentsByKind)
	}
}

// TestCMCDHeaders: fragment requests carry CMCD in header mode.
func TestCMCDHeaders(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder[:2], audio: 96_000, total: 4}).serve()
	rep := play(t, Config{URL: o.url("manifest.mpd"), Startup: time.Second, SessionID: "s-1", Hooks: []RequestHook{CMCDHook()}})
	expectClean(t, rep)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.cmcd) == 0 {
		t.Fatal("no fragment requests recorded")
	}
	first := o.cmcd[0]
	for _, h := range o.cmcd {
		if h.Get("CMCD-Session") != `sf=d,sid="s-1",st=v` {
			t.Errorf("CMCD-Session %q", h.Get("CMCD-Session"))
		}
		obj, req := h.Get("CMCD-Object"), h.Get("CMCD-Request")
		if !strings.Contains(obj, "br=") || !strings.Contains(obj, "d=500") || !strings.Contains(obj, "ot=") {
			t.Errorf("CMCD-Object %q", obj)
		}
		if !strings.Contains(req, "bl=") {
			t.Errorf("CMCD-Request %q", req)
		}
	}
	if !strings.Contains(first.Get("CMCD-Request"), "su") || !strings.Contains(first.Get("CMCD-Request"), `nor="`) {
		t.Errorf("first request CMCD-Request %q: want su and nor", first.Get("CMCD-Request"))
	}
	last := o.cmcd[len(o.cmcd)-1]
	if !strings.Contains(last.Get("CMCD-Request"), "mtp=") {
		t.Errorf("last request CMCD-Request %q: want mtp", last.Get("CMCD-Request"))
	}
}

// TestRunSessions runs a small load test.
func TestRunSessions(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder, audio: 96_000, total: 4}).serve()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reports, agg := RunSessions(ctx, Config{URL: o.url("manifest.mpd"), Startup: time.Second}, 4, 200*time.Millisecond)
	b, _ := json.Marshal(agg)
	t.Logf("aggregate: %s", b)
	if len(reports) != 4 || agg.Sessions != 4 || agg.SessionsOK != 4 {
		t.Fatalf("sessions %d ok %d", agg.Sessions, agg.SessionsOK)
	}
	ids := map[string]bool{}
	for i, r := range reports {
		if r.Session != i || ids[r.SessionID] {
			t.Errorf("report %d: session %d sid %q", i, r.Session, r.SessionID)
		}
		ids[r.SessionID] = true
	}
	if agg.Fragments != 32 || agg.StartupP50MS < 0 || agg.StartupP95MS < agg.StartupP50MS || agg.Stalls != 0 {
		t.Errorf("aggregate %+v", agg)
	}
}

// TestReportJSON pins the JSON field names that tools rely on.
func TestReportJSON(t *testing.T) {
	t.Parallel()
	rep := Report{StartupMS: -1, HTTPStatus: map[string]int{"200": 3}, Bitrates: []int64{300000}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"startup_ms", "stalls", "stall_ms", "switches", "bytes", "fragments", "errors", "http_status", "format", "bitrates"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q: %s", k, b)
		}
	}
}

// TestBadManifest fails cleanly.
func TestBadManifest(t *testing.T) {
	t.Parallel()
	o := (&fakeOrigin{t: t, video: ladder, total: 4}).serve()
	rep := play(t, Config{URL: o.url("missing.mpd")})
	if rep.OK || !strings.Contains(rep.Error, "404") || rep.HTTPStatus["404"] != 2 {
		t.Errorf("ok %v error %q http %v", rep.OK, rep.Error, rep.HTTPStatus)
	}
}
