package player

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"
)

// Low-latency mode (Config.LowLatency, `sluice play --low-latency`): a
// session whose manifest is low-latency — every HLS media playlist in use
// has parts (EXT-X-PART-INF), or a dynamic MPD has a ServiceDescription
// latency or an availabilityTimeOffset — follows it as llhls.go and
// lldash.go describe, with the playhead's rate steered towards the target
// latency (catchUp). Any other presentation plays in standard mode, and
// the report says why (LowLatencyReport.Fallback).

// LowLatencyReport is the account of a session run with Config.LowLatency.
type LowLatencyReport struct {
	// Active is true when the session played in low-latency mode;
	// Fallback says why not otherwise.
	Active   bool   `json:"active"`
	Fallback string `json:"fallback,omitempty"`
	// TargetMS is the latency the catch-up aims at (HLS PART-HOLD-BACK,
	// DASH ServiceDescription Latency@target); RateMin and RateMax bound
	// the playback rate; PartTargetMS is the part duration (HLS
	// PART-TARGET; DASH: the segment duration less availabilityTimeOffset).
	TargetMS     int64   `json:"target_ms"`
	PartTargetMS int64   `json:"part_target_ms"`
	RateMin      float64 `json:"rate_min"`
	RateMax      float64 `json:"rate_max"`
	LowLatencyStats
	// Seconds has one entry per second of the session while playing.
	Seconds []LatencySecond `json:"seconds"`
}

// LowLatencyStats counts what a low-latency session did.
type LowLatencyStats struct {
	// Parts counts the HLS parts fetched (EXT-X-PART or preload-hinted),
	// PreloadHints those requested from a preload hint before the
	// playlist listed them.
	Parts        int `json:"parts"`
	PreloadHints int `json:"preload_hints"`
	// BlockingReloads counts the playlist reloads with _HLS_msn;
	// DeltaUpdates the answers with skipped segments (_HLS_skip) merged,
	// DeltaGaps those that could not be (followed by a whole reload).
	BlockingReloads int `json:"blocking_reloads"`
	DeltaUpdates    int `json:"delta_updates"`
	DeltaGaps       int `json:"delta_gaps"`
	// ChunkedSegments counts the DASH segments whose body arrived in
	// several chunks that were each added to the buffer on arrival;
	// Chunks counts every addition to the buffer (parts, chunks,
	// segments).
	ChunkedSegments int `json:"chunked_segments"`
	Chunks          int `json:"chunks"`
}

// LatencySecond is one per-second sample of a low-latency session.
type LatencySecond struct {
	AtMS      int64   `json:"t_ms"`       // since the session start
	LatencyMS int64   `json:"latency_ms"` // wall clock − the playhead's program date time
	Rate      float64 `json:"rate"`       // playback rate
	BufferMS  int64   `json:"buffer_ms"`  // the lowest buffer of the kinds
	Stalls    int     `json:"stalls"`     // so far
}

// llMode is a session's low-latency state (nil in standard mode).
type llMode struct {
	holdBack   time.Duration // where an HLS session starts from the playlist end
	partTarget time.Duration
	catchUp    catchUp

	mu      sync.Mutex
	stats   LowLatencyStats
	seconds []LatencySecond
	rate    float64
}

func (l *llMode) add(field *int) {
	l.mu.Lock()
	*field++
	l.mu.Unlock()
}

// llStartup is the startup (and resume) threshold in low-latency mode: at
// most half the target latency, since a player that starts at the target
// cannot hold more than the target less a part.
func llStartup(cfg time.Duration, target time.Duration) time.Duration {
	return min(cfg, max(target/2, 200*time.Millisecond))
}

