package store

import (
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
)

// BenchmarkViewEvents measures Point.View of a track of 1800 fragments (an
// hour of 2 s fragments) without events, and with an ID3 tag stored with
// every fragment plus an SCTE-35 marker every 5 minutes: the manifests'
// view must not grow with the per-fragment metadata.
func BenchmarkViewEvents(b *testing.B) {
	for _, tc := range []struct {
		name   string
		events bool
	}{{"none", false}, {"id3-every-fragment", true}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), quiet())
			if err != nil {
				b.Fatal(err)
			}
			s.noSync = true
			p, err := s.Create("ch")
			if err != nil {
				b.Fatal(err)
			}
			h, frags := fixture(b)
			ids, err := p.SetHeader("s", h)
			if err != nil {
				b.Fatal(err)
			}
			f := frags[0]
			id := ids[f.Info.TrackID]
			ts := p.tracks[id].Info.Timescale
			d := int64(f.Info.Duration)
			for i := int64(0); i < 1800; i++ {
				g := *f
				if g.Data, g.Info, err = media.Shift(f.Data, f.Info, i*d); err != nil {
					b.Fatal(err)
				}
				if tc.events {
					g.Events = []media.Emsg{{Scheme: media.SchemeID3, Value: "1", ID: uint32(i), Timescale: ts,
						Time: g.Info.Start, Duration: media.UnknownDuration, Data: []byte("ID3\x04\x00\x00\x00\x00\x00\x00")}}
					if i%150 == 0 {
						g.Events = append(g.Events, media.Emsg{Scheme: media.SchemeSCTE35, ID: uint32(i), Timescale: ts,
							Time: g.Info.Start, Duration: media.UnknownDuration, Data: []byte{0xFC}})
					}
				}
				if _, err := p.AddFragment(id, &g); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			b.ReportAllocs()
			for range b.N {
				p.View(10 * time.Minute)
			}
		})
	}
}
