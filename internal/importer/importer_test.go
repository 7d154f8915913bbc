package importer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/importer"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testmedia"
	"github.com/sluice-media/sluice/internal/texttrack"
)

func TestImportSample(t *testing.T) {
	data := t.TempDir()
	var progress bytes.Buffer
	res, err := importer.Import(context.Background(), testmedia.Sample(t), importer.Options{
		DataDir: data, Asset: "movies/demo", Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if res.Fragments != 18 || len(res.Tracks) != 3 {
		t.Errorf("result: %d fragments, %d tracks; want 18, 3", res.Fragments, len(res.Tracks))
	}
	if !strings.Contains(progress.String(), "100%") {
		t.Errorf("no finished progress bar in %q", progress.String())
	}
	// No temporary directory is left behind.
	ents, _ := os.ReadDir(data)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left over %s", e.Name())
		}
	}

	// Reopen the store as a server would.
	st, err := store.Open(data, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Points(); len(got) != 1 || got[0] != "movies/demo" {
		t.Fatalf("points %v, want [movies/demo]", got)
	}
	p, err := st.Point("movies/demo")
	if err != nil {
		t.Fatal(err)
	}
	v := p.View(0)
	if !v.Meta.VOD {
		t.Error("asset not marked VOD")
	}
	if !v.Ended {
		t.Error("not every track ended")
	}
	kinds := map[string]int{}
	for _, tr := range v.Tracks {
		kinds[tr.Info.Kind]++
		if !tr.Ended {
			t.Errorf("track %s not ended", tr.ID)
		}
		if len(tr.Frags) != 6 {
			t.Errorf("track %s: %d fragments, want 6", tr.ID, len(tr.Frags))
			continue
		}
		var total uint64
		for i, f := range tr.Frags {
			if i > 0 && tr.Frags[i-1].End() != f.Start {
				t.Errorf("track %s: gap before %d", tr.ID, f.Start)
			}
			if !f.Key {
				t.Errorf("track %s: fragment %d does not start with a key frame", tr.ID, f.Start)
			}
			total += f.Duration
		}
		secs := tr.Seconds(int64(total))
		if secs < 11.97 || secs > 12.03 {
			t.Errorf("track %s lasts %.3f s, want about 12", tr.ID, secs)
		}
		if tr.Stream != importer.StreamID {
			t.Errorf("track %s on stream %q", tr.ID, tr.Stream)
		}
		if _, _, err := p.ReadFragment(tr.ID, tr.Frags[0].Start); err != nil {
			t.Errorf("read first fragment of %s: %v", tr.ID, err)
		}
	}
	if kinds["video"] != 2 || kinds["audio"] != 1 {
		t.Errorf("track kinds %v, want 2 video + 1 audio", kinds)
	}
}

func TestImportExistingAsset(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	opts := importer.Options{DataDir: data, Asset: "demo"}
	if _, err := importer.Import(ctx, testmedia.Sample(t), opts); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(data, "demo", "marker")
	os.WriteFile(marker, []byte("old"), 0o644)

	_, err := importer.Import(ctx, testmedia.Sample(t), opts)
	if !errors.Is(err, importer.ErrExists) {
		t.Fatalf("second import: %v, want ErrExists", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("refused import touched the existing asset")
	}

	opts.Force = true
	if _, err := importer.Import(ctx, testmedia.Sample(t), opts); err != nil {
		t.Fatalf("forced import: %v", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Error("forced import kept the old asset's files")
	}
	ents, _ := os.ReadDir(data)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("data directory holds %v, want only demo", names)
	}
}

func TestImportRejects(t *testing.T) {
	data := t.TempDir()
	notMP4 := filepath.Join(t.TempDir(), "x.mp4")
	os.WriteFile(notMP4, []byte("not a movie"), 0o644)
	tests := []struct {
		name, file, asset, want string
	}{
		{"parent escape", testmedia.Sample(t), "../evil", "invalid asset name"},
		{"hidden", testmedia.Sample(t), ".hidden", "invalid asset name"},
		{"isml suffix", testmedia.Sample(t), "live.isml", "invalid asset name"},
		{"empty", testmedia.Sample(t), "", "invalid asset name"},
		{"not an mp4", notMP4, "bad", "decode mp4"},
		{"missing file", filepath.Join(data, "none.mp4"), "none", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := importer.Import(context.Background(), tc.file, importer.Options{DataDir: data, Asset: tc.asset})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	ents, _ := os.ReadDir(data)
	if len(ents) != 0 {
		t.Errorf("failed imports left %d entries in the data directory", len(ents))
	}
}

func TestImportCancelled(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := importer.Import(ctx, testmedia.Sample(t), importer.Options{DataDir: data, Asset: "demo"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	ents, _ := os.ReadDir(data)
	if len(ents) != 0 {
		t.Errorf("cancelled import left %d entries", len(ents))
	}
}

// TestImportSidecar imports the sample with a WebVTT and a TTML side-car
// file found next to it: each becomes an ended wvtt text track with its language and
// role, in one fragment per video fragment, whose WebVTT segments carry
// the cues at their times.
func TestImportSidecar(t *testing.T) {
	dir := t.TempDir()
	movie := filepath.Join(dir, "movie.mp4")
	if err := os.Symlink(testmedia.Sample(t), movie); err != nil {
		t.Fatal(err)
	}
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("movie.en.vtt", "WEBVTT\n\n00:00.500 --> 00:03.500\nHello\n")
	write("movie.fr.caption.ttml", `<tt xmlns="http://www.w3.org/ns/ttml"><body><div><p begin="1s" end="2s">[musique]</p></div></body></tt>`)
	write("movie-2.vtt", "WEBVTT\n") // another movie's
	write("movie.en.bogus.vtt", "WEBVTT\n")
	scs, err := importer.FindSidecars(movie)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 || scs[0].Language != "en" || scs[0].Role != "" || scs[1].Language != "fr" || scs[1].Role != "caption" {
		t.Fatalf("side-cars %+v", scs)
	}
	data := t.TempDir()
	res, err := importer.Import(context.Background(), movie, importer.Options{DataDir: data, Asset: "subs", Sidecars: scs})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(res.Tracks) != 5 {
		t.Fatalf("tracks %v, want 3 + 2 text", res.Tracks)
	}
	st, err := store.Open(data, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Point("subs")
	if err != nil {
		t.Fatal(err)
	}
	v := p.View(0)
	if !v.Ended || !v.Meta.VOD {
		t.Fatalf("ended %v vod %v", v.Ended, v.Meta.VOD)
	}
	var video store.TrackView
	var texts []store.TrackView
	for _, tr := range v.Tracks {
		switch tr.Info.Kind {
		case "video":
			if video.ID == "" {
				video = tr
			}
		case "text":
			texts = append(texts, tr)
		}
	}
	if len(texts) != 2 {
		t.Fatalf("text tracks %+v", texts)
	}
	langs := map[string]string{}
	for _, tr := range texts {
		langs[tr.Info.Language] = tr.Info.Role
		if tr.Info.Codec != "wvtt" || !tr.Ended || len(tr.Frags) != len(video.Frags) {
			t.Errorf("text track %s: codec %q ended %v, %d fragments for %d of video", tr.ID, tr.Info.Codec, tr.Ended, len(tr.Frags), len(video.Frags))
		}
	}
	if langs["en"] != "subtitle" || langs["fr"] != "caption" {
		t.Errorf("languages and roles %v", langs)
	}
	// The English cue (0.5 s to 3.5 s) is in the first fragments' WebVTT.
	var en store.TrackView
	for _, tr := range texts {
		if tr.Info.Language == "en" {
			en = tr
		}
	}
	init, err := p.Init(en.ID)
	if err != nil {
		t.Fatal(err)
	}
	frag, _, err := p.ReadFragment(en.ID, en.Frags[0].Start)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := texttrack.Segment(init, frag)
	if err != nil {
		t.Fatal(err)
	}
	end := min(3500, en.Frags[0].End())
	want := fmt.Sprintf("\n00:00:00.500 --> %s\nHello\n", fmtMS(end))
	if !strings.Contains(string(seg), want) {
		t.Errorf("first WebVTT segment\n%s\nlacks %q", seg, want)
	}
}

func fmtMS(ms int64) string {
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}
