package texttrack

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestParseWebVTT(t *testing.T) {
	doc, err := os.ReadFile("testdata/side.vtt")
	if err != nil {
		t.Fatal(err)
	}
	cues, err := ParseWebVTT(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Cue{
		{ID: "intro", Start: 500 * time.Millisecond, End: 2500 * time.Millisecond, Settings: "line:90% align:center", Text: "Hello <b>world</b>"},
		{Start: time.Minute, End: time.Minute + time.Second, Text: "ignored: ends before it starts? no, fine"},
		{Start: 2 * time.Second, End: 5 * time.Second, Text: "Second cue\nover two lines"},
	}
	if len(cues) != len(want) {
		t.Fatalf("got %d cues %+v, want %d", len(cues), cues, len(want))
	}
	for i := range want {
		if cues[i] != want[i] {
			t.Errorf("cue %d = %+v, want %+v", i, cues[i], want[i])
		}
	}
}

func TestParseWebVTTErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      error
	}{
		{"no signature", "hello\n\n00:00.000 --> 00:01.000\nx\n", ErrSyntax},
		{"signature glued", "WEBVTTX\n", ErrSyntax},
		{"bad timing", "WEBVTT\n\n00:00.00 --> 00:01.000\nx\n", ErrSyntax},
		{"minutes 60", "WEBVTT\n\n00:60.000 --> 01:01.000\nx\n", ErrSyntax},
		{"no timing", "WEBVTT\n\nid\ntext\n", ErrSyntax},
		{"too large", "WEBVTT\n" + strings.Repeat(" ", MaxInput), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseWebVTT([]byte(tc.doc)); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestWvttRoundTrip builds wvtt fragments from a side-car file's cues, as
// the importer does, and converts each back into an HLS WebVTT segment, as
// the origin does: every cue comes back at its times, split at the
// fragment boundary it spans.
func TestWvttRoundTrip(t *testing.T) {
	doc, _ := os.ReadFile("testdata/side.vtt")
	cues, err := ParseWebVTT(doc)
	if err != nil {
		t.Fatal(err)
	}
	init, err := WvttInit(1000, "en", "subtitle")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseInit(init)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Timescale != 1000 || tr.SampleEntry != "wvtt" {
		t.Fatalf("track %+v", tr)
	}
	var all []byte
	for i, span := range [][2]time.Duration{{0, 4 * time.Second}, {4 * time.Second, 8 * time.Second}} {
		ss := WvttSamples(cues, span[0], span[1], 1000)
		var sum uint64
		for _, s := range ss {
			sum += uint64(s.Dur)
		}
		if sum != 4000 {
			t.Fatalf("fragment %d: samples last %d ticks, want 4000", i, sum)
		}
		frag, err := Fragment(uint32(i+1), ss)
		if err != nil {
			t.Fatal(err)
		}
		seg, err := Segment(init, frag)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, seg...)
		all = append(all, "----\n"...)
	}
	golden(t, "roundtrip.golden", all)
}

func TestWriteSegmentTimestampMap(t *testing.T) {
	// 30 h: past the 33-bit wrap of the 90 kHz clock (26.5 h):
	// 108000001 ms * 90 mod 2^33.
	local := 30*time.Hour + 1500*time.Microsecond
	got := string(WriteSegment([]Cue{{Start: local, End: local + time.Second, Text: "a\n\nb --> c"}}, local))
	want := "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:1130065498,LOCAL:30:00:00.001\n\n30:00:00.001 --> 30:00:01.001\na\nb --&gt; c\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func FuzzParseWebVTT(f *testing.F) {
	doc, _ := os.ReadFile("testdata/side.vtt")
	f.Add(doc)
	f.Add([]byte("WEBVTT\n\n99:59:59.999 --> 100:00:00.000 a\nx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cues, err := ParseWebVTT(b)
		if err != nil {
			return
		}
		for _, c := range cues {
			if c.End <= c.Start {
				t.Fatalf("cue %+v does not end after it starts", c)
			}
		}
		// Whatever parsed renders into a segment that parses again.
		seg := WriteSegment(cues, 0)
		if _, err := ParseWebVTT(seg); err != nil {
			t.Fatalf("rendered segment does not parse: %v\n%s", err, seg)
		}
	})
}

func FuzzSegment(f *testing.F) {
	init, _ := WvttInit(1000, "en", "")
	frag, _ := Fragment(1, WvttSamples([]Cue{{Start: 0, End: time.Second, Text: "x"}}, 0, 2*time.Second, 1000))
	f.Add(frag)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Segment(init, b)
	})
}

