package pacing

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/config"
)

func TestEstimatorObserve(t *testing.T) {
	type step struct {
		m, pace uint64
		probe   bool
		want    observation
		est     uint64 // the estimate after the step
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"no measurement says nothing", []step{
			{0, 0, false, obsNone, 0},
			{0, 1_000_000, true, obsNone, 0},
		}},
		{"unpaced measurements: the maximum of the last 4", []step{
			{2_000_000, 0, false, obsSample, 2_000_000},
			{2_500_000, 0, false, obsSample, 2_500_000},
			{1_000_000, 0, false, obsSample, 2_500_000},
			{1_000_000, 0, false, obsSample, 2_500_000},
			{1_000_000, 0, false, obsSample, 2_500_000},
			{1_100_000, 0, false, obsSample, 1_100_000}, // 2.5e6 rolled out
		}},
		{"pace-limited: never lowers", []step{
			{2_500_000, 0, false, obsSample, 2_500_000},
			{2_250_000, 2_250_000, false, obsNone, 2_500_000}, // delivered its pace
			{1_950_000, 2_250_000, false, obsNone, 2_500_000}, // 0.87 of the pace: still the pace's doing
		}},
		{"pace-limited above the estimate: raises", []step{
			{2_000_000, 0, false, obsSample, 2_000_000},
			{2_200_000, 2_250_000, false, obsSample, 2_200_000},
		}},
		{"path-limited paced responses: the estimate drops to the higher of two in a row", []step{
			{2_500_000, 0, false, obsSample, 2_500_000},
			{3_000_000, 0, false, obsSample, 3_000_000},
			{1_000_000, 2_250_000, false, obsLow, 3_000_000},      // < 0.85 x 2.25e6: one is not enough
			{1_200_000, 2_250_000, false, obsDecrease, 1_200_000}, // the second in a row
			{900_000, 0, false, obsSample, 1_200_000},             // the old samples are gone
		}},
		{"a pace-limited response between two low ones: no decrease", []step{
			{2_500_000, 0, false, obsSample, 2_500_000},
			{1_000_000, 2_250_000, false, obsLow, 2_500_000},
			{2_200_000, 2_250_000, false, obsNone, 2_500_000},
			{1_000_000, 2_250_000, false, obsLow, 2_500_000},
		}},
		{"a probe held by the path is a sample, also below the estimate", []step{
			{2_500_000, 0, false, obsSample, 2_500_000},
			{2_400_000, 3_125_000, true, obsSample, 2_500_000},
		}},
		{"a probe that found room raises", []step{
			{2_000_000, 0, false, obsSample, 2_000_000},
			{2_500_000, 2_500_000, true, obsSample, 2_500_000},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e estimator
			for i, s := range c.steps {
				if got := e.observe(s.m, s.pace, s.probe); got != s.want || e.rate() != s.est {
					t.Fatalf("step %d %+v: %v, estimate %d; want %v, %d", i, s, got, e.rate(), s.want, s.est)
				}
			}
		})
	}
}

func TestSpanMeter(t *testing.T) {
	// A sample every 25 ms of busy time; segs is the segments delivered
	// in the 25 ms before it (MSS 1000), ok whether the socket was
	// path-limited at the sample.
	type sample struct {
		segs int
		ok   bool
	}
	run := func(n int, segs int, ok bool) []sample {
		s := make([]sample, n)
		for i := range s {
			s[i] = sample{segs, ok}
		}
		return s
	}
	cat := func(parts ...[]sample) []sample {
		var s []sample
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	for _, c := range []struct {
		name    string
		minRTT  uint32
		samples []sample
		want    uint64
	}{
		{"path-limited throughout: 100 segments / 25 ms", 20_000, run(20, 100, true), 4_000_000},
		{"slow start does not count", 20_000, cat(run(4, 10, false), run(12, 50, true)), 2_000_000},
		{"the request's round trip (nothing delivered) does not count", 20_000, cat(run(2, 0, true), run(12, 100, true)), 4_000_000},
		{"an application-limited gap splits; the longest stretch wins",
			20_000, cat(run(10, 100, true), run(1, 5, false), run(14, 60, true)), 2_400_000},
		{"a stretch under 200 ms is none", 20_000, cat(run(8, 100, true), run(1, 0, false), run(8, 100, true)), 0},
		{"small response (under 256 KiB) is none", 20_000, run(12, 20, true), 0},
		{"long path: 4 RTTs at least", 100_000, run(15, 100, true), 0},
		{"long path: measured after 4 RTTs", 100_000, run(18, 100, true), 4_000_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSpanMeter(1000, c.minRTT)
			busy, del := uint64(5_000_000), uint32(1000)
			for _, x := range c.samples {
				busy += 25_000
				del += uint32(x.segs)
				s.add(busy, del, 1000, x.ok)
			}
			if got := s.measurement(); got != c.want {
				t.Fatalf("measurement %d, want %d (longest stretch %d µs, %d bytes)", got, c.want, s.bestUs, s.bytes())
			}
		})
	}
}

