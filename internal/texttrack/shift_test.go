package texttrack

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

func TestShiftTTML(t *testing.T) {
	const head = `<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter"`
	for _, c := range []struct {
		name, in string
		d        time.Duration
		want     string
	}{
		{"paragraphs", head + `><body><div><p begin="00:00:01.000" end='00:00:02.500'>a</p></div></body></tt>`, 40 * time.Second,
			head + `><body><div><p begin="41s" end='42.5s'>a</p></div></body></tt>`},
		{"a timed ancestor moves its descendants", head + `><body begin="1s"><p begin="1s" end="2s">a</p></body></tt>`, time.Second,
			head + `><body begin="2s"><p begin="1s" end="2s">a</p></body></tt>`},
		{"an end without a begin: a begin", head + `><body><div end="10s"><p begin="1s" end="2s">a</p></div></body></tt>`, 500 * time.Millisecond,
			head + `><body><div end="10.5s" begin="0.5s"><p begin="1s" end="2s">a</p></div></body></tt>`},
		{"a duration gets a begin", head + `><body><p dur="2s">a</p><br/><p dur="1s"/></body></tt>`, 3 * time.Second,
			head + `><body><p dur="2s" begin="3s">a</p><br/><p dur="1s" begin="3s"/></body></tt>`},
		{"back, not below zero", head + `><body><p begin="41s" end="42s">a</p><p begin="39s" end="41s">b</p></body></tt>`, -40 * time.Second,
			head + `><body><p begin="1s" end="2s">a</p><p begin="0s" end="1s">b</p></body></tt>`},
		{"ticks", head + ` ttp:tickRate="10000000"><body><p begin="10000000t" end="20000000t">a</p></body></tt>`, 2 * time.Second,
			head + ` ttp:tickRate="10000000"><body><p begin="3s" end="4s">a</p></body></tt>`},
		{"untimed", head + `><body><p>a</p></body></tt>`, time.Second, head + `><body><p>a</p></body></tt>`},
	} {
		got, err := ShiftTTML([]byte(c.in), c.d)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %v\n got %s\nwant %s", c.name, err, got, c.want)
		}
	}
	for _, bad := range []string{`<x/>`, `<tt><p begin="x">a</p></tt>`, `<tt><p>`, ``} {
		if _, err := ShiftTTML([]byte(bad), time.Second); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", bad, err)
		}
	}
}

// TestStppTimes: a Smooth encoder's stpp fragment (documents relative to
// their samples) is stored with media times, the same cues; Smooth clients
// get it back relative; a fragment already in media times is kept as it
// is.
func TestStppTimes(t *testing.T) {
	init, err := StppInit(1000, "fra")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseInit(init)
	if err != nil {
		t.Fatal(err)
	}
	doc := func(b, e string) []byte {
		return []byte(`<tt xmlns="http://www.w3.org/ns/ttml"><body><div><p begin="` + b + `" end="` + e + `">x</p></div></body></tt>`)
	}
	frag := func(docs ...[]byte) []byte {
		var ss []mp4.FullSample
		for i, d := range docs {
			ss = append(ss, mp4.FullSample{Sample: mp4.Sample{Dur: 2000, Size: uint32(len(d)), Flags: mp4.SyncSampleFlags},
				DecodeTime: 42000 + uint64(i)*2000, Data: d})
		}
		f, err := Fragment(3, ss)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	rel := frag(doc("0.5s", "1.5s"), doc("00:00:00.000", "00:00:01.000"))
	abs := frag(doc("42.5s", "43.5s"), doc("44s", "45s"))
	got, changed, err := tr.MediaTimeStpp(rel)
	if err != nil || !changed || !bytes.Equal(got, abs) {
		t.Fatalf("relative to media times: changed %v, %v\n got %q\nwant %q", changed, err, got, abs)
	}
	cues := func(f []byte) []Cue {
		c, err := tr.StppCues(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if a, b := cues(rel), cues(got); !slices.Equal(a, b) || len(a) != 2 || a[1].Start != 44*time.Second {
		t.Errorf("cues %v, then %v", a, b)
	}
	if again, changed, err := tr.MediaTimeStpp(abs); err != nil || changed || &again[0] != &abs[0] {
		t.Errorf("media times again: changed %v, %v", changed, err)
	}
	back, changed, err := tr.SampleTimeStpp(abs)
	if err != nil || !changed {
		t.Fatalf("back to relative: changed %v, %v", changed, err)
	}
	if want := frag(doc("0.5s", "1.5s"), doc("0s", "1s")); !bytes.Equal(back, want) {
		t.Errorf("back to relative:\n got %q\nwant %q", back, want)
	}
	if _, changed, err := tr.SampleTimeStpp(rel); err != nil || changed {
		t.Errorf("relative for Smooth again: changed %v, %v", changed, err)
	}
	if _, _, err := tr.MediaTimeStpp(frag([]byte("<tt><p"))); !errors.Is(err, ErrSyntax) {
		t.Errorf("a broken document: %v", err)
	}
}

// FuzzShiftTTML: a shifted document parses to the same cues, moved.
func FuzzShiftTTML(f *testing.F) {
	doc, _ := os.ReadFile("testdata/side.ttml")
	f.Add(doc, int64(1500))
	f.Add([]byte(`<tt><body begin="1s"><div end="3s"><p dur="1s">x<br/>y</p></div><p begin="100t" end="1.5h">z</p></body></tt>`), int64(-700))
	f.Fuzz(func(t *testing.T, b []byte, ms int64) {
		d := time.Duration(ms%(1<<20)) * time.Millisecond
		out, err := ShiftTTML(b, d)
		if err != nil {
			return
		}
		before, err := ParseTTML(b)
		if err != nil {
			return // ShiftTTML reads only the times it moves
		}
		after, err := ParseTTML(out)
		if err != nil {
			t.Fatalf("shifted: %v\n%s", err, out)
		}
		if d < 0 || len(before) != len(after) {
			if len(after) > len(before) {
				t.Fatalf("%d cues, then %d", len(before), len(after))
			}
			return
		}
		for i := range before {
			if after[i].Text != before[i].Text || after[i].Start != before[i].Start+d || after[i].End != before[i].End+d {
				t.Fatalf("cue %d: %+v, then %+v (shift %v)\n%s", i, before[i], after[i], d, out)
			}
		}
	})
}
