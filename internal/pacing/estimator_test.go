package pacing

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEstimator(t *testing.T) {
	var e estimator
	// Unpaced responses pool until 200 ms of busy time.
	e.addResponse(100_000, 50_000, 0)
	if e.rate() != 0 {
		t.Fatalf("estimate from 50 ms: %d", e.rate())
	}
	e.addResponse(300_000, 150_000, 0) // 400 kB in 200 ms
	if e.rate() != 2_000_000 {
		t.Fatalf("estimate %d, want 2e6", e.rate())
	}
	// A faster unpaced measurement raises it (max of the last samples).
	e.addUnpaced(2_500_000)
	if e.rate() != 2_500_000 {
		t.Fatalf("estimate %d", e.rate())
	}
	// A paced response at its pace says nothing.
	e.addResponse(450_000, 200_000, 2_250_000)
	if e.rate() != 2_500_000 {
		t.Fatalf("pace-limited sample changed the estimate: %d", e.rate())
	}
	// A paced response well below its pace lowers it.
	e.addResponse(200_000, 200_000, 2_250_000) // 1 MB/s < 0.85 x 2.25
	if e.rate() != 1_000_000 {
		t.Fatalf("estimate %d after a slow paced response, want 1e6", e.rate())
	}
	// A change of class drops the pool.
	e.addResponse(100_000, 150_000, 0)
	e.addResponse(100_000, 100_000, 900_000)
	if e.accUs != 100_000 || e.accRate != 900_000 {
		t.Fatalf("pool %+v", e)
	}
	// Old samples roll out.
	var f estimator
	for _, r := range []uint64{9, 1, 1, 1, 1} {
		f.addUnpaced(r)
	}
	if f.rate() != 1 {
		t.Fatalf("max of the last 4: %d", f.rate())
	}
}

func TestWindowMeter(t *testing.T) {
	var w windowMeter
	// Slow start: 10 segments in the first 100 ms, then 100 segments per
	// 100 ms (of 1000 bytes): the best 200 ms window is 1 MB/s.
	busy, del := uint64(0), uint32(0)
	w.add(busy, del, 1000)
	for i := 1; i <= 8; i++ {
		busy += 100_000
		if i == 1 {
			del += 10
		} else {
			del += 100
		}
		w.add(busy, del, 1000)
	}
	if w.max != 1_000_000 {
		t.Fatalf("max %d, want 1e6", w.max)
	}
	// No window of 200 ms: nothing.
	var s windowMeter
	s.add(0, 0, 1000)
	s.add(150_000, 500, 1000)
	if s.max != 0 {
		t.Fatalf("max %d from 150 ms", s.max)
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
