package media

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// FuzzStreamParser feeds arbitrary bytes to the ingest body parser: it must
// never panic, never allocate beyond its box bound, and every fragment it
// returns must be a complete moof+mdat.
func FuzzStreamParser(f *testing.F) {
	for _, name := range []string{"testdata/small.ismv", "testdata/small.cmfv"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	// The decoder configuration records of every codec (HEVC, AV1, Opus,
	// AC-3, E-AC-3): their parsers see the fuzzed bytes through moov.
	codecs, _ := filepath.Glob("testdata/codecs/*.mp4")
	for _, name := range codecs {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// emsg boxes (versions 0 and 1) before the fragments of a CMAF body.
	if b, err := os.ReadFile("testdata/small.cmfv"); err == nil {
		var e0, e1 bytes.Buffer
		(&mp4.EmsgBox{Version: 0, TimeScale: 90000, PresentationTimeDelta: 9000, ID: 1, SchemeIDURI: SchemeSCTE35, MessageData: []byte{0xFC, 0x30}}).Encode(&e0)
		(&mp4.EmsgBox{Version: 1, TimeScale: 1000, PresentationTime: 5, ID: 2, SchemeIDURI: SchemeID3, Value: "v"}).Encode(&e1)
		if i := bytes.Index(b, []byte("moof")); i >= 4 {
			c := append(append(append(append([]byte(nil), b[:i-4]...), e0.Bytes()...), e1.Bytes()...), b[i-4:]...)
			f.Add(c)
		}
	}
	f.Add([]byte{0, 0, 0, 8, 'f', 't', 'y', 'p'})
	f.Add([]byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := NewStreamParser(bytes.NewReader(data), 1<<20, nil)
		for i := 0; i < 10000; i++ {
			ev, err := p.Next()
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			if ev.Kind == EventFragment && !IsComplete(ev.Fragment.Data) {
				t.Fatalf("incomplete fragment returned")
			}
			if ev.Kind == EventFragment && len(ev.Fragment.Events) > 0 {
				// Events kept are what the store writes and reads back.
				var evs []Emsg
				for _, e := range ev.Fragment.Events {
					if e.Time >= 0 {
						evs = append(evs, e)
					}
				}
				b, err := EncodeEvents(evs)
				if err != nil {
					t.Fatalf("encode kept events: %v", err)
				}
				back, err := DecodeEvents(b)
				if err != nil || len(back) != len(evs) {
					t.Fatalf("kept events do not read back: %d of %d, %v", len(back), len(evs), err)
				}
			}
		}
	})
}
