package cues

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/scte35"
)

func TestBuild(t *testing.T) {
	id := func(n uint32) *uint32 { return &n }
	secs := func(f float64) *float64 { return &f }
	for _, tc := range []struct {
		name string
		req  Request
		at   time.Duration
		want scte35.Splice
		dur  uint32
		err  bool
	}{
		{"out", Request{Type: "out", ID: id(7), Duration: secs(30)}, 10 * time.Second,
			scte35.Splice{Command: scte35.SpliceInsert, Tier: 0xFFF, EventID: 7, Out: true, HasPTS: true, PTS: 900000,
				HasDuration: true, Duration: 2700000, AutoReturn: true}, 2700000, false},
		{"in", Request{Type: "in", ID: id(7)}, 40*time.Second + 500*time.Millisecond,
			scte35.Splice{Command: scte35.SpliceInsert, Tier: 0xFFF, EventID: 7, HasPTS: true, PTS: 3645000}, media.UnknownDuration, false},
		// An epoch-anchored time wraps the 33-bit PTS.
		{"wrap", Request{Type: "out", ID: id(1)}, 1_700_000_000 * time.Second,
			scte35.Splice{Command: scte35.SpliceInsert, Tier: 0xFFF, EventID: 1, Out: true, HasPTS: true,
				PTS: 1_700_000_000 * 90000 & scte35.MaxPTS}, media.UnknownDuration, false},
		{"no id", Request{Type: "out"}, 0, scte35.Splice{}, 0, true},
		{"no type", Request{ID: id(1)}, 0, scte35.Splice{}, 0, true},
		{"zero duration", Request{Type: "out", ID: id(1), Duration: secs(0)}, 0, scte35.Splice{}, 0, true},
		{"too long", Request{Type: "out", ID: id(1), Duration: secs(13 * 3600)}, 0, scte35.Splice{}, 0, true},
		{"in with duration", Request{Type: "in", ID: id(1), Duration: secs(5)}, 0, scte35.Splice{}, 0, true},
		{"negative time", Request{Type: "in", ID: id(1)}, -time.Second, scte35.Splice{}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Build(tc.req, tc.at)
			if tc.err {
				if !errors.Is(err, ErrBadCue) {
					t.Fatalf("err %v, want ErrBadCue", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := scte35.Decode(c.Event.Data)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(tc.want)
			if string(a) != string(b) {
				t.Fatalf("splice %s, want %s", a, b)
			}
			if c.Event.Scheme != media.SchemeSCTE35 || c.Event.Timescale != 90000 || c.Event.Duration != tc.dur ||
				c.Event.ID != *tc.req.ID || c.Event.Time != int64(tc.at/time.Second)*90000+int64(tc.at%time.Second)*90000/int64(time.Second) {
				t.Fatalf("event %+v", c.Event)
			}
		})
	}
}