// setupLowLatency decides, after the first loads, whether the session
// plays in low-latency mode. HLS: every kind's media playlist in use
// (loaded again here) must have parts; followers holds what it read.
// It returns why not ("" when it does).
func (s *session) setupLowLatency(ctx context.Context, pres *Presentation) (followers map[Kind]*hlsFollower, why string) {
	if !pres.Live {
		return nil, "the presentation is not live"
	}
	switch s.format {
	case FormatDASH:
		ll := pres.LowLatency
		if ll == nil {
			return nil, "the MPD has no ServiceDescription latency and no availabilityTimeOffset"
		}
		target := ll.target
		if target <= 0 {
			target = pres.LiveDelay
		}
		segDur := pres.lastSegmentDuration(time.Now())
		part := segDur
		if ll.ato > 0 && ll.ato < segDur {
			part = segDur - ll.ato
		}
		if target <= 0 {
			target = 3 * part
		}
		rmin, rmax := ll.rateMin, ll.rateMax
		if rmin <= 0 || rmin > 1 {
			rmin = 1
		}
		if rmax < 1 {
			rmax = 1
		}
		s.ll = &llMode{partTarget: part, holdBack: target, rate: 1,
			catchUp: catchUp{target: target, min: rmin, max: rmax, safety: part}}
		return nil, ""
	case FormatHLS:
		src, ok := s.man.src.(*hlsSource)
		if !ok {
			return nil, "not an HLS source"
		}
		followers = map[Kind]*hlsFollower{}
		var holdBack, part time.Duration
		for _, k := range []Kind{KindVideo, KindAudio} {
			st := pres.Stream(k)
			if st == nil || len(st.Renditions) == 0 {
				continue
			}
			id := s.man.activeID(k)
			uri := src.mediaURI(id)
			if uri == "" {
				return nil, fmt.Sprintf("no media playlist for the %s rendition", k)
			}
			data, err := s.fetchManifest(ctx, uri)
			if err != nil {
				return nil, fmt.Sprintf("load the %s playlist: %v", k, err)
			}
			base, _ := url.Parse(uri)
			pl, err := parseLLPlaylist(data, base)
			if err != nil {
				return nil, fmt.Sprintf("the %s playlist: %v", k, err)
			}
			if !pl.lowLatency() || len(pl.segs) == 0 {
				return nil, fmt.Sprintf("the %s playlist has no parts (EXT-X-PART-INF)", k)
			}
			holdBack, part = max(holdBack, pl.partHoldBack), max(part, pl.partTarget)
			followers[k] = newHLSFollower(s, k, uri, pl)
		}
		if len(followers) == 0 {
			return nil, "no playlist in use"
		}
		s.ll = &llMode{partTarget: part, holdBack: holdBack, rate: 1,
			catchUp: catchUp{target: holdBack, min: HLSRateMin, max: HLSRateMax, safety: part}}
		return followers, ""
	}
	return nil, fmt.Sprintf("low latency is for HLS and DASH, not %s", s.format)
}

// steer runs at every tick of a low-latency session: it sets the playback
// rate from the latency, and once a second records (and, with
// Config.Progress, prints) a sample.
func (s *session) steer(now time.Time, second bool, stalls int) {
	lat, ok := s.play.latency(now)
	if !ok {
		return
	}
	sn := s.play.snap(now)
	buf, first := time.Duration(0), true
	for _, v := range sn.Level {
		if first || v < buf {
			buf, first = v, false
		}
	}
	r := 1.0
	if sn.State == statePlaying {
		r = s.ll.catchUp.rate(lat, buf)
	}
	s.play.setRate(r, now)
	s.ll.mu.Lock()
	s.ll.rate = r
	if second {
		s.ll.seconds = append(s.ll.seconds, LatencySecond{
			AtMS: now.Sub(s.start).Milliseconds(), LatencyMS: lat.Milliseconds(), Rate: roundRate(r),
			BufferMS: buf.Milliseconds(), Stalls: stalls,
		})
	}
	s.ll.mu.Unlock()
	if second && s.cfg.Progress != nil {
		fmt.Fprintf(s.cfg.Progress, "%s t=%5.1fs latency=%.2fs rate=%.3f buffer=%.2fs stalls=%d\n",
			s.cfg.SessionID, now.Sub(s.start).Seconds(), lat.Seconds(), r, buf.Seconds(), stalls)
	}
}

func roundRate(r float64) float64 { return float64(int(r*1000+0.5)) / 1000 }

// lowLatencyReport is the session's LowLatencyReport (nil without
// Config.LowLatency).
func (s *session) lowLatencyReport() *LowLatencyReport {
	if !s.cfg.LowLatency {
		return nil
	}
	if s.ll == nil {
		why := s.llFallback
		if why == "" {
			why = "the session ended before the manifest was read"
		}
		return &LowLatencyReport{Fallback: why, Seconds: []LatencySecond{}}
	}
	s.ll.mu.Lock()
	defer s.ll.mu.Unlock()
	return &LowLatencyReport{
		Active: true, TargetMS: s.ll.catchUp.target.Milliseconds(), PartTargetMS: s.ll.partTarget.Milliseconds(),
		RateMin: s.ll.catchUp.min, RateMax: s.ll.catchUp.max, LowLatencyStats: s.ll.stats,
		Seconds: append([]LatencySecond{}, s.ll.seconds...),
	}
}
