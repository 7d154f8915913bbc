package pacing

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bottleneck-rate estimation from TCP_INFO, and the kernel's burst size.
//
// The estimator only learns from path-limited delivery: a stretch of at
// least minWindowUs (and minWindowRTTs round trips) of busy time during
// which the socket was neither in slow start (BBR: STARTUP) nor
// application-limited, in a response that delivered at least
// minMeasureBytes. A paced response whose delivery reached its pace was
// limited by the pace, not by the path: it can raise the estimate (when it
// measured more than the estimate), never lower it.

const (
	// minWindowUs is the shortest stretch a rate is measured over: at least
	// 200 ms of busy time (about 10 RTT on a 20 ms path), so that a single
	// ACK burst cannot inflate the estimate the way the maximum of
	// tcpi_delivery_rate does (+7 % with BBR, research §3.5).
	minWindowUs = 200_000
	// minWindowRTTs: on long paths the stretch also spans this many
	// minimum RTTs (one RTT of a cwnd-limited flight is no rate).
	minWindowRTTs = 4
	// minMeasureBytes is the smallest response that can measure the path:
	// audio fragments, init segments and other small responses are over in
	// a round trip or two and measure the RTT, not the bottleneck.
	minMeasureBytes = 256 << 10
	// estSamples is how many path measurements the estimate is the
	// maximum of.
	estSamples = 4
	// decreaseFactor: a paced response delivered below this fraction of its
	// pace was limited by the path, not by the pace: the path got slower.
	// It takes decreaseAfter such responses in a row to lower the estimate
	// (one can be a loaded server that did not keep the socket busy).
	decreaseFactor = 0.85
	decreaseAfter  = 2
	// probeGain: a probe is paced at this multiple of the estimate (not
	// unpaced: an unpaced response after a paced one starts BBR over in
	// STARTUP, or lets CUBIC fill the queue, and puts the standing queue
	// back). Above the estimate, it measures the path when the path is
	// the limit and finds up to probeGain × the estimate when it has room.
	probeGain = 1.25
	// probeSpanUs: a probe stops probing once it has measured this much
	// path-limited busy time; the rest of the response is paced from the
	// new estimate, so a probe holds the queue for a fraction of a second.
	probeSpanUs = 250_000
	// drainGain, drainRTTs: after a probe, the response is paced at
	// drainGain × the estimate for drainRTTs × the RTT's excess over the
	// minimum RTT (the queue the probe built, in time: at 0.75 the queue
	// shrinks by a quarter of the bottleneck rate), then at the estimate's
	// pace, instead of leaving the queue to drain at the 10 % the pace
	// leaves free.
	drainGain = 0.75
	drainRTTs = 4
	// topHeadroom: no probe while the pace already exceeds this multiple of
	// the ladder's top bitrate (CMCD tb): a player's ABR switches up when
	// its throughput estimate is about 1.25 × the next bitrate, so more
	// room would change nothing.
	topHeadroom = 1.3
	// smallObjectGain: an object too small to measure the path (CMCD
	// br × d under minMeasureBytes: audio, low video renditions) is paced
	// at this multiple of its bitrate, so that it arrives in an eighth of
	// its duration instead of as a burst into the queue the video's pace
	// keeps short (at most the estimate's pace when there is one).
	smallObjectGain = 8
	// brFloor: a response is never paced below this multiple of the
	// object's encoded bitrate (CMCD br), so that the player cannot starve
	// because of the estimate.
	brFloor = 1.2
)

// estimator estimates a connection's bottleneck rate (bytes/s) from
// path-limited measurements: the estimate is the maximum of the last
// estSamples of them; a paced response that the path held clearly below
// its pace replaces them (the path got slower).
type estimator struct {
	samples [estSamples]uint64
	n, next int
	est     uint64
	lows    int    // paced responses in a row held below decreaseFactor × their pace
	low     uint64 // the highest of their measurements
}

// rate returns the estimate in bytes/s (0: none yet).
func (e *estimator) rate() uint64 { return e.est }

// observation says what a measurement did to the estimate.
type observation uint8

const (
	obsNone     observation = iota // no measurement, or a pace-limited one at or below the estimate
	obsSample                      // a path measurement (unpaced or probe), or a pace-limited one above the estimate
	obsDecrease                    // paced responses limited by the path: the estimate dropped to them
	obsLow                         // a paced response limited by the path, not yet enough to lower the estimate
)

var observationNames = [...]string{"none", "sample", "decrease", "low"}

// String names the observation (debug logs).
func (o observation) String() string { return observationNames[o] }

