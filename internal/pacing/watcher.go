package pacing

import (
	"context"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	watchTick  = 25 * time.Millisecond
	watchLimit = 10 * time.Second
)

// watcher follows one response while it is sent, for what the start of the
// response cannot decide: it measures the path-limited delivery rate for
// the server estimate, ends a probe once it has measured, and switches the
// pacing rate when the socket changes phase (per-phase specifications). It
// runs on a timer (no goroutine of its own while it waits), every
// watchTick, and ends when the response is delivered (nothing unacked or
// unsent after the handler returned), when the next request on the
// connection starts, when the connection closes, or after watchLimit. A
// short response therefore costs one timer.
type watcher struct {
	p           *Pacer
	cs          *connState
	rc          syscall.RawConn // the socket of the response it follows
	release     func()          // gives back a held socket (HeldSocket), once
	spec        Spec
	cc          string
	measure     bool   // measure for the server estimate
	probe       bool   // the response is a probe, still probing
	pace        uint64 // the rate the response is paced at, bytes/s (0: unpaced)
	floor       uint64 // the lowest pace allowed for it (CMCD br), bytes/s
	drainUntil  uint64 // after a probe: busy time (µs) until which it drains; 0: not draining
	drainRate   uint64 // the pace after the drain
	perPhase    bool
	phase       Phase
	deadline    time.Time
	timer       *time.Timer
	stopped     bool // guarded by cs.mu
	handlerDone atomic.Bool

	// Owned by the timer callbacks, which never overlap (each re-arms the
	// timer as its last step).
	ti   unix.TCPInfo
	ierr error
	read func(fd uintptr)
	gain func() uint32
	sm   spanMeter
}

// startWatcher arms a watcher for the response decided by d; ti is the
// TCP_INFO read at its start. Call with cs.mu held.
func startWatcher(p *Pacer, cs *connState, spec *Spec, d decision, ti *unix.TCPInfo) *watcher {
	w := &watcher{
		p: p, cs: cs, spec: *spec, cc: cs.cc,
		measure: d.measure, probe: d.probe, pace: d.rate, floor: d.floor,
		perPhase: d.perPhase, phase: d.phase,
		deadline: time.Now().Add(watchLimit),
		sm:       newSpanMeter(ti.Delivered, ti.Min_rtt),
		rc:       cs.rc,
		release:  func() {},
	}
	if h, ok := cs.rc.(HeldSocket); ok {
		// The response's socket must outlive the response until delivery.
		w.release = h.Hold()
	}
	w.read = func(fd uintptr) { w.ierr = getTCPInfo(int(fd), &w.ti) }
	w.gain = func() uint32 { return bbrPacingGain(w.rc) }
	w.timer = time.AfterFunc(watchTick, w.tick)
	return w
}

// stop ends the watcher; call with cs.mu held.
func (w *watcher) stop() {
	if !w.stopped {
		// A callback that already fired waits for cs.mu and then sees
		// stopped: finishing here is right in every case.
		w.stopped = true
		w.timer.Stop()
		w.finish()
	}
}

// end marks the watcher stopped from its own callback and finishes it;
// call with cs.mu held.
func (w *watcher) end() {
	w.stopped = true
	w.finish()
}

// finish hands the measurement to the estimator and gives back the
// socket; call with cs.mu held.
func (w *watcher) finish() {
	if w.measure {
		w.measure = false
		w.observe()
	}
	w.release()
}

// observe gives the estimator the measurement so far. An unpaced response
// or a probe that measured the path counts as a probe: the next periodic
// probe is due from now on. Call with cs.mu held.
func (w *watcher) observe() {
	cs := w.cs
	m := w.sm.measurement()
	before := cs.est.rate()
	obs := cs.est.observe(m, w.pace, w.probe)
	if obs == obsSample && (w.pace == 0 || w.probe) {
		cs.sinceProbe, cs.lastProbe = 0, time.Now()
	}
	if w.p.log.Enabled(context.Background(), slog.LevelDebug) {
		w.p.log.Debug("pacing: estimator", "remote", cs.remote, "measured_kbps", m*8/1000,
			"pace_kbps", w.pace*8/1000, "probe", w.probe, "bytes", w.sm.bytes(), "span_ms", w.sm.bestUs/1000,
			"result", obs.String(), "estimate_kbps", cs.est.rate()*8/1000, "was_kbps", before*8/1000)
	}
}

// endProbe ends a probe that has measured: the estimator takes the
// measurement, then the response drains the queue the probe built (paced at
// drainGain × the estimate for drainRTTs × the RTT's excess over the
// minimum RTT, at most probeSpanUs) and the rest of it is paced from the
// new estimate. Call with cs.mu held.
func (w *watcher) endProbe(ti *unix.TCPInfo) {
	w.observe()
	w.measure, w.probe = false, false
	est := w.cs.est.rate()
	if est == 0 {
		return
	}
	rate := w.p.estimateRate(est, w.floor)
	if d := drainTime(ti.Rtt, ti.Min_rtt); d > 0 {
		w.drainUntil = ti.Busy_time + d
		w.drainRate = rate
		rate = w.p.clamp(max(uint64(drainGain*float64(est)), w.floor))
	}
	w.setRate(ti, rate, "end of probe")
}

// setRate changes the socket's cap during the response (a lowering or a
// raise back to the estimate's pace: no BBR restart). Call with cs.mu held.
func (w *watcher) setRate(ti *unix.TCPInfo, rate uint64, what string) {
	old := ti.Max_pacing_rate
	if old == ^uint64(0) {
		old = 0
	}
	if err := w.cs.changePacingRate(old, rate, ti.Pacing_rate, false); err != nil {
		w.p.log.Debug("pacing: "+what, "err", err)
	}
}

func (w *watcher) tick() {
	cs := w.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if w.stopped {
		return // stop came while this callback was starting: it finished
	}
	if err := w.rc.Control(w.read); err != nil || w.ierr != nil {
		w.end()
		return
	}
	ti := &w.ti
	if w.measure {
		w.sm.add(ti.Busy_time, ti.Delivered, ti.Snd_mss, pathLimited(ti, w.cc, w.gain))
		if w.probe && w.sm.open && w.sm.spanUs >= probeSpanUs && w.sm.bytes() >= minMeasureBytes {
			w.endProbe(ti)
		}
	} else if w.drainUntil > 0 && ti.Busy_time >= w.drainUntil {
		w.drainUntil = 0
		w.setRate(ti, w.drainRate, "end of drain")
	}
	if w.perPhase {
		if ph := phaseOf(ti, w.cc, w.gain); ph != w.phase {
			w.phase = ph
			rate := specRate(&w.spec, ph, ti.Snd_mss)
			if rate > 0 {
				rate = w.p.clamp(rate)
			}
			old := ti.Max_pacing_rate
			if old == ^uint64(0) {
				old = 0
			}
			if err := cs.changePacingRate(old, rate, ti.Pacing_rate, true); err != nil {
				w.p.log.Debug("pacing: phase switch", "err", err)
			}
		}
	}
	if (w.handlerDone.Load() && ti.Unacked == 0 && ti.Notsent_bytes == 0) || time.Now().After(w.deadline) {
		w.end()
		return
	}
	w.timer.Reset(watchTick)
}

// drainTime is how long (µs of busy time) a response drains after a probe:
// drainRTTs × the smoothed RTT's excess over the minimum RTT (the queue, in
// time), at most probeSpanUs.
func drainTime(rttUs, minRTTus uint32) uint64 {
	if rttUs <= minRTTus {
		return 0
	}
	return min(drainRTTs*uint64(rttUs-minRTTus), probeSpanUs)
}
