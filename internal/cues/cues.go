// Package cues turns an out-of-band ad cue (the admin API's POST
// /api/points/<pp>/cues) into the SCTE-35 splice_insert it stands for and
// the event the point stores (store.Point.AddCue).
package cues

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/scte35"
	"github.com/sluice-media/sluice/internal/store"
)

// ErrBadCue marks a cue request that cannot be turned into a splice.
var ErrBadCue = errors.New("bad cue")

// MaxBreak bounds the break duration a cue may announce.
const MaxBreak = 12 * time.Hour

// Request is the body of POST /api/points/<pp>/cues.
type Request struct {
	// Type is "out" (the start of an ad break: splice_insert with
	// out_of_network_indicator 1) or "in" (the return to the programme).
	Type string `json:"type"`
	// Time is when the splice takes place, on the point's media timeline;
	// the API takes seconds or any form of an archive cut time. Omitted:
	// the point's live edge.
	Time json.RawMessage `json:"time,omitempty"`
	// Duration is the break duration in seconds ("out" only; optional):
	// break_duration with auto_return.
	Duration *float64 `json:"duration,omitempty"`
	// ID is the splice_event_id; an "in" closes the "out" of the same id.
	ID *uint32 `json:"id"`
}

// Cue is a cue built from a Request.
type Cue struct {
	Splice scte35.Splice
	Event  media.Emsg // scheme urn:scte:scte35:2013:bin, 90 kHz ticks
}

// Build makes the splice_insert and the event for a request whose time
// (on the media timeline) is at.
func Build(req Request, at time.Duration) (Cue, error) {
	if req.ID == nil {
		return Cue{}, fmt.Errorf("id: missing (the splice_event_id, 0 to %d): %w", uint32(math.MaxUint32), ErrBadCue)
	}
	if at < 0 {
		return Cue{}, fmt.Errorf("time %v is before media time zero: %w", at, ErrBadCue)
	}
	ticks := int64(at/time.Second)*store.CueTimescale + int64(at%time.Second)*store.CueTimescale/int64(time.Second)
	s := scte35.Splice{Command: scte35.SpliceInsert, Tier: 0xFFF, EventID: *req.ID,
		HasPTS: true, PTS: uint64(ticks) & scte35.MaxPTS}
	ev := media.Emsg{Scheme: media.SchemeSCTE35, ID: *req.ID, Timescale: store.CueTimescale, Time: ticks,
		Duration: media.UnknownDuration}
	switch req.Type {
	case "out":
		s.Out = true
		if req.Duration != nil {
			d := *req.Duration
			if math.IsNaN(d) || d <= 0 || d > MaxBreak.Seconds() {
				return Cue{}, fmt.Errorf("duration %v: want seconds in (0, %v]: %w", d, MaxBreak.Seconds(), ErrBadCue)
			}
			s.HasDuration, s.AutoReturn = true, true
			s.Duration = uint64(math.Round(d * store.CueTimescale))
			ev.Duration = uint32(s.Duration)
		}
	case "in":
		if req.Duration != nil {
			return Cue{}, fmt.Errorf("duration: only an \"out\" cue has one: %w", ErrBadCue)
		}
	case "":
		return Cue{}, fmt.Errorf("type: missing (\"out\" or \"in\"): %w", ErrBadCue)
	default:
		return Cue{}, fmt.Errorf("type %q: want \"out\" or \"in\": %w", req.Type, ErrBadCue)
	}
	b, err := s.Encode()
	if err != nil {
		return Cue{}, fmt.Errorf("%w: %w", err, ErrBadCue)
	}
	ev.Data = b
	return Cue{Splice: s, Event: ev}, nil
}
