package player

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/pacing"
	"github.com/sluice-media/sluice/internal/sfv"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1e-9) }

// fragInfo is a video fragment request with the buffer at level.
func fragInfo(level time.Duration) RequestInfo {
	return RequestInfo{
		Object: ObjectVideo, Kind: KindVideo, Rendition: "v4M", Bitrate: 4_000_000,
		Duration: 2 * time.Second, Buffer: level, BufferTarget: 10 * time.Second,
	}
}

// TestPacingDecide checks the engine's decisions: no specification when the
// request is urgent, otherwise multiplier × encoding rate with more headroom
// at a lower buffer, and the gap derived from the burst.
func TestPacingDecide(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingSpec, RateMultiplier: 1.5, MinBuffer: 2 * time.Second, Burst: 4}, time.Second)
	for _, c := range []struct {
		name   string
		info   RequestInfo
		urgent bool
		mult   float64
	}{
		{"startup", func() RequestInfo { i := fragInfo(8 * time.Second); i.Startup = true; return i }(), true, 0},
		{"starved", func() RequestInfo { i := fragInfo(8 * time.Second); i.Starved = true; return i }(), true, 0},
		{"low buffer", fragInfo(1900 * time.Millisecond), true, 0},
		{"at min buffer", fragInfo(2 * time.Second), true, 0},
		{"just above min buffer", fragInfo(2800 * time.Millisecond), false, 2.85},
		{"half way", fragInfo(6 * time.Second), false, 2.25},
		{"full", fragInfo(10 * time.Second), false, 1.5},
		{"above target", fragInfo(12 * time.Second), false, 1.5},
	} {
		d := p.decide(c.info)
		if !d.Media || d.Urgent != c.urgent || d.Paced == c.urgent {
			t.Errorf("%s: media %v urgent %v paced %v, want urgent %v", c.name, d.Media, d.Urgent, d.Paced, c.urgent)
			continue
		}
		if c.urgent {
			if d.Rate != 0 || d.Burst != 0 {
				t.Errorf("%s: urgent request with rate %v burst %d", c.name, d.Rate, d.Burst)
			}
			continue
		}
		if !near(d.Multiplier, c.mult, 1e-9) || !near(d.Rate, 4e6*c.mult, 1e-9) {
			t.Errorf("%s: multiplier %v rate %v, want %v and %v", c.name, d.Multiplier, d.Rate, c.mult, 4e6*c.mult)
		}
		// gap = burst × MSS × 8 / rate
		wantGap := time.Duration(4 * 1448 * 8 / d.Rate * float64(time.Second))
		if d.Burst != 4 || d.Gap != wantGap {
			t.Errorf("%s: burst %d gap %v, want 4 and %v", c.name, d.Burst, d.Gap, wantGap)
		}
	}

	// Manifests and init segments are never paced.
	if d := p.decide(RequestInfo{Object: ObjectManifest}); d.Media || d.Paced {
		t.Errorf("manifest decision %+v", d)
	}
	if d := p.decide(RequestInfo{Object: ObjectInit, Kind: KindVideo, Buffer: 8 * time.Second}); d.Media || d.Paced {
		t.Errorf("init decision %+v", d)
	}
}

// TestPacingEncodingRate: the rate follows the instantaneous encoding rate
// (the fragment's size when a byte range gives it, else the previous
// fragment of the same rendition), not the declared bitrate.
func TestPacingEncodingRate(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingCMCD}, 2*time.Second)
	info := fragInfo(10 * time.Second)
	if d := p.decide(info); d.EncodedRate != 4e6 {
		t.Fatalf("no history: encoded rate %v, want the declared 4e6", d.EncodedRate)
	}
	// A 1.5 MB fragment of 2 s: 6 Mbit/s, a VBR peak.
	resp := &http.Response{StatusCode: 200, Header: http.Header{}}
	p.observe(resp, info, p.decide(info), time.Now(), 1_500_000, time.Second)
	d := p.decide(info)
	if d.EncodedRate != 6e6 || !near(d.Rate, 9e6, 1e-9) {
		t.Errorf("after a 6 Mbit/s fragment: encoded %v rate %v, want 6e6 and 9e6", d.EncodedRate, d.Rate)
	}
	// Another rendition has its own history.
	other := info
	other.Rendition, other.Bitrate = "v1M", 1_000_000
	if d := p.decide(other); d.EncodedRate != 1e6 {
		t.Errorf("other rendition: encoded %v, want 1e6", d.EncodedRate)
	}
	// A byte range names the size of the fragment itself.
	ranged := info
	ranged.Size = 500_000
	if d := p.decide(ranged); d.EncodedRate != 2e6 {
		t.Errorf("ranged: encoded %v, want 2e6", d.EncodedRate)
	}
}

