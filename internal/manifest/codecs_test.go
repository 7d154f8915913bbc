package manifest

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
)

// codecsView: an on-demand presentation with an HEVC HDR (PQ) and an AV1
// ladder, AAC, E-AC-3 5.1 and Opus audio (the codec strings as
// media.ParseHeader derives them from ffmpeg's configuration records).
func codecsView() store.View {
	const ts = 90000
	vfr := func(id string) store.TrackView {
		return with(store.TrackView{ID: id, Stream: "s1"}, 0, frags(nil, 0, 200000, repeat(2*ts, 5)...))
	}
	hevc := vfr("hevc_2000000")
	hevc.Info = media.TrackInfo{TrackID: 1, Kind: "video", Timescale: ts, SampleEntry: "hvc1", Codec: "hvc1.2.4.L93.90",
		FourCC: "HVC1", CodecPrivateData: "0000000140", Bitrate: 2000000, Width: 1280, Height: 720, Name: "video", VideoRange: media.RangePQ}
	av1 := vfr("av1_1000000")
	av1.Info = media.TrackInfo{TrackID: 2, Kind: "video", Timescale: ts, SampleEntry: "av01", Codec: "av01.0.04M.08",
		FourCC: "AV01", Bitrate: 1000000, Width: 854, Height: 480, Name: "video_av1", VideoRange: media.RangeSDR}
	afr := func(id string) store.TrackView {
		return with(store.TrackView{ID: id, Stream: "s1"}, 0, frags(nil, 0, 30000, repeat(2*48000, 5)...))
	}
	aac := afr("audio_128000")
	aac.Info = media.TrackInfo{TrackID: 3, Kind: "audio", Timescale: 48000, SampleEntry: "mp4a", Codec: "mp4a.40.2", FourCC: "AACL",
		CodecPrivateData: "1190", Bitrate: 128000, SampleRate: 48000, Channels: 2, BitsPerSample: 16, Name: "audio"}
	ec3 := afr("ec3_256000")
	ec3.Info = media.TrackInfo{TrackID: 4, Kind: "audio", Timescale: 48000, SampleEntry: "ec-3", Codec: "ec-3", FourCC: "EC-3",
		CodecPrivateData: "00063F000000AF87FBA7022DFB42A4D405CD93843BDD0800200F00",
		Bitrate:          256000, SampleRate: 48000, Channels: 6, ChannelMask: "F801", BitsPerSample: 16, Name: "audio_ec3"}
	opus := afr("opus_64000")
	opus.Info = media.TrackInfo{TrackID: 5, Kind: "audio", Timescale: 48000, SampleEntry: "Opus", Codec: "Opus", FourCC: "OPUS",
		Bitrate: 64000, SampleRate: 48000, Channels: 2, BitsPerSample: 16, Name: "audio_opus"}
	tracks := []store.TrackView{hevc, av1, ec3, aac, opus}
	for i := range tracks {
		tracks[i].Ended = true
	}
	return store.View{Name: "codecs", Meta: store.PointMeta{Anchor: anchor, VOD: true}, Tracks: tracks}
}

