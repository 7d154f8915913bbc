package media_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/mp4src"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// assemble parses body and runs its chunks through an Assembler, returning
// the completed fragments and the parts per track.
func assemble(t *testing.T, body []byte, edge func() media.VideoEdge) (map[uint32][]*media.Fragment, map[uint32][]media.Part, *media.Header) {
	t.Helper()
	a := media.NewAssembler(nil, 8<<20)
	a.Edge = edge
	return assembleWith(t, body, a)
}

// assembleWith is assemble with a given Assembler.
func assembleWith(t *testing.T, body []byte, a *media.Assembler) (map[uint32][]*media.Fragment, map[uint32][]media.Part, *media.Header) {
	t.Helper()
	p := media.NewStreamParser(bytes.NewReader(body), 16<<20, nil)
	done := map[uint32][]*media.Fragment{}
	parts := map[uint32][]media.Part{}
	take := func(out media.Assembled) {
		for _, f := range out.Done {
			done[f.Info.TrackID] = append(done[f.Info.TrackID], f)
		}
		for _, pt := range out.Parts {
			parts[pt.Info.TrackID] = append(parts[pt.Info.TrackID], pt)
		}
	}
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case media.EventHeader:
			a.SetHeader(ev.Header)
		case media.EventFragment:
			out, err := a.Add(ev.Fragment)
			if err != nil {
				t.Fatal(err)
			}
			take(out)
		}
	}
	fs, err := a.Flush()
	if err != nil {
		t.Fatal(err)
	}
	take(media.Assembled{Done: fs})
	return done, parts, p.Header()
}

// TestAssembleChunkedISMV runs what ffmpeg writes as a low-latency ismv
// encoder (0.5 s chunks, 2 s GOPs) through an Assembler. The first chunk
// of each track is a fragment of its own (nothing is held back to find
// out the stream is chunked) and the rest of the first GOP another; after
// that every fragment is a whole GOP, merged, video starting with its key
// frame and audio at the chunk nearest the video's fragment start; every
// chunk after the first is a part.
func TestAssembleChunkedISMV(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "chunk.ismv")
	testmedia.Run(t, testmedia.ChunkedISMVArgs(6, 0.5, false, 0, out))
	done, parts, h := assemble(t, testmedia.ReadFile(t, out), nil)
	starts := map[string][]float64{}
	for _, ti := range h.Tracks {
		fs := done[ti.TrackID]
		ts := float64(ti.Timescale)
		var total, partDur uint64
		for i, f := range fs {
			if i > 0 && f.Info.Start != fs[i-1].Info.Start+int64(fs[i-1].Info.Duration) {
				t.Errorf("%s fragment %d starts at %d, not where the one before ends", ti.Kind, i, f.Info.Start)
			}
			if i > 0 {
				total += f.Info.Duration
			}
			starts[ti.Kind] = append(starts[ti.Kind], float64(f.Info.Start)/ts)
			d := float64(f.Info.Duration) / ts
			switch {
			case i == 0 && math.Abs(d-0.5) > 0.05:
				t.Errorf("%s: the first fragment lasts %.3f s, want the first chunk's 0.5 s", ti.Kind, d)
			case i >= 2 && i < len(fs)-1 && math.Abs(d-2) > 0.05:
				t.Errorf("%s fragment %d lasts %.3f s, want 2 (chunks grouped by GOP)", ti.Kind, i, d)
			}
			if ti.Kind == "video" && i != 1 && !f.Info.Key {
				t.Errorf("video fragment %d does not start with a key frame", i)
			}
			// A merged fragment's bytes say what its info says.
			fi := inspect(t, h, f.Data)
			if fi.Duration != f.Info.Duration || fi.Start != f.Info.Start || fi.Samples != f.Info.Samples {
				t.Errorf("%s fragment %d: stored bytes say %+v, info says %+v", ti.Kind, i, fi, f.Info)
			}
		}
		if len(fs) != 4 {
			t.Errorf("%s: %d fragments, want 4", ti.Kind, len(fs))
		}
		ps := parts[ti.TrackID]
		for _, p := range ps {
			partDur += p.Info.Duration
		}
		if partDur != total || len(ps) != 11 {
			t.Errorf("%s: %d parts covering %d ticks; want 11 covering the %d after the first fragment", ti.Kind, len(ps), partDur, total)
		}
		for _, p := range ps {
			if p.Index == 0 && ti.Kind == "video" && p.FragStart != fs[1].Info.Start && !p.Info.Key {
				t.Errorf("video part 0 of fragment %d is not independent", p.FragStart)
			}
		}
	}
	// Audio fragments begin within a chunk of the video's.
	for i := 2; i < len(starts["video"]) && i < len(starts["audio"]); i++ {
		if d := math.Abs(starts["audio"][i] - starts["video"][i]); d > 0.26 {
			t.Errorf("audio fragment %d starts %.3f s from the video's", i, d)
		}
	}
}

