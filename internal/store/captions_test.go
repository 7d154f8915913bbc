package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestCaptionsDetected: closed captions in the SEI of a video track's
// first fragments are recorded with the track, kept over a restart and
// listed in the View; a plain video track records none.
func TestCaptionsDetected(t *testing.T) {
	plain, err := os.ReadFile("../media/testdata/small.cmfv")
	if err != nil {
		t.Fatal(err)
	}
	captioned, err := testmedia.AddCaptions(plain, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
		want []string
	}{{"captioned", captioned, []string{"CC1"}}, {"plain", plain, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, p := pointCh(t, dir)
			sp := media.NewStreamParser(bytes.NewReader(tc.body), 1<<20, nil)
			var ids map[uint32]string
			for {
				ev, err := sp.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch ev.Kind {
				case media.EventHeader:
					if ids, err = p.SetHeader("s", ev.Header); err != nil {
						t.Fatal(err)
					}
				case media.EventFragment:
					if _, err := p.AddFragment(ids[ev.Fragment.Info.TrackID], ev.Fragment); err != nil {
						t.Fatal(err)
					}
				}
			}
			check := func(p *Point, when string) {
				v := p.View(0)
				if len(v.Tracks) != 1 {
					t.Fatalf("%s: %d tracks", when, len(v.Tracks))
				}
				if got := v.Tracks[0].Info.CaptionList(); !slices.Equal(got, tc.want) {
					t.Errorf("%s: captions %v, want %v", when, got, tc.want)
				}
			}
			check(p, "stored")
			check(reopen(t, dir, "ch"), "after a restart")
		})
	}
}