// TestPacingLossBackoff: loss reported in CMSD on paced responses lowers the
// multiplier (never below the floor), clean reports bring it back, and loss
// reported on an unpaced response changes nothing.
func TestPacingLossBackoff(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingCMCD, RateMultiplier: 1.5, MinBuffer: 2 * time.Second}, time.Second)
	info := fragInfo(10 * time.Second)
	lossy := &http.Response{StatusCode: 200, Header: http.Header{"Cmsd-Dynamic": {`"sluice";etp=19000;rtt=41;com.sluice-loss=0.02`}}}
	clean := &http.Response{StatusCode: 200, Header: http.Header{"Cmsd-Dynamic": {`"sluice";etp=19000;rtt=20;com.sluice-loss=0`}}}

	// Loss on an urgent (unpaced) response: ignored.
	urgent := fragInfo(time.Second)
	p.observe(lossy, urgent, p.decide(urgent), time.Now(), 1_000_000, time.Second)
	if d := p.decide(info); !near(d.Multiplier, 1.5, 1e-9) {
		t.Fatalf("loss on an unpaced response moved the multiplier to %v", d.Multiplier)
	}
	// The first paced response reports on the unpaced one before it.
	p.observe(lossy, info, p.decide(info), time.Now(), 1_000_000, time.Second)
	if d := p.decide(info); !near(d.Multiplier, 1.5, 1e-9) {
		t.Fatalf("loss reported on the unpaced predecessor moved the multiplier to %v", d.Multiplier)
	}
	p.observe(lossy, info, p.decide(info), time.Now(), 1_000_000, time.Second)
	d := p.decide(info)
	if !near(d.Multiplier, 1.5*0.85, 1e-9) {
		t.Errorf("after one lossy report: multiplier %v, want %v", d.Multiplier, 1.5*0.85)
	}
	for range 10 {
		p.observe(lossy, info, p.decide(info), time.Now(), 1_000_000, time.Second)
	}
	if d := p.decide(info); !near(d.Multiplier, 1.1, 1e-9) {
		t.Errorf("after many lossy reports: multiplier %v, want the floor 1.1", d.Multiplier)
	}
	for range 20 {
		p.observe(clean, info, p.decide(info), time.Now(), 1_000_000, time.Second)
	}
	if d := p.decide(info); !near(d.Multiplier, 1.5, 1e-9) {
		t.Errorf("after clean reports: multiplier %v, want 1.5 again", d.Multiplier)
	}
	r := p.report()
	if r.Backoffs != 11 || r.LossReports != 33 || r.LossMax != 0.02 || r.Requests != 33 || r.Urgent != 1 || r.Paced != 32 {
		t.Errorf("report %+v", r)
	}
	if r.ServerRTTMS.Max != 41 || r.ETPKbps.P50 != 19000 {
		t.Errorf("rtt %+v etp %+v", r.ServerRTTMS, r.ETPKbps)
	}
}

