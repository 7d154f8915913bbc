package parts

import (
	"bytes"
	"testing"
)

// add adds n parts of 5 ticks to the fragment at start.
func add(t *testing.T, tr *Track, stream string, start int64, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		s := start + int64(i)*5
		if !tr.Add(stream, start, i, Ref{Start: s, Duration: 5, Key: i == 0, Size: 1}, []byte{byte(s)}) {
			t.Fatalf("part %d of %d refused", i, start)
		}
	}
}

func TestTrack(t *testing.T) {
	var tr Track
	add(t, &tr, "a", 0, 0, 4)
	if start, ok := tr.Open(); !ok || start != 0 {
		t.Fatalf("Open = %d, %v", start, ok)
	}
	for _, c := range []struct {
		name   string
		stream string
		frag   int64
		index  int
		start  int64
		want   bool
	}{
		{"out of order", "a", 0, 5, 25, false},
		{"another stream", "b", 0, 4, 20, false},
		{"wrong start", "a", 0, 4, 21, false},
		{"new fragment not at part 0", "a", 20, 1, 25, false},
		{"older fragment", "a", -20, 0, -20, false},
	} {
		if got := tr.Add(c.stream, c.frag, c.index, Ref{Start: c.start, Duration: 5}, nil); got != c.want {
			t.Errorf("%s: Add = %v, want %v", c.name, got, c.want)
		}
	}
	// A part named before it exists is pending; one inside is there.
	if _, _, ok, pending := tr.Part(20); ok || !pending {
		t.Errorf("Part(20): ok %v pending %v, want pending", ok, pending)
	}
	if data, ref, ok, _ := tr.Part(10); !ok || ref.Start != 10 || !bytes.Equal(data, []byte{10}) {
		t.Errorf("Part(10) = %v %+v %v", data, ref, ok)
	}
	if f, ok := tr.FragOf(15); !ok || f != 0 {
		t.Errorf("FragOf(15) = %d, %v", f, ok)
	}
	// Complete at the wrong end forgets; at the right end marks.
	if !tr.Complete(0, 20) {
		t.Fatal("Complete(0, 20): not known")
	}
	if _, ok := tr.Open(); ok {
		t.Error("a complete fragment is still open")
	}
	if tr.Add("a", 0, 4, Ref{Start: 20, Duration: 5}, nil) {
		t.Error("a part added to a complete fragment")
	}
	data, complete, known := tr.From(0, 2)
	if !known || !complete || len(data) != 2 {
		t.Errorf("From(0, 2) = %d parts, complete %v, known %v", len(data), complete, known)
	}
	add(t, &tr, "b", 20, 0, 1)
	if !tr.Complete(20, 99) {
		t.Fatal("Complete(20, 99): not known")
	}
	if _, _, known := tr.From(20, 0); known {
		t.Error("parts that do not cover their fragment are kept")
	}
	// Only the newest Kept fragments stay.
	for f := int64(1); f <= Kept+1; f++ {
		add(t, &tr, "a", f*100, 0, 2)
	}
	v, target := tr.View()
	if len(v) != Kept || v[0].Start != 200 || target != 5 {
		t.Errorf("View: %d fragments from %d, target %d; want %d from 200, 5", len(v), v[0].Start, target, Kept)
	}
	if tr.Bytes() != int64(2*Kept) {
		t.Errorf("Bytes = %d", tr.Bytes())
	}
}
