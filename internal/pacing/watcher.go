package pacing

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	watchTick  = 25 * time.Millisecond
	watchLimit = 10 * time.Second
)

// watcher follows one response while it is sent, for what the start of the
// response cannot decide: it measures the delivery rate in windows of at
// least 200 ms during unpaced probes (server estimate), and it switches the
// pacing rate when the socket changes phase (per-phase specifications). It
// runs on a timer (no goroutine of its own while it waits), every
// watchTick, and ends when the response is delivered (nothing unacked or
// unsent after the handler returned), when the next request on the
// connection starts, when the connection closes, or after watchLimit. A
// short response therefore costs one timer.
type watcher struct {
	p           *Pacer
	cs          *connState
	spec        Spec
	cc          string
	estimate    bool
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
	wm   windowMeter
}

// startWatcher arms a watcher for the response decided by d; call with
// cs.mu held.
func startWatcher(p *Pacer, cs *connState, spec *Spec, d decision) *watcher {
	w := &watcher{
		p: p, cs: cs, spec: *spec, cc: cs.cc,
		estimate: d.src == SrcFirst || d.src == SrcProbe,
		perPhase: d.perPhase, phase: d.phase,
		deadline: time.Now().Add(watchLimit),
	}
	w.read = func(fd uintptr) { w.ierr = getTCPInfo(int(fd), &w.ti) }
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

// finish hands the measurement to the estimator; call with cs.mu held.
func (w *watcher) finish() {
	if w.estimate && w.wm.max > 0 {
		w.cs.est.addUnpaced(w.wm.max)
	}
}

func (w *watcher) tick() {
	cs := w.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if w.stopped {
		return // stop came while this callback was starting: it finished
	}
	if err := cs.rc.Control(w.read); err != nil || w.ierr != nil {
		w.stopped = true
		w.finish()
		return
	}
	ti := &w.ti
	if w.estimate {
		w.wm.add(ti.Busy_time, ti.Delivered, ti.Snd_mss)
	}
	if w.perPhase {
		if ph := phaseOf(ti, w.cc, func() uint32 { return bbrPacingGain(cs.rc) }); ph != w.phase {
			w.phase = ph
			rate := specRate(&w.spec, ph, ti.Snd_mss)
			if rate > 0 {
				rate = w.p.clamp(rate)
			}
			old := ti.Max_pacing_rate
			if old == ^uint64(0) {
				old = 0
			}
			if err := cs.changePacingRate(old, rate, ti.Pacing_rate); err != nil {
				w.p.log.Debug("pacing: phase switch", "err", err)
			}
		}
	}
	if (w.handlerDone.Load() && ti.Unacked == 0 && ti.Notsent_bytes == 0) || time.Now().After(w.deadline) {
		w.stopped = true
		w.finish()
		return
	}
	w.timer.Reset(watchTick)
}
