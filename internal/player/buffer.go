package player

import (
	"sync"
	"time"
)

// playState is the state of the simulated playback.
type playState int

const (
	stateStartup  playState = iota // waiting for the startup threshold
	statePlaying                   // the play clock runs
	stateStalled                   // a buffer ran dry before the end
	stateFinished                  // every stream ended and was played out
)

func (s playState) String() string {
	return [...]string{"startup", "playing", "stalled", "finished"}[s]
}

// playback simulates a player's buffers and play clock. Each media kind has
// a buffer measured in seconds of media; downloads add to it, and while
// playing, wall-clock time drains every buffer at once. Playback starts (and
// resumes after a stall) when every buffer holds at least the threshold, or
// when every stream has ended (the rest is played out). It is safe for
// concurrent use.
type playback struct {
	mu         sync.Mutex
	kinds      []Kind
	level      map[Kind]time.Duration
	ended      map[Kind]bool
	threshold  time.Duration
	state      playState
	created    time.Time
	last       time.Time // time the levels were last brought up to date
	startedAt  time.Time
	stallStart time.Time
	stalls     int
	stallTotal time.Duration
	played     time.Duration
	finishedAt time.Time
	// starved is set by a stall and cleared by reading it (CMCD bs).
	starved map[Kind]bool
	// wallEnd is, per kind, the wall-clock time the manifest maps the end
	// of the last buffered fragment to (zero: unknown); the playhead is
	// its buffer level before it.
	wallEnd map[Kind]time.Time
	// rate is the playback rate: media seconds played per wall second
	// while playing (1 unless a low-latency catch-up sets it).
	rate float64
}

func newPlayback(kinds []Kind, threshold time.Duration, now time.Time) *playback {
	p := &playback{
		kinds: kinds, threshold: threshold, created: now, last: now,
		level: map[Kind]time.Duration{}, ended: map[Kind]bool{}, starved: map[Kind]bool{}, wallEnd: map[Kind]time.Time{},
		rate: 1,
	}
	return p
}

// live returns the kinds that still constrain playback: a kind that has
// ended and been played out no longer holds the others back.
func (p *playback) minLevel() (time.Duration, bool) {
	m, any := time.Duration(0), false
	for _, k := range p.kinds {
		if p.ended[k] && p.level[k] <= 0 {
			continue
		}
		if !any || p.level[k] < m {
			m, any = p.level[k], true
		}
	}
	return m, any
}

func (p *playback) allEnded() bool {
	for _, k := range p.kinds {
		if !p.ended[k] {
			return false
		}
	}
	return true
}

// advance brings the play clock to now: drains the buffers (at the
// playback rate) while playing and detects a stall (or the end) at the
// instant a buffer runs dry.
func (p *playback) advance(now time.Time) {
	if now.Before(p.last) {
		return
	}
	for p.state == statePlaying && now.After(p.last) {
		dt := time.Duration(float64(now.Sub(p.last)) * p.rate)
		m, any := p.minLevel()
		if !any {
			p.state, p.finishedAt = stateFinished, p.last
			break
		}
		if m >= dt {
			p.drain(dt)
			p.last = now
			break
		}
		// A buffer runs dry after m of media, m/rate of wall time.
		p.drain(m)
		p.last = p.last.Add(time.Duration(float64(m) / p.rate))
		if _, any := p.minLevel(); !any {
			p.state, p.finishedAt = stateFinished, p.last
			break
		}
		if p.constrainingEmpty() {
			p.state = stateStalled
			p.stalls++
			p.stallStart = p.last
			for _, k := range p.kinds {
				p.starved[k] = true
			}
		}
	}
	p.last = now
}

// constrainingEmpty tells whether a kind that has not ended has an empty buffer.
func (p *playback) constrainingEmpty() bool {
	for _, k := range p.kinds {
		if !p.ended[k] && p.level[k] <= 0 {
			return true
		}
	}
	return false
}

func (p *playback) drain(d time.Duration) {
	for _, k := range p.kinds {
		p.level[k] = max(0, p.level[k]-d)
	}
	p.played += d
}

// check starts or resumes playback when the buffers allow.
func (p *playback) check(now time.Time) {
	if p.state != stateStartup && p.state != stateStalled {
		return
	}
	m, any := p.minLevel()
	if !any {
		if p.allEnded() {
			if p.state == stateStalled {
				p.stallTotal += now.Sub(p.stallStart)
			}
			p.state, p.finishedAt = stateFinished, now
		}
		return
	}
	if m < p.threshold && !p.allEnded() {
		return
	}
	switch p.state {
	case stateStartup:
		p.startedAt = now
	case stateStalled:
		p.stallTotal += now.Sub(p.stallStart)
	}
	p.state = statePlaying
	p.last = now
}

// add records d seconds of media of kind k arriving at now; wall is the
// wall-clock time the manifest maps its first frame to (zero: unknown).
func (p *playback) add(k Kind, d time.Duration, wall, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	p.level[k] += d
	if wall.IsZero() {
		delete(p.wallEnd, k)
	} else {
		p.wallEnd[k] = wall.Add(d)
	}
	p.check(now)
}

// latency is how far the playhead is behind the wall clock at now: now
// minus the wall-clock time the manifest maps the frame at the playhead to
// (video's, else another kind's). false before playback started and when
// the manifest maps no time.
func (p *playback) latency(now time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	if p.startedAt.IsZero() || p.state == stateFinished {
		return 0, false
	}
	for _, k := range append([]Kind{KindVideo}, p.kinds...) {
		if end, ok := p.wallEnd[k]; ok {
			return now.Sub(end.Add(-p.level[k])), true
		}
	}
	return 0, false
}

// setRate sets the playback rate from now on (media seconds per wall
// second, > 0).
func (p *playback) setRate(r float64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	if r > 0 {
		p.rate = r
	}
}

// end records that no more media of kind k will arrive.
func (p *playback) end(k Kind, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	p.ended[k] = true
	p.check(now)
	p.advance(now)
}

// snapshot is the playback state at one instant.
type snapshot struct {
	State      playState
	Level      map[Kind]time.Duration
	Stalls     int
	StallTotal time.Duration // including a stall still going on
	StallFor   time.Duration // how long the current stall (or startup) has lasted
	Started    bool
	Startup    time.Duration // time from creation to playback start
	Played     time.Duration
}

// snap brings the clock to now and returns the state.
func (p *playback) snap(now time.Time) snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	s := snapshot{
		State: p.state, Level: map[Kind]time.Duration{}, Stalls: p.stalls,
		StallTotal: p.stallTotal, Played: p.played, Started: !p.startedAt.IsZero(),
	}
	for k, v := range p.level {
		s.Level[k] = v
	}
	switch p.state {
	case stateStalled:
		s.StallFor = now.Sub(p.stallStart)
		s.StallTotal += s.StallFor
	case stateStartup:
		s.StallFor = now.Sub(p.created)
	}
	if s.Started {
		s.Startup = p.startedAt.Sub(p.created)
	}
	return s
}

// levelOf returns the buffer level of kind k at now and whether the player
// is starting up or recovering from a stall.
func (p *playback) levelOf(k Kind, now time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(now)
	return p.level[k], p.state == stateStartup || p.state == stateStalled
}

// takeStarved reports whether kind k's buffer ran dry since the last call.
func (p *playback) takeStarved(k Kind) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.starved[k]
	p.starved[k] = false
	return s
}