func TestParseTTML(t *testing.T) {
	doc, err := os.ReadFile("testdata/side.ttml")
	if err != nil {
		t.Fatal(err)
	}
	cues, err := ParseTTML(doc)
	if err != nil {
		t.Fatal(err)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	want := []Cue{
		{Start: ms(2500), End: ms(3500), Text: "Bonjour le monde"},
		{Start: ms(5200), End: ms(6200), Text: "ligne un\nligne deux & plus"},
		{Start: ms(21000), End: ms(22000), Text: "clipped to its div"},
	}
	if len(cues) != len(want) {
		t.Fatalf("got %d cues %+v, want %d", len(cues), cues, len(want))
	}
	for i := range want {
		if cues[i] != want[i] {
			t.Errorf("cue %d = %+v, want %+v", i, cues[i], want[i])
		}
	}
	for _, bad := range []string{"<html/>", "not xml", `<tt><body><p begin="1x">a</p></body></tt>`, `<tt><p begin="01:02:03:04:05" end="1s">a</p></tt>`} {
		if _, err := ParseTTML([]byte(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: err %v, want ErrSyntax", bad, err)
		}
	}
	deep := "<tt>" + strings.Repeat("<div>", maxTTMLDepth+1)
	if _, err := ParseTTML([]byte(deep)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("deep nesting: %v", err)
	}
}

// TestStppSegment: an IMSC1 sample's paragraphs (media times) become the
// cues of the fragment's WebVTT segment, clipped to the sample.
func TestStppSegment(t *testing.T) {
	init, err := StppInit(1000, "fra")
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte(`<tt xmlns="http://www.w3.org/ns/ttml"><body><div>` +
		`<p begin="00:00:41.000" end="00:00:42.500">avant et pendant</p>` +
		`<p begin="00:00:43.000" end="00:00:43.500">pendant</p>` +
		`<p begin="00:00:50.000" end="00:00:51.000">après</p></div></body></tt>`)
	frag, err := Fragment(7, []mp4.FullSample{{
		Sample: mp4.Sample{Dur: 4000, Size: uint32(len(doc)), Flags: mp4.SyncSampleFlags}, DecodeTime: 42000, Data: doc,
	}})
	if err != nil {
		t.Fatal(err)
	}
	seg, err := Segment(init, frag)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "stpp.golden", seg)

	// A Smooth encoder's document, times relative to the sample: the
	// same cues.
	rel := []byte(`<tt xmlns="http://www.w3.org/ns/ttml"><body><div>` +
		`<p begin="00:00:00.000" end="00:00:00.500">avant et pendant</p>` +
		`<p begin="00:00:01.000" end="00:00:01.500">pendant</p></div></body></tt>`)
	frag, err = Fragment(7, []mp4.FullSample{{
		Sample: mp4.Sample{Dur: 4000, Size: uint32(len(rel)), Flags: mp4.SyncSampleFlags}, DecodeTime: 42000, Data: rel,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := Segment(init, frag); err != nil || !bytes.Equal(again, seg) {
		t.Errorf("relative times: %v\n%s", err, again)
	}
}

func FuzzParseTTML(f *testing.F) {
	doc, _ := os.ReadFile("testdata/side.ttml")
	f.Add(doc)
	f.Add([]byte(`<tt><body><p begin="1.5h" end="100t">x<br/>y</p></body></tt>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cues, err := ParseTTML(b)
		if err != nil {
			return
		}
		for _, c := range cues {
			if c.End <= c.Start || c.Start < 0 || c.Text == "" {
				t.Fatalf("bad cue %+v", c)
			}
		}
	})
}