func TestAppLimited(t *testing.T) {
	var ti unix.TCPInfo
	if appLimited(&ti) {
		t.Fatal("zero TCP_INFO is application-limited")
	}
	b := (*[8]byte)(unsafe.Pointer(&ti))
	b[7] = 1
	if bigEndian {
		b[7] = 0x80
	}
	if !appLimited(&ti) {
		t.Fatal("bit not read")
	}
	// A real socket: a 100-byte write, acknowledged, was all the
	// application had: the rate sample is application-limited.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		ti, err := TCPInfo(s.(*net.TCPConn))
		if err != nil {
			t.Fatal(err)
		}
		if ti.Unacked == 0 {
			if !appLimited(ti) {
				t.Fatalf("acknowledged small write not application-limited (byte 7: %#x)", (*[8]byte)(unsafe.Pointer(ti))[7])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("100 bytes never acknowledged")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKernelBurst(t *testing.T) {
	for _, c := range []struct {
		name     string
		rate     uint64
		mss, rtt uint32
		cc       string
		minTSO   uint32
		want     int
	}{
		{"20 Mbit/s, 20 ms, cubic: 2 segments", 2_500_000, 1448, 20_000, "cubic", 2, 2},
		{"200 Mbit/s, 20 ms: about 1 ms of data", 25_000_000, 1448, 20_000, "cubic", 2, 16},
		{"1 Gbit/s: at most one 64 KB GSO packet", 125_000_000, 1448, 20_000, "cubic", 2, 45},
		{"raised min_tso_segs", 2_500_000, 1448, 20_000, "cubic", 10, 10},
		{"bbr ignores the sysctl", 2_500_000, 1448, 20_000, "bbr", 10, 2},
		{"bbr below 1.2 Mbit/s", 100_000, 1448, 20_000, "bbr", 2, 1},
		{"loopback: a whole 64 KB GSO packet", 500_000, 65483, 20, "bbr", 2, 2},
		{"LAN 200 us: 64 KB", 2_500_000, 1448, 200, "cubic", 2, 45},
		{"no mss", 2_500_000, 0, 20_000, "cubic", 2, 0},
	} {
		if got := kernelBurst(c.rate, c.mss, c.rtt, c.cc, c.minTSO, 9); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

func TestCPUSampler(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stat")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := cpuSampler{path: path}
	write("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n")
	if _, ok, err := c.sample(); ok || err != nil {
		t.Fatalf("first sample: ok %v err %v", ok, err)
	}
	write("cpu  200 0 200 800 100 0 0 0 0 0\n") // +200 busy of +300
	load, ok, err := c.sample()
	if !ok || err != nil || load < 0.66 || load > 0.67 {
		t.Fatalf("load %v ok %v err %v", load, ok, err)
	}
	write("intr 1\n")
	if _, _, err := c.sample(); err == nil {
		t.Fatal("bad /proc/stat accepted")
	}
	// The real file parses.
	real := cpuSampler{path: "/proc/stat"}
	if _, _, err := real.sample(); err != nil {
		t.Fatal(err)
	}
}

// TestDecideServerEstimate: the server-side decision rules, without a
// socket (decide only reads TCP_INFO for per-phase specifications).
func TestDecideServerEstimate(t *testing.T) {
	cfg := config.PacingDefaults()
	cfg.Mode = config.PacingServer
	cfg.ReprobeEvery = 10
	cfg.ReprobeInterval = 30 * time.Second
	p := New(cfg, nil, slog.New(slog.DiscardHandler))
	now := time.Now()
	const est = 2_500_000 // 20 Mbit/s
	for _, c := range []struct {
		name       string
		cmcd       string // CMCD query payload; "" none
		responses  int    // earlier responses on the connection
		est        uint64
		sinceProbe int
		probeAge   time.Duration
		src        Source
		rate       uint64
		probe      bool
	}{
		{"bl equal to min_buffer is urgent", "bl=2000,br=11000,d=2000", 5, est, 0, time.Second, SrcUrgent, 0, false},
		{"bl below min_buffer is urgent", "bl=100", 5, est, 0, time.Second, SrcUrgent, 0, false},
		{"bl above min_buffer is paced", "bl=2100", 5, est, 0, time.Second, SrcEstimate, 2_250_000, false},
		{"su is urgent", "su,bl=9000", 5, est, 0, time.Second, SrcUrgent, 0, false},
		{"first response: unpaced", "bl=6000", 0, 0, 0, 0, SrcFirst, 0, false},
		{"no estimate yet: unpaced", "bl=6000", 3, 0, 0, time.Second, SrcProbe, 0, false},
		{"estimate: fraction of it", "", 3, est, 0, time.Second, SrcEstimate, 2_250_000, false},
		{"never below 1.2 x br", "bl=6000,br=11000,d=2000", 3, 1_000_000, 0, time.Second, SrcEstimate, 1_650_000, false},
		{"br under the estimate: no effect", "bl=6000,br=5000,d=2000", 3, est, 0, time.Second, SrcEstimate, 2_250_000, false},
		{"probe by count: paced at 1.25 x the estimate", "bl=6000,br=11000,d=2000", 12, est, 9, time.Second, SrcProbe, 3_125_000, true},
		{"probe by age", "bl=6000,br=11000,d=2000", 12, est, 2, 31 * time.Second, SrcProbe, 3_125_000, true},
		{"probe never below 1.2 x br", "bl=6000,br=30000,d=2000", 12, est, 9, time.Second, SrcProbe, 4_500_000, true},
		{"small object: 8 x br", "bl=6000,br=128,d=2000,ot=a", 12, est, 9, time.Second, SrcSmall, 128_000, false},
		{"small object without an estimate: 8 x br", "bl=6000,br=128,d=2000,ot=a", 3, 0, 0, time.Second, SrcSmall, 128_000, false},
		{"small object, first on its connection: 8 x br", "bl=6000,br=128,d=2000,ot=a", 0, 0, 0, 0, SrcSmall, 128_000, false},
		{"small object: at most the estimate's pace", "bl=6000,br=1000,d=2000", 3, 100_000, 0, time.Second, SrcSmall, 150_000, false},
		{"small urgent object: unpaced", "bl=1000,br=128,d=2000,ot=a", 3, est, 0, time.Second, SrcUrgent, 0, false},
		{"256 KiB is not small", "bl=6000,br=1049,d=2000", 3, est, 0, time.Second, SrcEstimate, 2_250_000, false},
		{"no probe on audio without br and d", "bl=6000,ot=a", 12, est, 9, time.Second, SrcEstimate, 2_250_000, false},
		{"probe without CMCD", "", 12, est, 9, time.Second, SrcProbe, 3_125_000, true},
		{"no probe when the pace carries 1.3 x the top bitrate", "bl=6000,br=11000,d=2000,tb=11000", 12, est, 9, time.Second, SrcEstimate, 2_250_000, false},
		{"probe when the top bitrate needs more", "bl=6000,br=11000,d=2000,tb=15000", 12, est, 9, time.Second, SrcProbe, 3_125_000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := &connState{responses: c.responses, sinceProbe: c.sinceProbe, lastProbe: now.Add(-c.probeAge)}
			if c.est > 0 {
				cs.est.add(c.est)
			}
			r := httptest.NewRequest(http.MethodGet, "/v/1.m4s", nil)
			if c.cmcd != "" {
				r = httptest.NewRequest(http.MethodGet, "/v/1.m4s?CMCD="+url.QueryEscape(c.cmcd), nil)
			}
			in := p.readInput(r, cs)
			d := p.decide(cs, &unix.TCPInfo{}, &in, now)
			if d.src != c.src || d.rate != c.rate || d.probe != c.probe {
				t.Fatalf("decision %v rate %d probe %v; want %v %d %v", d.src, d.rate, d.probe, c.src, c.rate, c.probe)
			}
			if !d.watch || !d.measure {
				t.Errorf("server-mode response not measured: watch %v measure %v", d.watch, d.measure)
			}
			switch {
			case c.probe && (cs.sinceProbe != 0 || !cs.lastProbe.Equal(now)):
				t.Errorf("probe did not restart the probe clock: %d, %v", cs.sinceProbe, cs.lastProbe)
			case c.src == SrcEstimate && cs.sinceProbe != c.sinceProbe+1:
				t.Errorf("responses since the probe %d, want %d", cs.sinceProbe, c.sinceProbe+1)
			}
		})
	}
}

func TestDrainTime(t *testing.T) {
	for _, c := range []struct {
		rtt, minRTT uint32
		want        uint64
	}{
		{20_000, 20_000, 0},        // no queue
		{19_000, 20_000, 0},        // smoothed below the minimum
		{45_000, 20_000, 100_000},  // 25 ms of queue: 4 x 25 ms
		{220_000, 20_000, 250_000}, // at most the probe's span
	} {
		if got := drainTime(c.rtt, c.minRTT); got != c.want {
			t.Errorf("rtt %d min %d: %d, want %d", c.rtt, c.minRTT, got, c.want)
		}
	}
}