// TestPacingHeaders: how each mode puts the decision on the wire.
func TestPacingHeaders(t *testing.T) {
	newReq := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://o/v.m4s", nil)
		r.Header.Set("CMCD-Status", "bs")
		return r
	}
	full := fragInfo(10 * time.Second)

	spec := newPacer(PacingConfig{Mode: PacingSpec, RateMultiplier: 1.5, Burst: 4}, 2*time.Second)
	r := newReq()
	spec.apply(r, spec.decide(full))
	if got := r.Header.Get("CMCD-Status"); got != "bs,rtp=6000" {
		t.Errorf("spec CMCD-Status %q", got)
	}
	if got := r.Header.Get("Sluice-Pacing"); got != "rate=6000,burst=4,gap=7.723" {
		t.Errorf("spec Sluice-Pacing %q", got)
	}
	r = newReq()
	spec.apply(r, spec.decide(fragInfo(time.Second)))
	if r.Header.Get("Sluice-Pacing") != "off" || r.Header.Get("CMCD-Status") != "bs" {
		t.Errorf("urgent spec request: %v", r.Header)
	}

	cmcd := newPacer(PacingConfig{Mode: PacingCMCD, RateMultiplier: 2}, 2*time.Second)
	r, _ = http.NewRequest(http.MethodGet, "http://o/v.m4s", nil)
	cmcd.apply(r, cmcd.decide(full))
	if r.Header.Get("CMCD-Status") != "rtp=8000" || r.Header.Get("Sluice-Pacing") != "" {
		t.Errorf("cmcd request: %v", r.Header)
	}

	// dash.js: 5 × 8 Mbit ÷ 4 s of buffer = 10 Mbit/s, even when urgent.
	dj := newPacer(PacingConfig{Mode: PacingDashJS}, 2*time.Second)
	r = newReq()
	dj.apply(r, dj.decide(fragInfo(4*time.Second)))
	if got := r.Header.Get("CMCD-Status"); got != "bs,rtp=10000" {
		t.Errorf("dashjs CMCD-Status %q", got)
	}
	r = newReq()
	dj.apply(r, dj.decide(fragInfo(0)))
	if got := r.Header.Get("CMCD-Status"); got != "bs,rtp=80000" {
		t.Errorf("dashjs CMCD-Status at an empty buffer %q", got)
	}

	off := newPacer(PacingConfig{Mode: PacingOff}, 2*time.Second)
	r = newReq()
	off.apply(r, off.decide(full))
	if len(r.Header) != 1 {
		t.Errorf("off mode added headers: %v", r.Header)
	}
}

// TestParseCMSD reads CTA-5006 headers. Decimals have at most three
// fractional digits (RFC 8941 §3.3.2; the origin rounds com.sluice-loss
// so): a fourth is a syntax error, tested below.
func TestParseCMSD(t *testing.T) {
	h := http.Header{}
	h.Add("CMSD-Static", `ot=v,br=4000,d=2000,st=l`)
	h.Add("CMSD-Dynamic", `"cdn-edge";etp=90000;rtt=3, "sluice";etp=19387;rtt=44;com.sluice-src=rtp;com.sluice-rate=15200;com.sluice-burst=2;com.sluice-gap=1.524;com.sluice-loss=0.002;com.sluice-cpu=0.05;com.sluice-hicpu;du`)
	md, err := ParseCMSD(h)
	if err != nil {
		t.Fatal(err)
	}
	want := ServerMetadata{Present: true, ServerID: "sluice", ETP: 19387, RTT: 44, AppliedRate: 15200, Burst: 2, Gap: 1.524, Loss: 0.002, CPU: 0.05, Source: "rtp", Duress: true, HighCPU: true}
	if md != want {
		t.Errorf("got %+v\nwant %+v", md, want)
	}

	md, err = ParseCMSD(http.Header{})
	if err != nil || md.Present || md.ETP != -1 || md.Loss != -1 || md.AppliedRate != -1 {
		t.Errorf("no headers: %+v %v", md, err)
	}

	// Malformed: the error is reported, what parsed before it is kept.
	for _, v := range []string{`"sluice";etp=100;rtt=20, ;;`, `"sluice";etp=100;rtt=20, "x";com.sluice-loss=0.0024`} {
		md, err = ParseCMSD(http.Header{"Cmsd-Dynamic": {v}})
		if !errors.Is(err, sfv.ErrSyntax) || !md.Present || md.ETP != 100 || md.Loss != -1 {
			t.Errorf("malformed %q: %+v %v", v, md, err)
		}
	}
}