// TestCodecSignalling: every codec is announced as each format can.
// HLS: one audio group per codec family, each video variant once per group
// with the video's and the group's codecs, VIDEO-RANGE and CHANNELS. DASH:
// @codecs, the Dolby AudioChannelConfiguration for E-AC-3, the MPEG one
// otherwise, the transfer characteristics of HDR video. Smooth: HEVC and
// E-AC-3 with their FourCC, no AV1 or Opus.
func TestCodecSignalling(t *testing.T) {
	v := codecsView()
	o := Options{Now: anchor.Add(20 * time.Second)}

	b, err := HLSMaster(v, o)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
	if err != nil {
		t.Fatalf("hls master: %v\n%s", err, b)
	}
	mp := p.(*m3u8.MasterPlaylist)
	type variant struct{ uri, codecs, audio, rng string }
	var got []variant
	for _, vr := range mp.Variants {
		got = append(got, variant{vr.URI, vr.Codecs, vr.Audio, vr.VideoRange})
	}
	want := []variant{
		{"tracks/hevc_2000000/media.m3u8", "hvc1.2.4.L93.90,mp4a.40.2", "audio-mp4a", "PQ"},
		{"tracks/av1_1000000/media.m3u8", "av01.0.04M.08,mp4a.40.2", "audio-mp4a", "SDR"},
		{"tracks/hevc_2000000/media.m3u8", "hvc1.2.4.L93.90,ec-3", "audio-ec-3", "PQ"},
		{"tracks/av1_1000000/media.m3u8", "av01.0.04M.08,ec-3", "audio-ec-3", "SDR"},
		{"tracks/hevc_2000000/media.m3u8", "hvc1.2.4.L93.90,Opus", "audio-opus", "PQ"},
		{"tracks/av1_1000000/media.m3u8", "av01.0.04M.08,Opus", "audio-opus", "SDR"},
	}
	if len(got) != len(want) {
		t.Fatalf("variants %v, want %v\n%s", got, want, b)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("variant %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if !strings.Contains(string(b), `GROUP-ID="audio-ec-3",NAME="ec3_256000",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="6"`) {
		t.Errorf("no E-AC-3 rendition with CHANNELS=6:\n%s", b)
	}

	b, err = DASH(v, o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		t.Fatal(err)
	}
	reps := map[string]*mpd.RepresentationType{}
	for _, as := range m.Periods[0].AdaptationSets {
		for _, r := range as.Representations {
			reps[r.Id] = r
		}
	}
	for _, tr := range v.Tracks {
		r := reps[tr.ID]
		if r == nil || r.Codecs != tr.Info.Codec {
			t.Fatalf("dash: representation %s missing or with codecs other than %q\n%s", tr.ID, tr.Info.Codec, b)
		}
	}
	acc := func(id string) string {
		a := reps[id].AudioChannelConfigurations
		if len(a) != 1 {
			return ""
		}
		return string(a[0].SchemeIdUri) + " " + a[0].Value
	}
	if got := acc("ec3_256000"); got != media.DolbyChannelScheme+" F801" {
		t.Errorf("dash: E-AC-3 channel configuration %q", got)
	}
	if got := acc("opus_64000"); got != "urn:mpeg:dash:23003:3:audio_channel_configuration:2011 2" {
		t.Errorf("dash: Opus channel configuration %q", got)
	}
	if sp := reps["hevc_2000000"].SupplementalProperties; len(sp) != 1 || sp[0].SchemeIdUri != "urn:mpeg:mpegB:cicp:TransferCharacteristics" || sp[0].Value != "16" {
		t.Errorf("dash: HEVC PQ supplemental properties %+v", sp)
	}
	if sp := reps["av1_1000000"].SupplementalProperties; len(sp) != 0 {
		t.Errorf("dash: SDR AV1 has supplemental properties %+v", sp)
	}

	b, err = Smooth(v, o)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, w := range []string{`FourCC="HVC1"`, `FourCC="EC-3"`, `FourCC="AACL"`} {
		if !strings.Contains(s, w) {
			t.Errorf("smooth: no %s\n%s", w, s)
		}
	}
	for _, w := range []string{"AV01", "OPUS", "video_av1", "audio_opus"} {
		if strings.Contains(s, w) {
			t.Errorf("smooth: announces %s\n%s", w, s)
		}
	}
}

// TestSmoothWithoutCarriedCodec: a presentation of nothing but AV1 and
// Opus has no Smooth manifest (ErrEmpty, a 404) and says why.
func TestSmoothWithoutCarriedCodec(t *testing.T) {
	v := codecsView()
	var keep []store.TrackView
	for _, tr := range v.Tracks {
		if !media.SmoothCarries(tr.Info) {
			keep = append(keep, tr)
		}
	}
	v.Tracks = keep
	_, err := Smooth(v, Options{Now: anchor.Add(20 * time.Second)})
	if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "AV1 and Opus") {
		t.Fatalf("err %v, want ErrEmpty saying AV1 and Opus are not carried", err)
	}
}

// TestAtmosSignalling: an E-AC-3 track with Joint Object Coding (Dolby
// Atmos) is announced as such: HLS CHANNELS="<complexity index>/JOC",
// DASH the Dolby EC3_ExtensionType and EC3_ExtensionComplexityIndex
// supplemental properties; the codec stays ec-3.
func TestAtmosSignalling(t *testing.T) {
	v := codecsView()
	for i := range v.Tracks {
		if v.Tracks[i].Info.SampleEntry == "ec-3" {
			v.Tracks[i].Info.JOC = 16
		}
	}
	o := Options{Now: anchor.Add(20 * time.Second)}
	b, err := HLSMaster(v, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m3u8.DecodeFrom(bytes.NewReader(b), true); err != nil || !strings.Contains(string(b), `GROUP-ID="audio-ec-3",NAME="ec3_256000",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="16/JOC"`) {
		t.Errorf("hls: %v, no E-AC-3 rendition with CHANNELS=16/JOC:\n%s", err, b)
	}
	if b, err = DASH(v, o); err != nil {
		t.Fatal(err)
	}
	if err := mpdschema.Check(b); err != nil {
		t.Errorf("dash schema: %v", err)
	}
	m, err := mpd.ReadFromString(string(b))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, as := range m.Periods[0].AdaptationSets {
		for _, r := range as.Representations {
			for _, sp := range r.SupplementalProperties {
				got = append(got, r.Id+" "+string(sp.SchemeIdUri)+" "+sp.Value)
			}
		}
	}
	want := []string{
		"hevc_2000000 urn:mpeg:mpegB:cicp:TransferCharacteristics 16",
		"ec3_256000 tag:dolby.com,2018:dash:EC3_ExtensionType:2018 JOC",
		"ec3_256000 tag:dolby.com,2018:dash:EC3_ExtensionComplexityIndex:2018 16",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("dash supplemental properties:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
