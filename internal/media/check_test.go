package media_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testkit"
)

func TestCheckFragmentAndHeader(t *testing.T) {
	init := testkit.CMAFInit()
	h, err := media.ParseCMAFHeader(init)
	if err != nil {
		t.Fatalf("a valid header: %v", err)
	}
	frag := testkit.CMAFFragment(1, 40_000, 2000, 408)
	random := make([]byte, 64<<10)
	rand.Read(random)
	otherTrack := func() []byte {
		f, _ := mp4.CreateFragment(1, 7)
		f.AddFullSample(mp4.FullSample{Sample: mp4.Sample{Dur: 1, Size: 1}, DecodeTime: 40_000, Data: []byte{1}})
		var b bytes.Buffer
		f.Encode(&b)
		return b.Bytes()
	}()
	for _, tc := range []struct {
		name string
		data []byte
		h    *media.Header
		ok   bool
	}{
		{"fragment", frag, h, true},
		{"fragment, no header known", frag, nil, true},
		{"random 64 KiB", random, h, false},
		{"empty", nil, h, false},
		{"truncated", frag[:len(frag)-10], h, false},
		{"two fragments", append(append([]byte(nil), frag...), frag...), h, false},
		{"moof only", frag[:len(frag)-300], h, false},
		{"a header", init, h, false},
		{"another track", otherTrack, h, false},
	} {
		fi, err := media.CheckFragment(tc.data, tc.h)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err == nil && fi.Start != 40_000 {
			t.Errorf("%s: start %d", tc.name, fi.Start)
		}
	}
	// ParseCMAFHeader checks what stands around the moov; ParseStoredHeader
	// (a store's own headers) reads up to the moov and no further.
	for _, tc := range []struct {
		name         string
		data         []byte
		cmaf, stored bool
	}{
		{"header", init, true, true},
		{"random", random, false, false},
		{"fragment", frag, false, false},
		{"truncated", init[:len(init)-4], false, false},
		{"header and a fragment", append(append([]byte(nil), init...), frag...), false, true},
		{"moov without ftyp", init[binary.BigEndian.Uint32(init):], false, true},
	} {
		if _, err := media.ParseCMAFHeader(tc.data); (err == nil) != tc.cmaf {
			t.Errorf("header %s: %v, want ok=%v", tc.name, err, tc.cmaf)
		}
		if _, err := media.ParseStoredHeader(tc.data); (err == nil) != tc.stored {
			t.Errorf("stored header %s: %v, want ok=%v", tc.name, err, tc.stored)
		}
	}
}