// TestPacingSession plays a presentation from an origin that answers with
// CMSD: fragment requests while the buffer is low go without a
// specification (Sluice-Pacing: off), the others carry one whose rate is
// between 1.5× and 3× the fragment's encoding rate, rtp agrees with it, and
// the report counts what the server said.
func TestPacingSession(t *testing.T) {
	t.Parallel()
	o := &fakeOrigin{t: t, video: []int64{2_000_000}, audio: 96_000, total: 14}
	o.cmsd = func(rep string, k int, req http.Header) string {
		applied := "0"
		if v := req.Get("Sluice-Pacing"); strings.HasPrefix(v, "rate=") {
			r, _, _ := strings.Cut(strings.TrimPrefix(v, "rate="), ",")
			applied = r
		}
		return `"sluice";etp=50000;rtt=21;com.sluice-src=spec;com.sluice-rate=` + applied + `;com.sluice-loss=0`
	}
	o.serve()
	rep := play(t, Config{
		URL: o.url("manifest.mpd"), Startup: time.Second, Buffer: 3 * time.Second,
		Hooks:  []RequestHook{CMCDHook()},
		Pacing: PacingConfig{Mode: PacingSpec, RateMultiplier: 1.5, Burst: 2, Log: true},
	})
	expectClean(t, rep)
	p := rep.Pacing
	if p == nil {
		t.Fatal("no pacing report")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var paced, off int
	for _, h := range o.cmcd {
		v := h.Get("Sluice-Pacing")
		switch {
		case v == "off":
			off++
			if strings.Contains(h.Get("CMCD-Status"), "rtp=") {
				t.Errorf("urgent request with rtp: %v", h)
			}
		case strings.HasPrefix(v, "rate="):
			paced++
			var keys []string
			var nums []float64
			err := sfv.ParseDictionary(v, func(key string, it sfv.Item) error {
				f, _ := it.Number()
				keys, nums = append(keys, key), append(nums, f)
				return nil
			})
			if err != nil || len(keys) != 3 || keys[1] != "burst" || nums[1] != 2 || keys[2] != "gap" {
				t.Errorf("Sluice-Pacing %q: %v", v, err)
				continue
			}
			rate := nums[0]
			var br float64
			for _, kv := range strings.Split(h.Get("CMCD-Object"), ",") {
				if b, ok := strings.CutPrefix(kv, "br="); ok {
					br, _ = strconv.ParseFloat(b, 64)
				}
			}
			if rate < 1.4*br || rate > 3.1*br {
				t.Errorf("rate %v kbit/s for a %v kbit/s rendition", rate, br)
			}
			status := h.Get("CMCD-Status")
			_, rtpText, _ := strings.Cut(status, "rtp=")
			rtp, _ := strconv.ParseFloat(strings.Split(rtpText, ",")[0], 64)
			if math.Abs(rtp-rate) > 100 { // rtp is rounded to 100 kbit/s
				t.Errorf("CMCD-Status %q does not match rate %v", status, rate)
			}
		default:
			t.Errorf("fragment request without Sluice-Pacing: %v", h)
		}
	}
	if paced == 0 || off == 0 {
		t.Fatalf("paced %d, off %d: want both", paced, off)
	}
	if p.Paced != paced || p.Urgent != off || p.Requests != len(o.cmcd) {
		t.Errorf("report paced %d urgent %d requests %d, origin saw %d, %d, %d", p.Paced, p.Urgent, p.Requests, paced, off, len(o.cmcd))
	}
	if p.CMSDResponses != p.Requests || p.ServerPaced != paced || p.AppliedKbps.N != paced || p.LossReports != p.Requests {
		t.Errorf("CMSD accounting: %+v", p)
	}
	if p.RequestedKbps.P50 != p.AppliedKbps.P50 && math.Abs(p.RequestedKbps.P50-p.AppliedKbps.P50) > 1 {
		t.Errorf("requested p50 %v, applied p50 %v", p.RequestedKbps.P50, p.AppliedKbps.P50)
	}
	if len(p.Log) != p.Requests || p.Log[0].Paced || p.Log[0].StartMS <= 0 || p.Log[0].Bytes <= 0 {
		t.Errorf("log: %d entries, first %+v", len(p.Log), p.Log[0])
	}
}

// TestPaceLimited: a paced download that ran at its pace says nothing about
// the network; one well below its pace does.
func TestPaceLimited(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingCMCD, RateMultiplier: 1.5}, 2*time.Second)
	info := fragInfo(10 * time.Second)
	d := p.decide(info) // 6 Mbit/s
	resp := &http.Response{StatusCode: 200, Header: http.Header{}}
	if p.observe(resp, info, d, time.Now(), 1_000_000, 1400*time.Millisecond) == 0 { // 5.7 Mbit/s
		t.Error("download at the pace not seen as pace-limited")
	}
	if p.observe(resp, info, d, time.Now(), 1_000_000, 4*time.Second) != 0 { // 2 Mbit/s
		t.Error("slow download seen as pace-limited")
	}
	if p.observe(resp, info, PacingDecision{Media: true}, time.Now(), 1_000_000, time.Second) != 0 {
		t.Error("unpaced download seen as pace-limited")
	}
}

