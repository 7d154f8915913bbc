package manifest

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/scte35"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
)

func splice(s scte35.Splice) []byte {
	b, err := s.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// Events of eventsView.
var (
	breakOut = media.Emsg{Scheme: media.SchemeSCTE35, ID: 7, Timescale: mss, Time: 1004500 * (mss / 1000), Duration: 30 * mss,
		Data: splice(scte35.Splice{Command: scte35.SpliceInsert, EventID: 7, Out: true, HasPTS: true, PTS: 1004500 * 90,
			HasDuration: true, Duration: 30 * 90000, AutoReturn: true})}
	breakIn = media.Emsg{Scheme: media.SchemeSCTE35, ID: 7, Timescale: 90000, Time: 1010 * 90000, Duration: media.UnknownDuration,
		Data: splice(scte35.Splice{Command: scte35.SpliceInsert, EventID: 7, HasPTS: true, PTS: 1010 * 90000})}
	signal = media.Emsg{Scheme: media.SchemeSCTE35, ID: 8, Timescale: 90000, Time: 1013 * 90000, Duration: media.UnknownDuration,
		Data: splice(scte35.Splice{Command: scte35.TimeSignal, HasPTS: true, PTS: 1013 * 90000})}
	id3 = media.Emsg{Scheme: media.SchemeID3, Value: "1", ID: 3, Timescale: mss, Time: 1002 * mss, Duration: media.UnknownDuration,
		Data: []byte("ID3\x04\x00\x00\x00\x00\x00\x00")}
	early = media.Emsg{Scheme: media.SchemeSCTE35, ID: 1, Timescale: 90000, Time: 900 * 90000, Duration: media.UnknownDuration,
		Data: splice(scte35.Splice{Command: scte35.TimeSignal, HasPTS: true, PTS: 900 * 90000})}
)

// eventsView: liveView with an SCTE-35 break out (in-band, on the 10 MHz
// video timescale, 30 s), its return inserted as a cue (90 kHz), a
// time_signal, an ID3 tag, and an event from before the DVR window.
func eventsView() store.View {
	v := liveView()
	v.Name = "events"
	v.Events = []media.Emsg{early, id3, breakOut, breakIn, signal}
	// The video tracks carry the ID3 tags and the break out in-band.
	for i := range v.Tracks[:2] {
		v.Tracks[i].Schemes = []store.EventScheme{{Scheme: media.SchemeID3, Value: "1"}, {Scheme: media.SchemeSCTE35}}
	}
	return v
}

// eventsVODView: eventsView after live-to-VOD.
func eventsVODView() store.View {
	v := eventsView()
	for i := range v.Tracks {
		v.Tracks[i].Ended = true
	}
	v.Ended = true
	return v
}

// TestDASHEventStream: the MPD carries the SCTE-35 events in a period
// EventStream as SCTE 214 <Signal><Binary>, at the events' times, nothing
// from before the listed fragments; the video AdaptationSet, whose
// segments carry ID3 in-band, declares it (InbandEventStream). It passes
// the schema check.
func TestDASHEventStream(t *testing.T) {
	now := anchor.Add(1016*time.Second + 500*time.Millisecond)
	for _, tc := range []struct {
		name string
		v    store.View
		pto  uint64 // of the period, 90 kHz
	}{
		{"live", eventsView(), 0},
		{"vod", eventsVODView(), 1000 * 90000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := DASH(tc.v, Options{Now: now, DVRWindow: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if err := mpdschema.Check(b); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			m, err := mpd.ReadFromString(string(b))
			if err != nil {
				t.Fatal(err)
			}
			es := m.Periods[0].EventStreams
			if len(es) != 1 {
				t.Fatalf("%d EventStreams, want 1 (SCTE-35)\n%s", len(es), b)
			}
			scte := es[0]
			if scte.SchemeIdUri != "urn:scte:scte35:2014:xml+bin" || *scte.Timescale != 90000 || scte.PresentationTimeOffset != tc.pto {
				t.Fatalf("SCTE-35 EventStream %+v", scte)
			}
			want := []media.Emsg{breakOut, breakIn, signal}
			if len(scte.Events) != len(want) {
				t.Fatalf("%d SCTE-35 events, want %d\n%s", len(scte.Events), len(want), b)
			}
			ids := map[uint64]bool{}
			for i, e := range scte.Events {
				w := want[i]
				if e.PresentationTime != uint64(eventTime(w)/time.Second*90000+eventTime(w)%time.Second*90000/time.Second) {
					t.Errorf("event %d at %d, want %v", i, e.PresentationTime, eventTime(w))
				}
				if e.Signal == nil || e.Signal.Binary == nil {
					t.Fatalf("event %d has no Signal/Binary", i)
				}
				bin, err := base64.StdEncoding.DecodeString(e.Signal.Binary.Value)
				if err != nil || string(bin) != string(w.Data) {
					t.Errorf("event %d binary %q, want the splice sent", i, e.Signal.Binary.Value)
				}
				if ids[*e.Id] {
					t.Errorf("event %d repeats id %d", i, *e.Id)
				}
				ids[*e.Id] = true
			}
			if scte.Events[0].Duration != 30*90000 || scte.Events[1].Duration != 0 {
				t.Errorf("durations %d, %d", scte.Events[0].Duration, scte.Events[1].Duration)
			}
			for _, as := range m.Periods[0].AdaptationSets {
				ies := as.InbandEventStreams
				if as.ContentType == "video" && (len(ies) != 1 || ies[0].SchemeIdUri != media.SchemeID3 || ies[0].Value != "1") {
					t.Errorf("video InbandEventStreams %+v, want ID3 value 1 alone", ies)
				}
				if as.ContentType == "audio" && len(ies) != 0 {
					t.Errorf("audio InbandEventStreams %+v, want none", ies)
				}
			}
			if again, _ := DASH(tc.v, Options{Now: now, DVRWindow: time.Minute}); string(again) != string(b) {
				t.Error("not deterministic")
			}
		})
	}
}

// TestDASHEventsRestart: events go to the period they fall in.
func TestDASHEventsRestart(t *testing.T) {
	v := restartView()
	r := v.Meta.Restarts[0]
	before := media.Emsg{Scheme: media.SchemeSCTE35, ID: 1, Timescale: 90000, Time: 10 * 90000, Duration: media.UnknownDuration,
		Data: splice(scte35.Splice{Command: scte35.TimeSignal})}
	after := before
	after.ID, after.Time = 2, r.StartNs/int64(time.Second)*90000+5*90000
	v.Events = []media.Emsg{before, after}
	b, err := DASH(v, Options{Now: anchor.Add(40 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := mpdschema.Check(b); err != nil {
		t.Fatal(err)
	}
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Periods) != 2 {
		t.Fatalf("%d periods", len(m.Periods))
	}
	for i, p := range m.Periods {
		if len(p.EventStreams) != 1 || len(p.EventStreams[0].Events) != 1 {
			t.Fatalf("period %d: %d event streams\n%s", i, len(p.EventStreams), b)
		}
		e := p.EventStreams[0].Events[0]
		within := int64(e.PresentationTime) - int64(p.EventStreams[0].PresentationTimeOffset)
		if want := []int64{10 * 90000, 5*90000 + r.StartNs/int64(time.Second)*90000 - int64(r.StartNs)*9/100000}[i]; within != want {
			t.Errorf("period %d: event %d ticks into the period, want %d", i, within, want)
		}
	}
}

// TestHLSDateRange: every media playlist carries the SCTE-35 events as
// EXT-X-DATERANGE before the segment they fall in, with START-DATE from
// the program date time, PLANNED-DURATION and SCTE35-OUT/IN/CMD; it
// parses with hls-m3u8, which sees them as SCTE-35 date ranges.
func TestHLSDateRange(t *testing.T) {
	now := anchor.Add(1016*time.Second + 500*time.Millisecond)
	for _, v := range []store.View{eventsView(), eventsVODView()} {
		for _, tr := range v.Tracks {
			b, err := HLSMedia(v, tr.ID, Options{Now: now, DVRWindow: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			pl, typ, err := m3u8.DecodeFrom(strings.NewReader(string(b)), true)
			if err != nil || typ != m3u8.MEDIA {
				t.Fatalf("%s: %v\n%s", tr.ID, err, b)
			}
			mp := pl.(*m3u8.MediaPlaylist)
			type found struct {
				seg int
				dr  *m3u8.DateRange
			}
			var got []found
			for i, s := range mp.Segments {
				if s == nil {
					break
				}
				for _, dr := range s.SCTE35DateRanges {
					got = append(got, found{i, dr})
				}
			}
			// The return shares the out's ID and START-DATE and says the
			// break's DURATION (RFC 8216 4.4.5.1.1).
			want := []struct {
				e        media.Emsg
				seg      int // 2 s segments from 1000 s
				attr     string
				planned  float64
				start    media.Emsg // START-DATE
				duration float64
			}{{breakOut, 2, "out", 30, breakOut, 0}, {breakIn, 5, "in", 0, breakOut, 5.5}, {signal, 6, "cmd", 0, signal, 0}}
			if len(got) == 3 && (got[0].dr.ID != got[1].dr.ID || got[0].dr.ID == got[2].dr.ID) {
				t.Errorf("%s: IDs %q %q %q: want the out's on the in, another on the time_signal", tr.ID, got[0].dr.ID, got[1].dr.ID, got[2].dr.ID)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d SCTE-35 date ranges, want %d\n%s", tr.ID, len(got), len(want), b)
			}
			for i, w := range want {
				g := got[i]
				hexData := "0x" + hex.EncodeToString(w.e.Data)
				val := map[string]string{"out": g.dr.SCTE35Out, "in": g.dr.SCTE35In, "cmd": g.dr.SCTE35Cmd}[w.attr]
				if strings.ToLower(val) != hexData {
					t.Errorf("%s: date range %d: SCTE35-%s %q, want %s\n%s", tr.ID, i, w.attr, val, hexData, b)
				}
				if !g.dr.StartDate.Equal(anchor.Add(eventTime(w.start))) {
					t.Errorf("%s: date range %d starts %v, want %v", tr.ID, i, g.dr.StartDate, anchor.Add(eventTime(w.start)))
				}
				if (w.duration == 0) != (g.dr.Duration == nil) || (g.dr.Duration != nil && *g.dr.Duration != w.duration) {
					t.Errorf("%s: date range %d DURATION %v, want %v", tr.ID, i, g.dr.Duration, w.duration)
				}
				if tr.Info.Kind == "video" && g.seg != w.seg {
					t.Errorf("%s: date range %d before segment %d, want %d", tr.ID, i, g.seg, w.seg)
				}
				if (w.planned == 0) != (g.dr.PlannedDuration == nil) || (g.dr.PlannedDuration != nil && *g.dr.PlannedDuration != w.planned) {
					t.Errorf("%s: date range %d PLANNED-DURATION %v, want %v", tr.ID, i, g.dr.PlannedDuration, w.planned)
				}
			}
		}
	}
}
