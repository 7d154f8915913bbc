package player

import (
	"math"
	"time"
)

// HLS gives no playback-rate bounds; low-latency HLS catch-up stays within
// these (±5 %, which a viewer does not notice on video and hardly on
// speech).
const (
	HLSRateMin = 0.95
	HLSRateMax = 1.05
)

// catchUp is the playback-rate control of a low-latency session: it
// steers the simulated playhead towards the target latency by playing a
// little faster when behind and a little slower when ahead, within the
// bounds the manifest advertises (DASH ServiceDescription PlaybackRate;
// HLSRateMin–HLSRateMax for HLS).
type catchUp struct {
	target   time.Duration // the latency to converge on
	min, max float64       // playback-rate bounds
	// safety is the buffer below which it never speeds up: playing
	// faster on a nearly empty buffer would stall.
	safety time.Duration
}

// catchUpGain is the rate change per second of latency error: 0.5 s
// behind the target plays at 1.05 (then clamped to the bounds).
const catchUpGain = 0.1

// catchUpDeadBand is the latency error within which the rate is 1.
const catchUpDeadBand = 50 * time.Millisecond

// rate returns the playback rate for latency lat with buffer buf: 1 within
// catchUpDeadBand of the target, else 1 + catchUpGain × the error in
// seconds, clamped to [min, max]; never above 1 with less than safety
// buffered.
func (c catchUp) rate(lat, buf time.Duration) float64 {
	e := lat - c.target
	if e.Abs() <= catchUpDeadBand {
		return 1
	}
	r := 1 + catchUpGain*e.Seconds()
	r = math.Min(math.Max(r, c.min), c.max)
	if r > 1 && buf < c.safety {
		return 1
	}
	return r
}