// TestPacingAgainstOrigin plays through Sluice's own server-side pacer
// (internal/pacing) on loopback: the wire format both ways is the real one.
// The server must apply the rate the engine asked for and say so in CMSD,
// and leave the urgent requests unpaced.
func TestPacingAgainstOrigin(t *testing.T) {
	t.Parallel()
	cfg := config.PacingDefaults()
	cfg.Mode = config.PacingClient
	cfg.MinBuffer = 900 * time.Millisecond
	pc := pacing.New(cfg, nil, slog.New(slog.DiscardHandler))
	o := &fakeOrigin{t: t, video: []int64{2_000_000}, audio: 96_000, total: 12, connContext: pacing.ConnContext}
	o.wrap = func(h http.Handler) http.Handler {
		return pc.Middleware(h, func(r *http.Request) bool { return strings.Contains(r.URL.Path, "/tracks/") })
	}
	o.serve()
	rep := play(t, Config{
		URL: o.url("manifest.mpd"), Startup: time.Second, Buffer: 2500 * time.Millisecond,
		Hooks:  []RequestHook{CMCDHook()},
		Pacing: PacingConfig{Mode: PacingSpec, Burst: 4, Log: true},
	})
	expectClean(t, rep)
	p := rep.Pacing
	if p == nil || p.Paced == 0 || p.Urgent == 0 {
		t.Fatalf("pacing report %+v: want paced and urgent requests", p)
	}
	if p.CMSDResponses != p.Requests || p.CMSDErrors != 0 || p.LossReports == 0 {
		t.Errorf("CMSD: %d of %d responses, %d errors, %d loss reports", p.CMSDResponses, p.Requests, p.CMSDErrors, p.LossReports)
	}
	for _, e := range p.Log {
		switch {
		case e.Paced:
			if e.Source != "spec" || math.Abs(e.AppliedKbps-e.RateKbps) > 1 {
				t.Errorf("paced request %+v: want the server to apply the requested rate", e)
			}
		case e.Urgent:
			// The server sees su, bs or a low bl in CMCD first ("urgent"),
			// else the Sluice-Pacing "off".
			if e.AppliedKbps != 0 || (e.Source != "urgent" && e.Source != "off") {
				t.Errorf("urgent request %+v: want it unpaced", e)
			}
		}
	}
}

// TestPacingProbe: below the top rendition every ProbeEvery-th video
// request goes unpaced (Sluice-Pacing: off) so that the player can learn
// it may switch up; at the top rendition, and for audio, never.
func TestPacingProbe(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingSpec, ProbeEvery: 3}, 2*time.Second)
	below := fragInfo(10 * time.Second)
	below.TopBitrate = 8_000_000
	var probes []int
	for i := range 9 {
		d := p.decide(below)
		if d.Probe {
			probes = append(probes, i)
			if d.Paced || d.Rate != 0 {
				t.Errorf("probe %d is paced: %+v", i, d)
			}
			r, _ := http.NewRequest(http.MethodGet, "http://o/v.m4s", nil)
			p.apply(r, d)
			if r.Header.Get("Sluice-Pacing") != "off" {
				t.Errorf("probe request header %q", r.Header.Get("Sluice-Pacing"))
			}
		}
	}
	if len(probes) != 3 || probes[0] != 2 || probes[1] != 5 {
		t.Errorf("probes at %v, want every third request", probes)
	}
	top := below
	top.Bitrate = top.TopBitrate
	audio := below
	audio.Kind, audio.Object = KindAudio, ObjectAudio
	for range 10 {
		if p.decide(top).Probe || p.decide(audio).Probe {
			t.Fatal("probe at the top rendition or for audio")
		}
	}
}

