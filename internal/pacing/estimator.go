package pacing

// Bottleneck-rate estimation from TCP_INFO, and the kernel's burst size.

const (
	// minWindowUs is the shortest window a rate is measured over: at least
	// 200 ms of busy time (about 10 RTT on a 20 ms path), so that a single
	// ACK burst cannot inflate the estimate the way the maximum of
	// tcpi_delivery_rate does (+7 % with BBR, research §3.5).
	minWindowUs = 200_000
	// estSamples is how many unpaced measurements the estimate is the
	// maximum of.
	estSamples = 4
	// decreaseFactor: a paced response delivered below this fraction of its
	// pace was limited by the path, not by the pace: the path got slower.
	decreaseFactor = 0.85
)

// estimator estimates a connection's bottleneck rate (bytes/s) as delivered
// segments × MSS over busy time (tcpi_delivered, tcpi_busy_time), in
// windows of at least minWindowUs.
//
// Unpaced responses (the first, and the periodic probes) measure the path:
// the estimate is the maximum of the last estSamples such measurements.
// A paced response can only measure up to its pace; it counts only when it
// came out clearly below the pace (the path got slower), and then it
// replaces the estimate.
type estimator struct {
	accBytes, accUs uint64 // accumulated responses of one pacing class
	accRate         uint64 // the class: pace of the accumulated responses (0: unpaced)
	samples         [estSamples]uint64
	n, next         int
	est             uint64
}

// rate returns the estimate in bytes/s (0: none yet).
func (e *estimator) rate() uint64 { return e.est }

// addResponse accounts one finished response: bytes delivered over busyUs
// of busy time, sent at pace bytes/s (0: unpaced). Consecutive responses of
// the same pace are pooled until the window is long enough.
func (e *estimator) addResponse(bytes, busyUs, pace uint64) {
	if pace != e.accRate {
		e.accBytes, e.accUs, e.accRate = 0, 0, pace
	}
	if bytes == 0 || busyUs == 0 {
		return
	}
	e.accBytes += bytes
	e.accUs += busyUs
	if e.accUs < minWindowUs {
		return
	}
	r := e.accBytes * 1_000_000 / e.accUs
	e.accBytes, e.accUs = 0, 0
	if pace == 0 {
		e.addUnpaced(r)
	} else if float64(r) < decreaseFactor*float64(pace) {
		e.decrease(r)
	}
}

// addUnpaced records a measurement of an unpaced send.
func (e *estimator) addUnpaced(r uint64) {
	if r == 0 {
		return
	}
	e.samples[e.next] = r
	e.next = (e.next + 1) % estSamples
	e.n = min(e.n+1, estSamples)
	e.est = 0
	for i := 0; i < e.n; i++ {
		e.est = max(e.est, e.samples[i])
	}
}

// decrease replaces the estimate by a lower measurement.
func (e *estimator) decrease(r uint64) {
	e.samples = [estSamples]uint64{}
	e.n, e.next = 0, 0
	e.addUnpaced(r)
}

// windowMeter finds the highest rate over windows of at least minWindowUs
// of busy time within one response, from TCP_INFO samples taken while it
// is sent (the response watcher).
type windowMeter struct {
	busy [32]uint64
	del  [32]uint32
	n    int // samples stored (at most len(busy))
	head int // index of the next sample
	max  uint64
}

// add records a sample (busy time µs, delivered segments) and updates max
// with the rate over the shortest window of at least minWindowUs ending
// here.
func (w *windowMeter) add(busyUs uint64, delivered uint32, mss uint32) {
	for k := 1; k <= w.n; k++ {
		i := (w.head - k + len(w.busy)) % len(w.busy)
		db := busyUs - w.busy[i]
		if db >= minWindowUs {
			r := uint64(delivered-w.del[i]) * uint64(mss) * 1_000_000 / db
			w.max = max(w.max, r)
			break
		}
	}
	w.busy[w.head], w.del[w.head] = busyUs, delivered
	w.head = (w.head + 1) % len(w.busy)
	w.n = min(w.n+1, len(w.busy))
}

// gsoMaxSize is the largest TSO/GSO packet the kernel builds by default
// (GSO_LEGACY_MAX_SIZE; BIG TCP devices may allow more).
const gsoMaxSize = 65536

// kernelBurst models the segments the kernel's TCP pacing sends back to
// back at a pacing rate (bytes/s): tcp_tso_autosize() sizes each TSO/GSO
// packet to rate >> sk_pacing_shift (10: about 1 ms of data), plus
// gso_max_size >> (min_rtt >> tcp_tso_rtt_log) for very short paths, at most
// gso_max_size, and at least min_tso_segs — the tcp_min_tso_segs sysctl,
// except with BBR, which uses 1 below 1.2 Mbit/s and 2 above. The pacing
// timer then waits len/rate before the next packet. A requested burst
// below this cannot be honoured per socket; Sluice reports this value.
func kernelBurst(rate uint64, mss, minRTTus uint32, cc string, minTSOSysctl, rttLog uint32) int {
	if mss == 0 || rate == 0 {
		return 0
	}
	bytes := rate >> 10
	if rttLog < 32 {
		if r := minRTTus >> rttLog; r < 32 {
			bytes += gsoMaxSize >> r
		}
	}
	bytes = min(bytes, gsoMaxSize)
	minTSO := uint64(max(minTSOSysctl, 1))
	if cc == "bbr" {
		minTSO = 2
		if rate < 1_200_000/8 {
			minTSO = 1
		}
	}
	return int(max(bytes/uint64(mss), minTSO))
}
