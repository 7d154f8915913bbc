package media_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// dripReader returns at most n bytes per Read, like HTTP chunks that split boxes.
type dripReader struct {
	r io.Reader
	n int
}

func (d dripReader) Read(p []byte) (int, error) {
	if len(p) > d.n {
		p = p[:d.n]
	}
	return d.r.Read(p)
}

type parsed struct {
	headers int
	frags   map[uint32][]media.FragInfo
	ends    int
	hdr     *media.Header
}

func parseAll(t *testing.T, r io.Reader, hdr *media.Header) (parsed, error) {
	t.Helper()
	p := media.NewStreamParser(r, 64<<20, hdr)
	out := parsed{frags: map[uint32][]media.FragInfo{}}
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			out.hdr = p.Header()
			return out, nil
		}
		if err != nil {
			return out, err
		}
		switch ev.Kind {
		case media.EventHeader:
			out.headers++
		case media.EventFragment:
			f := ev.Fragment
			if !media.IsComplete(f.Data) {
				t.Fatalf("fragment not moof+mdat")
			}
			out.frags[f.Info.TrackID] = append(out.frags[f.Info.TrackID], f.Info)
		case media.EventEnd:
			out.ends++
		}
	}
}

func TestISMVStream(t *testing.T) {
	dir := t.TempDir()
	body := testmedia.ReadFile(t, testmedia.ISMVFile(t, dir, 6, 2))
	for _, drip := range []int{1 << 20, 32768, 997} {
		got, err := parseAll(t, dripReader{bytes.NewReader(body), drip}, nil)
		if err != nil {
			t.Fatalf("drip %d: %v", drip, err)
		}
		if got.headers != 1 || got.ends != 1 {
			t.Fatalf("drip %d: headers %d ends %d", drip, got.headers, got.ends)
		}
		h := got.hdr
		if len(h.Tracks) != 3 {
			t.Fatalf("tracks: %+v", h.Tracks)
		}
		kinds := map[string]int{}
		for _, tr := range h.Tracks {
			kinds[tr.Kind]++
			if tr.Name == "" || tr.Bitrate == 0 || tr.CodecPrivateData == "" || tr.Timescale != 10000000 {
				t.Errorf("track %+v incomplete", tr)
			}
		}
		if kinds["video"] != 2 || kinds["audio"] != 1 {
			t.Fatalf("kinds %v", kinds)
		}
		for id, fs := range got.frags {
			if len(fs) < 2 {
				t.Fatalf("track %d: %d fragments", id, len(fs))
			}
			for i, f := range fs {
				if !f.HasTfxd {
					t.Errorf("track %d fragment %d without tfxd", id, i)
				}
				if i > 0 && fs[i-1].Start+int64(fs[i-1].Duration) != f.Start {
					t.Errorf("track %d: fragment %d starts at %d, previous ends at %d", id, i, f.Start, fs[i-1].Start+int64(fs[i-1].Duration))
				}
			}
			if tr, _ := h.Track(id); tr.Kind == "video" && !fs[0].Key {
				t.Errorf("video fragment does not start with a key frame")
			}
		}
	}
}

func TestCMAFStream(t *testing.T) {
	dir := t.TempDir()
	const epoch = 1764000000
	v, a := testmedia.CMAFFiles(t, dir, 6, epoch)
	for _, p := range []string{v, a} {
		got, err := parseAll(t, bytes.NewReader(testmedia.ReadFile(t, p)), nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(got.hdr.Tracks) != 1 {
			t.Fatalf("%s: %d tracks", p, len(got.hdr.Tracks))
		}
		tr := got.hdr.Tracks[0]
		fs := got.frags[tr.TrackID]
		if len(fs) < 2 {
			t.Fatalf("%s: %d fragments", p, len(fs))
		}
		want := int64(epoch) * int64(tr.Timescale)
		if d := fs[0].Start - want; d < -int64(tr.Timescale) || d > int64(tr.Timescale) {
			t.Errorf("%s: first start %d, want about %d (epoch-anchored tfdt)", p, fs[0].Start, want)
		}
		if tr.Kind == "audio" && tr.Language != "eng" {
			t.Errorf("audio language %q", tr.Language)
		}
	}
}

// TestNormalizeIdempotent: a stored fragment parsed again is byte-identical,
// so every tier that re-ingests it stores the same bytes.
func TestNormalizeIdempotent(t *testing.T) {
	dir := t.TempDir()
	body := testmedia.ReadFile(t, testmedia.ISMVFile(t, dir, 4, 1))
	p := media.NewStreamParser(bytes.NewReader(body), 64<<20, nil)
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind != media.EventFragment {
			continue
		}
		again := media.NewStreamParser(bytes.NewReader(ev.Fragment.Data), 64<<20, p.Header())
		ev2, err := again.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ev2.Fragment.Data, ev.Fragment.Data) {
			t.Fatal("normalising a normalised fragment changed it")
		}
		a, b := ev2.Fragment.Info, ev.Fragment.Info
		if !a.HasTfdt || a.Start != b.Start || a.Duration != b.Duration || a.Samples != b.Samples || a.Key != b.Key {
			t.Fatalf("info changed: %+v vs %+v", ev2.Fragment.Info, ev.Fragment.Info)
		}
	}
}
