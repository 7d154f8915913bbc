package media_test

import (
	"strings"

	"github.com/Eyevinn/mp4ff/avc"
	mp4hevc "github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/sei"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// scanBody runs a CaptionScan over the fragments of a CMAF body (ftyp,
// moov, moof+mdat pairs) as the store does.
func scanBody(t *testing.T, body []byte) []string {
	t.Helper()
	boxes := testmedia.Boxes(t, body)
	var init []byte
	var scan *media.CaptionScan
	for i := 0; i < len(boxes); i++ {
		switch boxes[i].Type {
		case "ftyp", "moov":
			init = append(init, boxes[i].Raw...)
		case "moof":
			if scan == nil {
				scan = media.NewCaptionScan(init)
				if scan == nil {
					return nil
				}
			}
			if i+1 < len(boxes) && boxes[i+1].Type == "mdat" {
				scan.Fragment(append(append([]byte(nil), boxes[i].Raw...), boxes[i+1].Raw...))
				i++
			}
		}
	}
	if scan == nil {
		t.Fatal("no fragment")
	}
	return scan.Captions()
}

func TestCaptionScan(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join("testdata", "small.cmfv"))
	if err != nil {
		t.Fatal(err)
	}
	captioned, err := testmedia.AddCaptions(plain, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := scanBody(t, plain); len(got) != 0 {
		t.Errorf("plain video: captions %v, want none", got)
	}
	if got := scanBody(t, captioned); !slices.Equal(got, []string{"CC1"}) {
		t.Errorf("captioned video: captions %v, want [CC1]", got)
	}
}

// seiSample is one sample holding an SEI NAL unit with the given cc_data
// triplets (cc_valid/cc_type byte, two data bytes).
func seiSample(t testing.TB, hevc bool, triplets ...[3]byte) []byte {
	t.Helper()
	cc := []byte{0xc0 | byte(len(triplets)), 0xff}
	for _, x := range triplets {
		cc = append(cc, 0xf8|x[0], x[1], x[2])
	}
	cc = append(cc, 0xff)
	msg := sei.CreateCTA608SEIMessage(cc)
	var nalu []byte
	var err error
	if hevc {
		nalu, err = mp4hevc.CreateSEINalu([]sei.SEIMessage{msg})
	} else {
		nalu, err = avc.CreateSEINalu([]sei.SEIMessage{msg})
	}
	if err != nil {
		t.Fatal(err)
	}
	n := len(nalu)
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, nalu...)
}

