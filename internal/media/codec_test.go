package media

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// initHeader parses an init segment (ftyp+moov) fixture.
func initHeader(t *testing.T, name string) (*Header, error) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "codecs", name))
	if err != nil {
		t.Fatal(err)
	}
	var ftyp, moov []byte
	for len(raw) >= 8 {
		n := int(uint32(raw[0])<<24 | uint32(raw[1])<<16 | uint32(raw[2])<<8 | uint32(raw[3]))
		if n < 8 || n > len(raw) {
			t.Fatalf("%s: bad box size %d", name, n)
		}
		switch string(raw[4:8]) {
		case "ftyp":
			ftyp = raw[:n]
		case "moov":
			moov = raw[:n]
		}
		raw = raw[n:]
	}
	return ParseHeader(ftyp, nil, moov)
}

// TestCodecStrings checks the RFC 6381 codecs value, Smooth FourCC, channel
// signalling and video range derived from real decoder configuration
// records (written by ffmpeg with libx265, libsvtav1, libopus, ac3, eac3;
// see testdata/codecs/gen.sh). The expected values were read off the
// records with ffprobe and mp4ff-info.
func TestCodecStrings(t *testing.T) {
	cases := []struct {
		file, codec, fourCC, videoRange, mask string
		channels, sampleRate                  int
	}{
		{file: "hvc1.mp4", codec: "hvc1.1.6.L30.90", fourCC: "HVC1"},
		{file: "hev1.mp4", codec: "hev1.1.6.L30.90", fourCC: "HEV1"},
		{file: "hvc1_pq.mp4", codec: "hvc1.2.4.L30.90", fourCC: "HVC1", videoRange: "PQ"},
		{file: "hvc1_hlg.mp4", codec: "hvc1.2.4.L30.90", fourCC: "HVC1", videoRange: "HLG"},
		{file: "av01.mp4", codec: "av01.0.00M.08", fourCC: "AV01"},
		{file: "av01_pq.mp4", codec: "av01.0.00M.10.0.110.09.16.09.0", fourCC: "AV01", videoRange: "PQ"},
		{file: "opus.mp4", codec: "Opus", fourCC: "OPUS", channels: 2, sampleRate: 48000},
		{file: "ac3.mp4", codec: "ac-3", fourCC: "AC-3", channels: 6, mask: "F801", sampleRate: 48000},
		{file: "ec3.mp4", codec: "ec-3", fourCC: "EC-3", channels: 2, mask: "A000", sampleRate: 48000},
		{file: "ec3_51.mp4", codec: "ec-3", fourCC: "EC-3", channels: 6, mask: "F801", sampleRate: 48000},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			h, err := initHeader(t, c.file)
			if err != nil {
				t.Fatal(err)
			}
			ti := h.Tracks[0]
			got := [...]any{ti.Codec, ti.FourCC, ti.VideoRange, ti.ChannelMask, ti.Channels, ti.SampleRate}
			want := [...]any{c.codec, c.fourCC, c.videoRange, c.mask, c.channels, c.sampleRate}
			if got != want {
				t.Errorf("codec, fourcc, range, mask, channels, rate = %v, want %v", got, want)
			}
			if want, ok := dolbyCPD[c.file]; ok {
				// The dac3/dec3 payload as the fixture holds it.
				raw, err := os.ReadFile(filepath.Join("testdata", "codecs", c.file))
				if err != nil {
					t.Fatal(err)
				}
				typ := map[string]string{"ac-3": "dac3", "ec-3": "dec3"}[c.codec]
				i := bytes.Index(raw, []byte(typ))
				if i < 4 {
					t.Fatalf("no %s box in the fixture", typ)
				}
				n := int(raw[i-4])<<24 | int(raw[i-3])<<16 | int(raw[i-2])<<8 | int(raw[i-1])
				want += strings.ToUpper(hex.EncodeToString(raw[i+4 : i-4+n]))
				if ti.CodecPrivateData != want {
					t.Errorf("CodecPrivateData %s, want %s", ti.CodecPrivateData, want)
				}
			}
			if ti.Kind == "video" && (ti.Width != 160 || ti.Height != 96) {
				t.Errorf("size %dx%d, want 160x96", ti.Width, ti.Height)
			}
		})
	}
}

// dolbyCPD is the start of the Smooth CodecPrivateData of the AC-3 and
// E-AC-3 fixtures, which the dac3/dec3 payload follows: the
// WAVEFORMATEXTENSIBLE extension — 1536 samples per block, the Windows
// channel mask (0x3F 5.1, 0x3 stereo), MEDIASUBTYPE_DOLBY_AC3 or
// MEDIASUBTYPE_DOLBY_DDPLUS — as in Smooth manifests of Microsoft's
// encoders (e.g. 00063F000000AF87FBA7022DFB42A4D405CD93843BDD0600200F00
// for 192 kb/s E-AC-3 5.1).
var dolbyCPD = map[string]string{
	"ac3.mp4":    "00063F000000" + "2C806DE046DBCF11B4D100804F6CBBEA",
	"ec3.mp4":    "000603000000" + "AF87FBA7022DFB42A4D405CD93843BDD",
	"ec3_51.mp4": "00063F000000" + "AF87FBA7022DFB42A4D405CD93843BDD",
}

// TestUnsupportedSampleEntry: an audio or video sample entry Sluice does
// not know is refused with ErrUnsupported (a 415 at ingest) naming it.
func TestUnsupportedSampleEntry(t *testing.T) {
	h, err := initHeader(t, "opus.mp4")
	if err != nil {
		t.Fatal(err)
	}
	h.moov.Traks[0].Mdia.Minf.Stbl.Stsd.Children[0].(*mp4.AudioSampleEntryBox).SetType("fLaC")
	var moov bytes.Buffer
	if err := h.moov.Encode(&moov); err != nil {
		t.Fatal(err)
	}
	_, err = ParseHeader(h.Ftyp, nil, moov.Bytes())
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `"fLaC"`) {
		t.Fatalf("err %v, want ErrUnsupported naming fLaC", err)
	}
}

// TestAtmosComplexity: an E-AC-3 dec3 with the Joint Object Coding
// extension (Dolby Atmos; flag_ec3_extension_type_a and the complexity
// index after the substreams) gives the track its complexity index; the
// fixture without it gives 0.
func TestAtmosComplexity(t *testing.T) {
	h, err := initHeader(t, "ec3_51.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if h.Tracks[0].JOC != 0 {
		t.Errorf("plain E-AC-3: JOC %d, want 0", h.Tracks[0].JOC)
	}
	se := h.moov.Traks[0].Mdia.Minf.Stbl.Stsd.Children[0].(*mp4.AudioSampleEntryBox)
	se.Dec3.JOCComplexity = 16
	var moov bytes.Buffer
	if err := h.moov.Encode(&moov); err != nil {
		t.Fatal(err)
	}
	h2, err := ParseHeader(h.Ftyp, nil, moov.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if ti := h2.Tracks[0]; ti.JOC != 16 || ti.Codec != "ec-3" || ti.Channels != 6 {
		t.Errorf("E-AC-3 JOC: joc %d, codec %s, channels %d; want 16, ec-3, 6", ti.JOC, ti.Codec, ti.Channels)
	}
}