// observe applies one response's measurement: m is its delivery rate over
// its longest path-limited stretch (bytes/s; 0: none), pace the rate it was
// paced at (0: unpaced), probe whether it was a probe.
//
//   - unpaced, or a probe: m measured the path (a probe paced above the
//     estimate is either held by the path, or finds more room): a sample;
//   - paced below 0.85 × its pace: the path held it back; after
//     decreaseAfter such responses in a row the estimate drops to the
//     highest of their measurements;
//   - paced at its pace: limited by the pace; it only raises the estimate,
//     when m is above it.
func (e *estimator) observe(m, pace uint64, probe bool) observation {
	if m == 0 {
		return obsNone
	}
	low := pace > 0 && !probe && float64(m) < decreaseFactor*float64(pace)
	if !low {
		e.lows, e.low = 0, 0
	}
	switch {
	case pace == 0 || probe:
		e.add(m)
		return obsSample
	case low:
		e.lows, e.low = e.lows+1, max(e.low, m)
		if e.lows < decreaseAfter {
			return obsLow
		}
		r := e.low
		e.samples = [estSamples]uint64{}
		e.n, e.next, e.lows, e.low = 0, 0, 0, 0
		e.add(r)
		return obsDecrease
	case m > e.est:
		e.add(m)
		return obsSample
	}
	return obsNone
}

// add records a measurement.
func (e *estimator) add(r uint64) {
	e.samples[e.next] = r
	e.next = (e.next + 1) % estSamples
	e.n = min(e.n+1, estSamples)
	e.est = 0
	for i := 0; i < e.n; i++ {
		e.est = max(e.est, e.samples[i])
	}
}

// spanMeter measures the delivery rate of one response over its stretches
// of path-limited busy time, from TCP_INFO samples taken while it is sent
// (the response watcher). A sample that is not path-limited (slow start,
// application-limited) ends the current stretch; the next path-limited
// sample starts a new one. The measurement is the rate over the longest
// stretch of at least the minimum window.
type spanMeter struct {
	minUs     uint64 // the minimum window, µs of busy time
	open      bool   // a stretch is open
	startBusy uint64
	startDel  uint32
	spanUs    uint64 // the current stretch's length so far
	bestUs    uint64 // the longest stretch of at least minUs (0: none yet)
	best      uint64 // its rate, bytes/s
	firstDel  uint32 // tcpi_delivered when the response started
	lastDel   uint32
	lastMSS   uint32
}

// newSpanMeter returns a meter for a response that started at
// tcpi_delivered = delivered, on a path of minimum RTT minRTTus.
func newSpanMeter(delivered, minRTTus uint32) spanMeter {
	return spanMeter{
		minUs:    max(minWindowUs, minWindowRTTs*uint64(minRTTus)),
		firstDel: delivered,
		lastDel:  delivered,
	}
}

// add records a sample: busy time (µs), delivered segments, MSS, and
// whether the socket was path-limited at the sample.
func (s *spanMeter) add(busyUs uint64, delivered, mss uint32, pathLimited bool) {
	s.lastDel, s.lastMSS = delivered, mss
	if !pathLimited {
		s.open, s.spanUs = false, 0
		return
	}
	if !s.open {
		if delivered == s.firstDel {
			return // nothing delivered yet: the request's round trip
		}
		s.open, s.startBusy, s.startDel, s.spanUs = true, busyUs, delivered, 0
		return
	}
	s.spanUs = busyUs - s.startBusy
	if s.spanUs < s.minUs || s.spanUs < s.bestUs {
		return
	}
	s.bestUs = s.spanUs
	s.best = uint64(delivered-s.startDel) * uint64(mss) * 1_000_000 / s.spanUs
}

// bytes returns the bytes the response delivered so far.
func (s *spanMeter) bytes() uint64 { return uint64(s.lastDel-s.firstDel) * uint64(s.lastMSS) }

// measurement returns the rate over the longest path-limited stretch, 0
// when there was none of the minimum window or the response was smaller
// than minMeasureBytes.
func (s *spanMeter) measurement() uint64 {
	if s.bestUs == 0 || s.bytes() < minMeasureBytes {
		return 0
	}
	return s.best
}

// pathLimited reports whether a TCP_INFO sample shows path-limited sending:
// not in slow start (phaseOf; BBR's STARTUP) and the last delivery-rate
// sample not application-limited.
func pathLimited(ti *unix.TCPInfo, cc string, bbrGain func() uint32) bool {
	return !appLimited(ti) && phaseOf(ti, cc, bbrGain) != PhaseSlowStart
}

// bigEndian is the machine's byte order (for the bit field below).
var bigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

// appLimited returns tcpi_delivery_rate_app_limited: the last delivery
// rate sample was taken while the application did not keep the socket
// busy. The kernel's struct tcp_info has it as a one-bit field in byte 7
// (after tcpi_options and the window-scale nibbles), which x/sys's TCPInfo
// leaves as padding; GCC allocates bit fields from the least significant
// bit on little-endian machines and from the most significant one on
// big-endian ones.
func appLimited(ti *unix.TCPInfo) bool {
	b := (*[8]byte)(unsafe.Pointer(ti))[7]
	if bigEndian {
		return b&0x80 != 0
	}
	return b&1 != 0
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