// TestAssembleUnchunked checks that a stream of whole fragments is stored
// byte for byte as before.
func TestAssembleUnchunked(t *testing.T) {
	body := testmedia.ReadFile(t, testmedia.ISMVFile(t, t.TempDir(), 4, 1))
	done, parts, _ := assemble(t, body, nil)
	p := media.NewStreamParser(bytes.NewReader(body), 16<<20, nil)
	want := map[uint32][][]byte{}
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == media.EventFragment {
			want[ev.Fragment.Info.TrackID] = append(want[ev.Fragment.Info.TrackID], ev.Fragment.Data)
		}
	}
	for id, ws := range want {
		if len(done[id]) != len(ws) {
			t.Fatalf("track %d: %d fragments, want %d", id, len(done[id]), len(ws))
		}
		for i := range ws {
			if !bytes.Equal(done[id][i].Data, ws[i]) {
				t.Errorf("track %d fragment %d changed", id, i)
			}
		}
	}
	if len(parts) != 0 {
		t.Errorf("an unchunked stream made parts: %v", len(parts))
	}
}

// TestMergeSameSamples checks that a fragment's bytes depend only on its
// samples: the chunks of one encode merge to what merging the whole
// fragment gives.
func TestMergeSameSamples(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "chunk.ismv")
	testmedia.Run(t, testmedia.ChunkedISMVArgs(4, 0.5, false, 0, out))
	done, _, h := assemble(t, testmedia.ReadFile(t, out), nil)
	for _, ti := range h.Tracks {
		f := done[ti.TrackID][2] // merged from four chunks
		again, err := media.Merge([]*media.Fragment{f}, h.Trex(ti.TrackID))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Data, f.Data) {
			t.Errorf("%s: merging a merged fragment changed its bytes", ti.Kind)
		}
	}
}

// TestAssembleMarked: what a chunked pull sends (a styp before each
// fragment — with the chunk brand before the chunks of one in progress —
// see ingest's StartSpec.Chunks) assembled with Marked gives the same
// fragments, byte for byte, as the push they came from.
func TestAssembleMarked(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "chunk.ismv")
	testmedia.Run(t, testmedia.ChunkedISMVArgs(6, 0.5, false, 0, out))
	raw := testmedia.ReadFile(t, out)
	done, parts, h := assemble(t, raw, nil)
	var body []byte
	for _, b := range testmedia.Boxes(t, raw) {
		if b.Type == "moof" {
			break
		}
		body = append(body, b.Raw...)
	}
	for _, ti := range h.Tracks {
		ps := parts[ti.TrackID]
		for _, f := range done[ti.TrackID] {
			chunked := false
			for _, p := range ps {
				if p.FragStart != f.Info.Start {
					continue
				}
				if p.Index == 0 {
					body = append(body, media.Styp(media.MarkChunked)...)
				}
				body = append(body, p.Data...)
				chunked = true
			}
			if !chunked {
				body = append(body, media.Styp(media.MarkWhole)...)
				body = append(body, f.Data...)
			}
		}
	}
	a := media.NewAssembler(nil, 8<<20)
	a.Marked = true
	got, gotParts, _ := assembleWith(t, body, a)
	nparts := len(gotParts[1]) + len(gotParts[2])
	for _, ti := range h.Tracks {
		want := done[ti.TrackID]
		if len(got[ti.TrackID]) != len(want) {
			t.Fatalf("%s: %d fragments, want %d", ti.Kind, len(got[ti.TrackID]), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[ti.TrackID][i].Data, want[i].Data) {
				t.Errorf("%s fragment %d differs from the push's", ti.Kind, i)
			}
		}
	}
	if want := len(parts[1]) + len(parts[2]); nparts != want {
		t.Errorf("%d parts, want %d", nparts, want)
	}
}

// TestSameSamples: a period written whole and the same period cut into
// chunks and merged carry the same samples in other boxes; a fragment of
// another period does not.
func TestSameSamples(t *testing.T) {
	src, err := mp4src.Open(testmedia.Sample(t), mp4src.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var whole bytes.Buffer
	if _, err := src.WriteHeader(&whole); err != nil {
		t.Fatal(err)
	}
	header := append([]byte(nil), whole.Bytes()...)
	for i := 0; i < 2; i++ {
		if _, err := src.WritePeriod(&whole, 0, i); err != nil {
			t.Fatal(err)
		}
	}
	chunked := append([]byte(nil), header...)
	for i := 0; i < 2; i++ {
		cs, err := src.PeriodChunks(0, i, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			chunked = append(chunked, c...)
		}
	}
	w, _, h := assemble(t, whole.Bytes(), nil)
	c, _, _ := assemble(t, chunked, nil)
	for _, ti := range h.Tracks {
		ws, cs := w[ti.TrackID], c[ti.TrackID]
		// The chunked push's first fragment is its first chunk alone (see
		// Assembler): compare the second period, merged from its chunks.
		if len(ws) != 2 || len(cs) < 3 {
			t.Fatalf("%s: %d whole and %d chunked fragments", ti.Kind, len(ws), len(cs))
		}
		merged := cs[len(cs)-1]
		if bytes.Equal(ws[1].Data, merged.Data) {
			t.Fatalf("%s: the whole and the merged fragment are the same bytes; the test shows nothing", ti.Kind)
		}
		if !media.SameSamples(ws[1].Data, merged.Data, h.Trex(ti.TrackID)) {
			t.Errorf("%s: a period whole and merged from chunks do not carry the same samples", ti.Kind)
		}
		if media.SameSamples(ws[0].Data, merged.Data, h.Trex(ti.TrackID)) {
			t.Errorf("%s: two periods carry the same samples", ti.Kind)
		}
	}
}
