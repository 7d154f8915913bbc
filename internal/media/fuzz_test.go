package media

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
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
		}
	})
}
