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
// ends when the response is delivered (nothing unacked or unsent after the
// handler returned), when the next request on the connection starts, when
// the connection closes, or after watchLimit.
type watcher struct {
	p           *Pacer
	cs          *connState
	spec        Spec
	cc          string
	estimate    bool
	perPhase    bool
	phase       Phase
	stopCh      chan struct{}
	stopped     bool // guarded by cs.mu
	handlerDone atomic.Bool
}

func newWatcher(p *Pacer, cs *connState, spec *Spec, d decision) *watcher {
	return &watcher{
		p: p, cs: cs, spec: *spec, cc: cs.cc,
		estimate: d.src == SrcFirst || d.src == SrcProbe,
		perPhase: d.perPhase, phase: d.phase,
		stopCh: make(chan struct{}),
	}
}

// stop ends the watcher; call with cs.mu held.
func (w *watcher) stop() {
	if !w.stopped {
		w.stopped = true
		close(w.stopCh)
	}
}

func (w *watcher) run() {
	t := time.NewTicker(watchTick)
	defer t.Stop()
	deadline := time.Now().Add(watchLimit)
	var ti unix.TCPInfo
	var ierr error
	read := func(fd uintptr) { ierr = getTCPInfo(int(fd), &ti) }
	gain := func() uint32 { return bbrPacingGain(w.cs.rc) }
	var wm windowMeter
loop:
	for {
		var now time.Time
		select {
		case <-w.stopCh:
			break loop
		case now = <-t.C:
		}
		if err := w.cs.rc.Control(read); err != nil || ierr != nil {
			break
		}
		if w.estimate {
			wm.add(ti.Busy_time, ti.Delivered, ti.Snd_mss)
		}
		if w.perPhase {
			if ph := phaseOf(&ti, w.cc, gain); ph != w.phase {
				w.phase = ph
				rate := specRate(&w.spec, ph, ti.Snd_mss)
				if rate > 0 {
					rate = w.p.clamp(rate)
				}
				w.cs.mu.Lock()
				if !w.stopped {
					if err := w.cs.setPacingRate(rate); err != nil {
						w.p.log.Debug("pacing: phase switch", "err", err)
					}
				}
				w.cs.mu.Unlock()
			}
		}
		if w.handlerDone.Load() && ti.Unacked == 0 && ti.Notsent_bytes == 0 {
			break
		}
		if now.After(deadline) {
			break
		}
	}
	if w.estimate && wm.max > 0 {
		w.cs.mu.Lock()
		w.cs.est.addUnpaced(wm.max)
		w.cs.mu.Unlock()
	}
}