// TestPacingCapacityCap: the rate is capped at CapFraction of the capacity
// measured on unpaced video downloads (a pace above the bottleneck only
// fills its queue), never below FloorMultiplier × the encoding rate; a
// paced download that fell short of its pace lowers the capacity.
func TestPacingCapacityCap(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingSpec, RateMultiplier: 1.5}, 2*time.Second)
	resp := &http.Response{StatusCode: 200, Header: http.Header{}}
	info := fragInfo(3 * time.Second) // low buffer: 3 − 1.5×(1/8) = 2.8125 × 4 Mbit/s
	if d := p.decide(info); !near(d.Rate, 11.25e6, 1e-9) || d.Capped {
		t.Fatalf("no capacity known yet: rate %v capped %v", d.Rate, d.Capped)
	}
	// An unpaced (urgent) 1 MB download in 1 s: 8 Mbit/s of capacity. A
	// small one does not count.
	urgent := fragInfo(time.Second)
	p.observe(resp, urgent, p.decide(urgent), time.Now(), 1_000_000, time.Second)
	small := urgent
	small.Rendition = "other"
	p.observe(resp, small, p.decide(small), time.Now(), 100_000, 10*time.Millisecond)
	d := p.decide(info)
	if !d.Capped || !near(d.Rate, 7.2e6, 1e-9) {
		t.Errorf("capped rate %v (capped %v), want 0.9 × 8 Mbit/s", d.Rate, d.Capped)
	}
	// A paced download held back by the path (2 Mbit/s against 7.2): the
	// capacity drops, and the floor (1.1 × 4 Mbit/s) holds.
	p.observe(resp, info, d, time.Now(), 1_000_000, 4*time.Second)
	d = p.decide(info)
	if !near(d.Rate, 4.4e6, 1e-9) {
		t.Errorf("after a slow paced download: rate %v, want the floor 4.4e6", d.Rate)
	}
	if r := p.report(); r.CapacityKbps != 2000 || r.Capped != 1 {
		t.Errorf("report capacity %v capped %d", r.CapacityKbps, r.Capped)
	}
	// Downloads that reach their pace again bring the capacity back, 10 %
	// at a time, up to the unpaced measurement.
	for range 30 {
		d := p.decide(info)
		p.observe(resp, info, d, time.Now(), 1_000_000, time.Duration(8e6/d.Rate*float64(time.Second)))
	}
	if d := p.decide(info); !near(d.Rate, 7.2e6, 1e-9) {
		t.Errorf("after recovery: rate %v, want 0.9 × 8 Mbit/s again", d.Rate)
	}
}

// TestServerPacedLimited: a download the server paced on its own estimate
// (CMSD com.sluice-rate) at about that rate measured the pace, not the
// network.
func TestServerPacedLimited(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingOff}, 2*time.Second)
	info := fragInfo(10 * time.Second)
	paced := &http.Response{StatusCode: 200, Header: http.Header{"Cmsd-Dynamic": {`"sluice";com.sluice-src=estimate;com.sluice-rate=12000`}}}
	if p.observe(paced, info, p.decide(info), time.Now(), 1_500_000, time.Second) != 12e6 { // 12 Mbit/s
		t.Error("server-paced download at its pace not seen as pace-limited")
	}
	if p.observe(paced, info, p.decide(info), time.Now(), 1_500_000, 3*time.Second) != 0 { // 4 Mbit/s
		t.Error("server-paced download well below its pace seen as pace-limited")
	}
}

// TestPacingUpSwitchHeadroom: below the top video rendition the rate is at
// least 1.3 × the top bitrate (so that a download at the pace shows room to
// switch up), still within the capacity cap.
func TestPacingUpSwitchHeadroom(t *testing.T) {
	p := newPacer(PacingConfig{Mode: PacingSpec, RateMultiplier: 1.5}, 2*time.Second)
	below := fragInfo(10 * time.Second) // 4 Mbit/s
	below.TopBitrate = 10_000_000
	if d := p.decide(below); !near(d.Rate, 13e6, 1e-9) {
		t.Errorf("below the top: rate %v, want 1.3 × 10 Mbit/s", d.Rate)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{}}
	urgent := fragInfo(time.Second)
	p.observe(resp, urgent, p.decide(urgent), time.Now(), 1_000_000, 800*time.Millisecond) // capacity 10 Mbit/s
	if d := p.decide(below); !near(d.Rate, 9e6, 1e-9) || !d.Capped {
		t.Errorf("capped: rate %v, want 0.9 × 10 Mbit/s", d.Rate)
	}
}