func TestCaptionChannels(t *testing.T) {
	const (
		f1  = 0x04 // cc_valid, field 1
		f2  = 0x05 // cc_valid, field 2
		pkt = 0x07 // cc_valid, DTVCC packet start
		dat = 0x06 // cc_valid, DTVCC packet data
	)
	for _, tc := range []struct {
		name     string
		hevc     bool
		triplets [][3]byte
		want     []string
	}{
		{"CC1 RCL", false, [][3]byte{{f1, 0x94, 0x20}}, []string{"CC1"}},
		{"CC2 roll-up", false, [][3]byte{{f1, 0x1c, 0x25}}, []string{"CC2"}},
		{"CC3 and CC4", true, [][3]byte{{f2, 0x15, 0x29}, {f2, 0x9d, 0x20}}, []string{"CC3", "CC4"}},
		{"field 1 text only", false, [][3]byte{{f1, 0xc1, 0xc2}}, []string{"CC1"}},
		{"field 2 text only", false, [][3]byte{{f2, 0xc1, 0xc2}}, []string{"CC3"}},
		{"padding", false, [][3]byte{{f1, 0x80, 0x80}, {0, 0x94, 0x20}}, nil},
		// DTVCC packet: header (sequence 0, size code 2: 4 bytes), service
		// 1 block of 2 bytes.
		{"708 service 1", false, [][3]byte{{pkt, 0x02, 0x22}, {dat, 0x41, 0x42}}, []string{"SERVICE1"}},
		// Extended service number 9, block of 1 byte; size code 2.
		{"708 extended service", false, [][3]byte{{pkt, 0x02, 0xe1}, {dat, 0x09, 0x41}}, []string{"SERVICE9"}},
		{"708 null block", false, [][3]byte{{pkt, 0x02, 0x00}, {dat, 0x00, 0x00}}, nil},
		{"608 and 708", false, [][3]byte{{f1, 0x94, 0x2c}, {f1, 0x94, 0x26}, {pkt, 0x02, 0x41}, {dat, 0x41, 0}}, []string{"CC1", "SERVICE2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := media.NewCaptionScanNALU(tc.hevc, 4)
			s.Samples(seiSample(t, tc.hevc, tc.triplets...))
			if got := s.Captions(); !slices.Equal(got, tc.want) {
				t.Errorf("captions %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCaptionScanBound(t *testing.T) {
	s := media.NewCaptionScanNALU(false, 4)
	for range media.CaptionScanFragments {
		s.Fragment([]byte("not a fragment"))
	}
	if !s.Done() {
		t.Fatal("scan not done after its fragment budget")
	}
	if s.Fragment(nil) {
		t.Fatal("a done scan changed")
	}
}

func TestMergeCaptions(t *testing.T) {
	got := media.MergeCaptions([]string{"SERVICE1", "CC3"}, []string{"CC1", "CC3", "SERVICE12", "SERVICE2"})
	if want := []string{"CC1", "CC3", "SERVICE1", "SERVICE2", "SERVICE12"}; !slices.Equal(got, want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
}

// FuzzCaptionScan: any sample bytes scan without panicking, in bounded
// time, and name only CC1-CC4 and SERVICE1-SERVICE63.
func FuzzCaptionScan(f *testing.F) {
	f.Add(false, seiSample(f, false, [3]byte{0x04, 0x94, 0x20}))
	f.Add(true, seiSample(f, true, [3]byte{0x07, 0x02, 0xe1}, [3]byte{0x06, 0x09, 0x41}))
	f.Add(false, []byte{0, 0, 0, 3, 6, 4, 0xff})
	f.Fuzz(func(t *testing.T, hevc bool, b []byte) {
		s := media.NewCaptionScanNALU(hevc, 4)
		s.Samples(b)
		s.Fragment(b)
		for _, c := range s.Captions() {
			if !strings.HasPrefix(c, "CC") && !strings.HasPrefix(c, "SERVICE") {
				t.Fatalf("caption name %q", c)
			}
		}
	})
}

// BenchmarkCaptionScan measures the scan of one stored fragment (the
// captioned fixture's first, 25 pictures of 320x180 H.264) and, for
// comparison, of the same fragment without captions: the cost a video
// track pays on each of its first CaptionScanFragments fragments.
func BenchmarkCaptionScan(b *testing.B) {
	plain, err := os.ReadFile(filepath.Join("testdata", "small.cmfv"))
	if err != nil {
		b.Fatal(err)
	}
	captioned, err := testmedia.AddCaptions(plain, 1, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		body []byte
	}{{"plain", plain}, {"captioned", captioned}} {
		boxes := testmedia.Boxes(b, c.body)
		var frag []byte
		for i := 0; i+1 < len(boxes); i++ {
			if boxes[i].Type == "moof" && boxes[i+1].Type == "mdat" {
				frag = append(append(frag, boxes[i].Raw...), boxes[i+1].Raw...)
				break
			}
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(frag)))
			for b.Loop() {
				media.NewCaptionScanNALU(false, 4).Fragment(frag)
			}
		})
	}
}

// TestNewCaptionScan: a scan is made for H.264 and HEVC tracks only, and
// an HEVC one reads prefix SEI NAL units.
func TestNewCaptionScan(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "codecs", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s := media.NewCaptionScan(read("hvc1.mp4"))
	if s == nil {
		t.Fatal("no scan for HEVC")
	}
	s.Samples(seiSample(t, true, [3]byte{0x04, 0x94, 0x20}))
	if got := s.Captions(); !slices.Equal(got, []string{"CC1"}) {
		t.Errorf("HEVC: captions %v, want [CC1]", got)
	}
	for _, name := range []string{"av01.mp4", "ec3.mp4", "opus.mp4"} {
		if media.NewCaptionScan(read(name)) != nil {
			t.Errorf("%s: a caption scan", name)
		}
	}
}
