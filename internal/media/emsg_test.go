package media_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testkit"
)

func emsgBytes(t *testing.T, b *mp4.EmsgBox) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := b.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStreamParserKeepsEmsg: emsg boxes of versions 0 and 1 before a
// fragment come out with it, times absolute on the track's timescale.
func TestStreamParserKeepsEmsg(t *testing.T) {
	// The test track's timescale is 1000; the emsg boxes use 90 kHz.
	body := append([]byte(nil), testkit.CMAFInit()...)
	body = append(body, emsgBytes(t, &mp4.EmsgBox{Version: 0, TimeScale: 90000, PresentationTimeDelta: 45000,
		EventDuration: 900000, ID: 7, SchemeIDURI: media.SchemeSCTE35, MessageData: []byte{0xFC, 1, 2}})...)
	body = append(body, emsgBytes(t, &mp4.EmsgBox{Version: 1, TimeScale: 90000, PresentationTime: 90000 * 12,
		EventDuration: media.UnknownDuration, ID: 8, SchemeIDURI: media.SchemeID3, Value: "1", MessageData: []byte("ID3")})...)
	body = append(body, testkit.CMAFFragment(1, 10000, 2000, 200)...)
	body = append(body, testkit.CMAFFragment(2, 12000, 2000, 200)...)
	p := media.NewStreamParser(bytes.NewReader(body), 1<<20, nil)
	var got [][]media.Emsg
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == media.EventFragment {
			got = append(got, ev.Fragment.Events)
		}
	}
	want := [][]media.Emsg{{
		{Scheme: media.SchemeSCTE35, ID: 7, Timescale: 1000, Time: 10500, Duration: 10000, Data: []byte{0xFC, 1, 2}},
		{Scheme: media.SchemeID3, Value: "1", ID: 8, Timescale: 1000, Time: 12000, Duration: media.UnknownDuration, Data: []byte("ID3")},
	}, nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events\n%+v\nwant\n%+v", got, want)
	}
	// The stored form reads back the same.
	b, err := media.EncodeEvents(want[0])
	if err != nil {
		t.Fatal(err)
	}
	back, err := media.DecodeEvents(b)
	if err != nil || !reflect.DeepEqual(back, want[0]) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

// TestStreamParserEmsgBounds: too many or too large emsg boxes before a
// fragment, or a malformed one, are refused.
func TestStreamParserEmsgBounds(t *testing.T) {
	one := func(data int, ts uint32) []byte {
		return emsgBytes(t, &mp4.EmsgBox{Version: 1, TimeScale: ts, SchemeIDURI: media.SchemeID3, MessageData: make([]byte, data)})
	}
	for _, tc := range []struct {
		name  string
		emsgs [][]byte
		want  error
	}{
		{"count", func() (o [][]byte) {
			for range media.MaxEventsPerFragment + 1 {
				o = append(o, one(1, 1000))
			}
			return o
		}(), media.ErrEventsTooLarge},
		{"data", [][]byte{one(media.MaxEventData+1, 1000)}, media.ErrEventsTooLarge},
		{"total", [][]byte{one(media.MaxEventData, 1000), one(media.MaxEventData, 1000), one(media.MaxEventData, 1000), one(media.MaxEventData, 1000)}, media.ErrEventsTooLarge},
		{"timescale", [][]byte{one(1, 0)}, media.ErrEvents},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := append([]byte(nil), testkit.CMAFInit()...)
			for _, e := range tc.emsgs {
				body = append(body, e...)
			}
			body = append(body, testkit.CMAFFragment(1, 0, 2000, 200)...)
			_, err := parseAll(t, bytes.NewReader(body), nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}
