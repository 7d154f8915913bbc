package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Event message schemes Sluice signals in its manifests.
const (
	// SchemeSCTE35 carries a binary SCTE-35 splice_info_section (SCTE
	// 214-3, DASH-IF IOP 13.12).
	SchemeSCTE35 = "urn:scte:scte35:2013:bin"
	// SchemeID3 carries an ID3v2 tag (AOM "Carriage of ID3 Timed Metadata
	// in CMAF").
	SchemeID3 = "https://aomedia.org/emsg/ID3"
)

// Bounds on the event messages (emsg boxes) that may precede one fragment.
const (
	MaxEventsPerFragment = 16
	MaxEventData         = 64 << 10  // message_data of one emsg
	MaxEventBytes        = 256 << 10 // all emsg boxes before one fragment
)

// ErrEvents means the event messages before a fragment exceed the bounds
// (too many, too large) or are malformed; ingest answers 413 or 400.
var ErrEvents = errors.New("event messages out of bounds")

// ErrEventsTooLarge wraps ErrEvents for the bounds on count and size.
var ErrEventsTooLarge = fmt.Errorf("%w: too many or too large", ErrEvents)

// UnknownDuration is the emsg event_duration of an event whose duration is
// not known.
const UnknownDuration = 0xFFFFFFFF

// Emsg is one DASH event message kept at ingest, stored with the fragment
// it arrived before. Its times are absolute on the track's timeline, in
// ticks of Timescale (the track's timescale for in-band events).
type Emsg struct {
	Scheme    string `json:"scheme"`
	Value     string `json:"value,omitempty"`
	ID        uint32 `json:"id"`
	Timescale uint32 `json:"timescale"`
	Time      int64  `json:"time"`
	// Duration is in ticks of Timescale, UnknownDuration when not known.
	Duration uint32 `json:"duration"`
	Data     []byte `json:"data,omitempty"`
}

// Seconds is the event's presentation time in seconds.
func (e Emsg) Seconds() float64 { return float64(e.Time) / float64(e.Timescale) }

// Box returns the event as a version 1 emsg box (absolute time).
func (e Emsg) Box() *mp4.EmsgBox {
	return &mp4.EmsgBox{Version: 1, TimeScale: e.Timescale, PresentationTime: uint64(e.Time),
		EventDuration: e.Duration, ID: e.ID, SchemeIDURI: e.Scheme, Value: e.Value, MessageData: e.Data}
}

// EncodeEvents writes events as version 1 emsg boxes, one after the
// other: the stored form, which an in-band DASH/HLS segment can carry as
// it is. Negative times cannot be written and are an error.
func EncodeEvents(evs []Emsg) ([]byte, error) {
	var buf bytes.Buffer
	for _, e := range evs {
		if e.Time < 0 {
			return nil, fmt.Errorf("event %d at negative time %d", e.ID, e.Time)
		}
		if err := e.Box().Encode(&buf); err != nil {
			return nil, fmt.Errorf("encode emsg: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// DecodeEvents reads what EncodeEvents wrote.
func DecodeEvents(b []byte) ([]Emsg, error) {
	var out []Emsg
	br := NewBoxReader(bytes.NewReader(b), uint64(len(b)))
	for {
		box, err := br.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		e, err := decodeEmsg(box.Raw)
		if err != nil {
			return nil, err
		}
		if e.Version != 1 {
			return nil, fmt.Errorf("stored emsg of version %d", e.Version)
		}
		out = append(out, fromBox(e, e.TimeScale, int64(e.PresentationTime)))
	}
}

func decodeEmsg(raw []byte) (*mp4.EmsgBox, error) {
	b, err := decodeBox(raw)
	if err != nil {
		return nil, fmt.Errorf("decode emsg: %w: %w", err, ErrEvents)
	}
	e, ok := b.(*mp4.EmsgBox)
	if !ok {
		return nil, fmt.Errorf("expected emsg, got %s: %w", b.Type(), ErrEvents)
	}
	return e, nil
}

func fromBox(b *mp4.EmsgBox, timescale uint32, t int64) Emsg {
	return Emsg{Scheme: b.SchemeIDURI, Value: b.Value, ID: b.ID, Timescale: timescale, Time: t,
		Duration: b.EventDuration, Data: bytes.Clone(b.MessageData)}
}

// eventOf converts a received emsg box to an Emsg on the track's timeline
// (timescale ts) for the fragment starting at start: a version 0 box's
// time is relative to the fragment's start, a version 1 box's absolute.
func eventOf(raw []byte, ts uint32, start int64) (Emsg, error) {
	b, err := decodeEmsg(raw)
	if err != nil {
		return Emsg{}, err
	}
	if b.TimeScale == 0 {
		return Emsg{}, fmt.Errorf("emsg %q id %d with timescale 0: %w", b.SchemeIDURI, b.ID, ErrEvents)
	}
	if len(b.MessageData) > MaxEventData {
		return Emsg{}, fmt.Errorf("emsg %q id %d carries %d bytes, at most %d: %w", b.SchemeIDURI, b.ID, len(b.MessageData), MaxEventData, ErrEventsTooLarge)
	}
	var t int64
	if b.Version == 0 {
		t = start + int64(scale(uint64(b.PresentationTimeDelta), b.TimeScale, ts))
	} else {
		x := scale(b.PresentationTime, b.TimeScale, ts)
		if x > 1<<62 {
			return Emsg{}, fmt.Errorf("emsg %q id %d: presentation time %d out of range: %w", b.SchemeIDURI, b.ID, b.PresentationTime, ErrEvents)
		}
		t = int64(x)
	}
	if t < 0 {
		return Emsg{}, fmt.Errorf("emsg %q id %d before media time zero: %w", b.SchemeIDURI, b.ID, ErrEvents)
	}
	e := fromBox(b, ts, t)
	if b.EventDuration != UnknownDuration {
		d := scale(uint64(b.EventDuration), b.TimeScale, ts)
		e.Duration = uint32(min(d, UnknownDuration-1))
	}
	return e, nil
}

// scale converts x ticks of timescale from to ticks of timescale to,
// rounding down, saturating at the largest uint64.
func scale(x uint64, from, to uint32) uint64 {
	if from == to {
		return x
	}
	hi, lo := bits.Mul64(x, uint64(to))
	if hi >= uint64(from) {
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, uint64(from))
	return q
}

// ShiftEvents returns evs moved by delta ticks of their timescale (an
// encoder restart placed after what is stored, see Shift).
func ShiftEvents(evs []Emsg, delta int64) []Emsg {
	if delta == 0 || len(evs) == 0 {
		return evs
	}
	out := make([]Emsg, len(evs))
	for i, e := range evs {
		e.Time += delta
		out[i] = e
	}
	return out
}
