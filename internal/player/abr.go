package player

import (
	"sync"
	"time"
)

// ABRConfig tunes the bitrate choice. The zero value takes the defaults.
type ABRConfig struct {
	// Safety is the share of the measured throughput a rendition may use
	// (default 0.8).
	Safety float64
	// FastAlpha and SlowAlpha are the weights of the newest download in the
	// fast and slow moving averages (defaults 0.5 and 0.15). The estimate is
	// the lower of the two: quick to fall, slow to rise.
	FastAlpha, SlowAlpha float64
	// MinBytes: downloads smaller than this say more about latency than
	// throughput and are not sampled (default 4 KiB).
	MinBytes int
	// StartBitrate is the bitrate the first choice may go up to before
	// anything has been measured (default 0: the lowest rendition).
	StartBitrate int64
	// UpHold is how long after a down-switch the player refrains from
	// switching up again (default 5 s), so that a link that only just fails
	// a bitrate does not make it oscillate fragment by fragment.
	UpHold time.Duration
}

func (c ABRConfig) withDefaults() ABRConfig {
	if c.Safety <= 0 || c.Safety > 1 {
		c.Safety = 0.8
	}
	if c.FastAlpha <= 0 || c.FastAlpha > 1 {
		c.FastAlpha = 0.5
	}
	if c.SlowAlpha <= 0 || c.SlowAlpha > 1 {
		c.SlowAlpha = 0.15
	}
	if c.MinBytes <= 0 {
		c.MinBytes = 4 << 10
	}
	if c.UpHold <= 0 {
		c.UpHold = 5 * time.Second
	}
	return c
}

// rateEWMA estimates throughput as the ratio of exponentially weighted
// moving averages of bytes and of download time. Unlike an average of
// per-download rates, one slow download weighs in proportion to the time it
// took, so a throttled link shows at once even after many fast downloads.
type rateEWMA struct {
	alpha       float64
	bytes, secs float64
	weight      float64 // for the zero-bias correction
}

func (e *rateEWMA) add(bytes float64, secs float64) {
	e.bytes = e.alpha*bytes + (1-e.alpha)*e.bytes
	e.secs = e.alpha*secs + (1-e.alpha)*e.secs
	e.weight = e.alpha + (1-e.alpha)*e.weight
}

// bps returns the estimate in bits per second, 0 before any sample.
func (e *rateEWMA) bps() float64 {
	if e.weight == 0 || e.secs <= 0 {
		return 0
	}
	// The bias correction divides both averages by the same weight, so the
	// ratio needs none.
	return 8 * e.bytes / e.secs
}

// abr chooses video renditions from measured throughput, with buffer-based
// hysteresis. It is safe for concurrent use: every fragment download (audio
// too) feeds the estimate.
type abr struct {
	mu         sync.Mutex
	cfg        ABRConfig
	fast, slow rateEWMA
	samples    int
	downAt     time.Time // time of the last down-switch
}

func newABR(cfg ABRConfig) *abr {
	cfg = cfg.withDefaults()
	return &abr{cfg: cfg, fast: rateEWMA{alpha: cfg.FastAlpha}, slow: rateEWMA{alpha: cfg.SlowAlpha}}
}

// sample records one download.
func (a *abr) sample(bytes int, elapsed time.Duration) {
	if bytes < a.cfg.MinBytes || elapsed <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fast.add(float64(bytes), elapsed.Seconds())
	a.slow.add(float64(bytes), elapsed.Seconds())
	a.samples++
}

// estimate returns the throughput estimate in bits per second (0 when
// nothing has been measured yet).
func (a *abr) estimate() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.samples == 0 {
		return 0
	}
	return min(a.fast.bps(), a.slow.bps())
}

// abrInput is what one choice depends on.
type abrInput struct {
	renditions   []*Rendition // ascending bitrate
	current      *Rendition   // nil before the first choice
	buffer       time.Duration
	bufferTarget time.Duration
	startup      time.Duration // startup threshold
	maxBitrate   int64         // 0: no cap
	now          time.Time
}

// choose picks the rendition for the next fragment:
//   - the first choice is the highest rendition within StartBitrate, by
//     default the lowest (a safe start);
//   - the ideal is the highest bitrate within Safety × estimate (and the cap);
//   - up-switches wait until the buffer holds half the startup threshold,
//     so that a wrong guess cannot stall at once, and for UpHold after a
//     down-switch;
//   - down-switches are put off while the buffer is above three quarters of
//     the target and the current bitrate is still below the raw estimate.
func (a *abr) choose(in abrInput) *Rendition {
	allowed := in.renditions
	if in.maxBitrate > 0 {
		n := 0
		for n < len(allowed) && allowed[n].Bitrate <= in.maxBitrate {
			n++
		}
		allowed = allowed[:max(n, 1)]
	}
	if len(allowed) == 0 {
		return nil
	}
	cur := in.current
	if cur != nil && !contains(allowed, cur) {
		cur = nil
	}
	if cur == nil {
		// The first choice: the highest within StartBitrate, judged as an
		// up-switch from there once something has been measured.
		cur = allowed[0]
		for _, r := range allowed {
			if r.Bitrate <= a.cfg.StartBitrate {
				cur = r
			}
		}
	}
	est := a.estimate()
	if est == 0 {
		return cur
	}
	budget := est * a.cfg.Safety
	ideal := allowed[0]
	for _, r := range allowed {
		if float64(r.Bitrate) <= budget {
			ideal = r
		}
	}
	if ideal == cur {
		return ideal
	}
	if ideal.Bitrate > cur.Bitrate {
		a.mu.Lock()
		held := !a.downAt.IsZero() && in.now.Sub(a.downAt) < a.cfg.UpHold
		a.mu.Unlock()
		if in.buffer < in.startup/2 || held {
			return cur
		}
		return ideal
	}
	if in.buffer >= in.bufferTarget*3/4 && float64(cur.Bitrate) <= est {
		return cur
	}
	a.mu.Lock()
	a.downAt = in.now
	a.mu.Unlock()
	return ideal
}

func contains(rs []*Rendition, r *Rendition) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}
