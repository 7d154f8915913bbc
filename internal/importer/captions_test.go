package importer_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluice-media/sluice/internal/importer"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestImportCaptions: `sluice import` of an MP4 whose video carries
// CEA-608 captions in its SEI (testmedia.AddCaptions, remuxed to a
// progressive MP4 by ffmpeg without re-encoding) records them with the
// video track, as ingest does; the bundled sample, without captions,
// records none.
func TestImportCaptions(t *testing.T) {
	tmp := t.TempDir()
	plain, err := os.ReadFile(filepath.Join("..", "media", "testdata", "small.cmfv"))
	if err != nil {
		t.Fatal(err)
	}
	captioned, err := testmedia.AddCaptions(plain, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	frag := filepath.Join(tmp, "cc.cmfv")
	if err := os.WriteFile(frag, captioned, 0o644); err != nil {
		t.Fatal(err)
	}
	movie := filepath.Join(tmp, "cc.mp4")
	testmedia.Run(t, []string{"-hide_banner", "-loglevel", "error", "-y", "-i", frag, "-c", "copy", movie})

	data := t.TempDir()
	for _, tc := range []struct {
		file, asset string
		want        []string
	}{{movie, "cc", []string{"CC1"}}, {testmedia.Sample(t), "plain", nil}} {
		if _, err := importer.Import(context.Background(), tc.file, importer.Options{DataDir: data, Asset: tc.asset}); err != nil {
			t.Fatalf("import %s: %v", tc.asset, err)
		}
		st, err := store.Open(data, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		p, err := st.Point(tc.asset)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, tr := range p.View(0).Tracks {
			if tr.Info.Kind != "video" {
				continue
			}
			found = true
			if !slices.Equal(tr.Info.CaptionList(), tc.want) {
				t.Errorf("%s: video track %s captions %v, want %v", tc.asset, tr.ID, tr.Info.Captions, tc.want)
			}
		}
		if !found {
			t.Errorf("%s: no video track", tc.asset)
		}
	}
}
