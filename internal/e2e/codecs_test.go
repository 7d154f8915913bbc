package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dashmpd "github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// codecSources encodes the two source files of the codec tests into dir:
// hevc.mp4 (HEVC 320x180 with AAC stereo, AC-3 5.1 and E-AC-3 stereo: what
// Smooth can carry) and av1.mp4 (AV1 320x180 with Opus stereo: what only
// DASH and HLS carry), each seconds long with 1 s GOPs. HEVC has B-frames
// in closed GOPs, as ABR ladders are encoded (libx265's default open GOPs
// start a segment with a CRA picture whose leading pictures reference the
// segment before; ffmpeg 5.1's DASH and HLS demuxers then report
// non-monotonic decode times).
func codecSources(t *testing.T, dir string, seconds int) (hevcMP4, av1MP4 string) {
	t.Helper()
	dur := fmt.Sprint(seconds)
	v := []string{"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=" + dur}
	a := []string{"-f", "lavfi", "-i", "sine=r=48000:duration=" + dur}
	hevcMP4, av1MP4 = filepath.Join(dir, "hevc.mp4"), filepath.Join(dir, "av1.mp4")
	run := func(args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-nostdin", "-v", "error", "-y"}, args...)...)
		cmd.Env = append(os.Environ(), "SVT_LOG=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run(append(append(append([]string{}, v...), a...),
		"-map", "0:v", "-map", "1:a", "-map", "1:a", "-map", "1:a",
		"-c:v", "libx265", "-x265-params", "log-level=none:keyint=25:min-keyint=25:scenecut=0:open-gop=0", "-tag:v", "hvc1", "-b:v", "300k",
		"-c:a:0", "aac", "-ac:a:0", "2", "-b:a:0", "64k",
		"-c:a:1", "ac3", "-filter:a:1", "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0", "-b:a:1", "192k",
		"-c:a:2", "eac3", "-ac:a:2", "2", "-b:a:2", "96k", hevcMP4)...)
	run(append(append(append([]string{}, v...), a...),
		"-map", "0:v", "-map", "1:a", "-c:v", "libsvtav1", "-preset", "12", "-g", "25", "-b:v", "300k",
		"-c:a", "libopus", "-ac", "2", "-b:a", "64k", av1MP4)...)
	return hevcMP4, av1MP4
}

// expectedCodec is one track of a source file as ffprobe shows it: the
// RFC 6381 codecs value computed here from ffprobe's fields and the
// decoder configuration record it prints (not by Sluice's code), and the
// channel signalling it implies.
type expectedCodec struct {
	kind, codec string
	channels    int
	dolbyMask   string // AC-3/E-AC-3: the DASH Dolby channel configuration
}

// probeCodecs computes the expected codec strings of every track of file
// from `ffprobe -show_streams -show_data`: HEVC per ISO/IEC 14496-15 Annex E
// from the hvcC bytes (profile space/idc, reversed compatibility flags,
// tier and level, constraint bytes without trailing zeros), AV1 per the AV1
// ISOBMFF binding from ffprobe's profile, level and pixel format and the
// av1C tier bit, the audio entries by name.
func probeCodecs(t *testing.T, file string) []expectedCodec {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_data", "-of", "json", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var p struct {
		Streams []struct {
			CodecName     string `json:"codec_name"`
			CodecType     string `json:"codec_type"`
			Tag           string `json:"codec_tag_string"`
			Profile       string `json:"profile"`
			Level         int    `json:"level"`
			PixFmt        string `json:"pix_fmt"`
			Channels      int    `json:"channels"`
			ChannelLayout string `json:"channel_layout"`
			ColorTransfer string `json:"color_transfer"`
			Extradata     string `json:"extradata"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	// ffprobe prints extradata as a hex dump: "00000000: 0101 6000 ...  text".
	dump := func(s string) []byte {
		var b []byte
		for _, l := range strings.Split(s, "\n") {
			if i := strings.Index(l, ": "); i > 0 && len(l) > i+2+39 {
				h, err := hex.DecodeString(strings.ReplaceAll(l[i+2:i+2+39], " ", ""))
				if err != nil {
					t.Fatalf("extradata dump %q: %v", l, err)
				}
				b = append(b, h...)
			}
		}
		return b
	}
	masks := map[string]string{"stereo": "A000", "5.1(side)": "F801", "5.1": "F801", "mono": "4000"}
	var exp []expectedCodec
	for _, s := range p.Streams {
		e := expectedCodec{kind: s.CodecType, channels: s.Channels}
		switch s.CodecName {
		case "hevc":
			x := dump(s.Extradata)
			if len(x) < 13 {
				t.Fatalf("hvcC of %s: %d bytes", file, len(x))
			}
			space := []string{"", "A", "B", "C"}[x[1]>>6]
			tier := map[bool]string{false: "L", true: "H"}[x[1]&0x20 != 0]
			compat := bits.Reverse32(uint32(x[2])<<24 | uint32(x[3])<<16 | uint32(x[4])<<8 | uint32(x[5]))
			cons := x[6:12]
			for len(cons) > 1 && cons[len(cons)-1] == 0 {
				cons = cons[:len(cons)-1]
			}
			e.codec = fmt.Sprintf("%s.%s%d.%X.%s%d", s.Tag, space, x[1]&0x1f, compat, tier, x[12])
			for _, c := range cons {
				e.codec += fmt.Sprintf(".%X", c)
			}
		case "av1":
			x := dump(s.Extradata)
			prof := map[string]int{"Main": 0, "High": 1, "Professional": 2}[s.Profile]
			tier := map[bool]string{false: "M", true: "H"}[len(x) > 2 && x[2]&0x80 != 0]
			depth := 8
			if strings.Contains(s.PixFmt, "10") {
				depth = 10
			}
			if s.ColorTransfer != "" && s.ColorTransfer != "bt709" && s.ColorTransfer != "unknown" {
				t.Fatalf("%s: test sources are SDR, ffprobe says %s", file, s.ColorTransfer)
			}
			e.codec = fmt.Sprintf("av01.%d.%02d%s.%02d", prof, s.Level, tier, depth)
		case "aac":
			e.codec = "mp4a.40." + map[string]string{"LC": "2", "HE-AAC": "5", "HE-AACv2": "29"}[s.Profile]
		case "opus":
			e.codec = "Opus"
		case "ac3":
			e.codec, e.dolbyMask = "ac-3", masks[s.ChannelLayout]
		case "eac3":
			e.codec, e.dolbyMask = "ec-3", masks[s.ChannelLayout]
		default:
			t.Fatalf("%s: unexpected codec %s", file, s.CodecName)
		}
		exp = append(exp, e)
	}
	return exp
}

// getFollow is get following redirects (the session entry points answer
// with one).
func getFollow(t *testing.T, url string) []byte {
	t.Helper()
	code, b := getWith(t, &http.Client{Timeout: 10 * time.Second}, url)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, b)
	}
	return b
}

// checkCodecSignalling compares what the DASH, HLS and Smooth manifests of
// a presentation announce with the expected tracks: every track is a
// Representation with the expected @codecs (and, for audio, its
// AudioChannelConfiguration), every audio codec family is an HLS audio
// group with CHANNELS, listed with each video variant whose CODECS name
// the video's and the group's codec; Smooth (withSmooth) lists the tracks
// it can carry with their FourCC and answers 404 when there is none.
func checkCodecSignalling(t *testing.T, base string, exp []expectedCodec, withSmooth bool) {
	t.Helper()
	m, err := dashmpd.ReadFromString(string(getFollow(t, base+"/manifest.mpd")))
	if err != nil {
		t.Fatalf("%s: MPD: %v", base, err)
	}
	type rep struct{ codec, acc string }
	var got []rep
	for _, as := range m.Periods[0].AdaptationSets {
		for _, r := range as.Representations {
			x := rep{codec: r.Codecs}
			for _, a := range r.AudioChannelConfigurations {
				x.acc = string(a.SchemeIdUri) + " " + a.Value
			}
			got = append(got, x)
		}
	}
	var want []rep
	var video string
	audioGroups := map[string]bool{}
	for _, e := range exp {
		x := rep{codec: e.codec}
		switch {
		case e.dolbyMask != "":
			x.acc = "tag:dolby.com,2014:dash:audio_channel_configuration:2011 " + e.dolbyMask
		case e.kind == "audio":
			x.acc = fmt.Sprintf("urn:mpeg:dash:23003:3:audio_channel_configuration:2011 %d", e.channels)
		}
		want = append(want, x)
		if e.kind == "video" {
			video = e.codec
		} else {
			audioGroups[e.codec] = true
		}
	}
	key := func(r []rep) string {
		sort.Slice(r, func(i, j int) bool { return r[i].codec+r[i].acc < r[j].codec+r[j].acc })
		return fmt.Sprint(r)
	}
	if key(got) != key(want) {
		t.Errorf("%s: DASH representations %v, want %v", base, got, want)
	}

	b := getFollow(t, base+"/master.m3u8")
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("%s: HLS master: %v\n%s", base, err, b)
	}
	seen := map[string]bool{}
	for _, v := range pl.(*m3u8.MasterPlaylist).Variants {
		codecs := strings.Split(v.Codecs, ",")
		if len(codecs) != 2 || codecs[0] != video || !audioGroups[codecs[1]] {
			t.Errorf("%s: variant CODECS %q, want %s plus one audio codec of %v", base, v.Codecs, video, audioGroups)
			continue
		}
		seen[codecs[1]] = true
		for _, a := range v.Alternatives {
			for _, e := range exp {
				if e.codec == codecs[1] && (a.Channels == nil || a.Channels.Amount != e.channels) {
					t.Errorf("%s: %s rendition %s CHANNELS %v, want %d", base, e.codec, a.Name, a.Channels, e.channels)
				}
			}
		}
	}
	if len(seen) != len(audioGroups) {
		t.Errorf("%s: HLS variants name the audio codecs %v, want one group each of %v\n%s", base, seen, audioGroups, b)
	}

	if !withSmooth {
		return // the scheduler's sessions serve DASH and HLS only
	}
	code, ism := get(t, base+"/Manifest")
	smooth := map[string]string{"hvc1": `FourCC="HVC1"`, "ac-3": `FourCC="AC-3"`, "ec-3": `FourCC="EC-3"`, "mp4a": `FourCC="AACL"`}
	carried := 0
	for _, e := range exp {
		fam := strings.SplitN(e.codec, ".", 2)[0]
		if w, ok := smooth[fam]; ok {
			carried++
			if !bytes.Contains(ism, []byte(w)) {
				t.Errorf("%s: Smooth manifest without %s:\n%s", base, w, ism)
			}
		}
	}
	if carried == 0 && code != http.StatusNotFound {
		t.Errorf("%s: Smooth manifest of AV1/Opus answered %d, want 404:\n%s", base, code, ism)
	}
	if bytes.Contains(ism, []byte("AV01")) || bytes.Contains(ism, []byte("OPUS")) {
		t.Errorf("%s: Smooth manifest announces AV1 or Opus:\n%s", base, ism)
	}
}

// decodeEvery decodes every stream of every rendition of a manifest with
// ffmpeg (-map 0); any decoder message fails the test. A second pass
// decodes the first video stream alone and must count want frames (with
// every stream mapped, ffmpeg 5.1's DASH demuxer stops a few video frames
// short when several audio streams end before the video).
func decodeEvery(t *testing.T, url string, want int) {
	t.Helper()
	for _, m := range []string{"0", "0:v:0"} {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1",
			"-i", url, "-map", m, "-f", "null", "-")
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("ffmpeg decode of %s (-map %s): %v\n%s", url, m, err, stderr.Bytes())
			return
		}
		if m == "0" {
			continue
		}
		frames := -1
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "frame="); ok {
				fmt.Sscan(v, &frames)
			}
		}
		if frames != want {
			t.Errorf("ffmpeg decoded %d video frames of %s, want %d", frames, url, want)
		}
	}
}

// TestCodecs: HEVC, AV1, Opus, AC-3 and E-AC-3 end to end. ffmpeg encodes
// two sources; HEVC with AAC, AC-3 and E-AC-3 is pushed as Smooth/ismv,
// AV1 with Opus as DASH-IF CMAF ingest (one POST per track), and both are
// `sluice import`ed. For each of the four presentations, and for the
// scheduler's session manifests of the imports, every codec string equals
// the one computed from ffprobe's view of the source, the channel
// configurations and HLS audio groups are as expected, and ffmpeg decodes
// every rendition through DASH and HLS without a message, every video
// frame that was encoded. An unknown codec
// is refused: a VP9 CMAF push gets a 415 naming it (nothing stored), and
// `sluice import` of a VP9 file fails naming it.
func TestCodecs(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	requireTools(t, "ffmpeg", "ffprobe")
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	data := filepath.Join(dir, "data")
	const seconds = 4
	hevcMP4, av1MP4 := codecSources(t, dir, seconds)
	runAll(t, 2, [][]string{
		{bin, "import", "--quiet", "--data", data, hevcMP4, "vod-hevc"},
		{bin, "import", "--quiet", "--data", data, av1MP4, "vod-av1"},
	})
	n := startNode(t, bin, data, "codecs-node.log", freePort(t), "--point", "hevc", "--point", "av1", "--point", "vp9")

	push := func(name string, args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ffmpeg", append([]string{"-hide_banner", "-nostdin", "-v", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg push %s: %v\n%s", name, err, out)
		}
	}
	cmafFlags := "cmaf+empty_moov+separate_moof+default_base_moof+frag_discont"
	push("ismv", "-i", hevcMP4, "-map", "0", "-c", "copy", "-f", "ismv", "-movflags", "isml+frag_keyframe+delay_moov",
		n.base+"/hevc.isml/Streams(hevc)")
	push("cmaf", "-i", av1MP4,
		"-map", "0:v", "-c", "copy", "-f", "mp4", "-movflags", cmafFlags+"+frag_keyframe", n.base+"/av1.isml/Streams(video.cmfv)",
		"-map", "0:a", "-c", "copy", "-f", "mp4", "-movflags", cmafFlags, "-frag_duration", "1000000", n.base+"/av1.isml/Streams(audio.cmfa)")

	// The server's output reaches the test through a pipe: wait for it.
	waitUntil(t, 15*time.Second, "a log line for the AV1/Opus tracks left out of Smooth", func() (bool, string) {
		return strings.Contains(n.p.out.String(), "track left out of the Smooth manifest"), ""
	})

	hevcExp, av1Exp := probeCodecs(t, hevcMP4), probeCodecs(t, av1MP4)
	t.Logf("expected: %v %v", hevcExp, av1Exp)
	for _, c := range []struct {
		base string
		exp  []expectedCodec
	}{
		{n.base + "/hevc.isml", hevcExp},
		{n.base + "/av1.isml", av1Exp},
		{n.base + "/vod-hevc.isml", hevcExp},
		{n.base + "/vod-av1.isml", av1Exp},
		{n.base + "/s/vod-hevc", hevcExp}, // the scheduler's per-session manifests
		{n.base + "/s/vod-av1", av1Exp},
	} {
		checkCodecSignalling(t, c.base, c.exp, !strings.Contains(c.base, "/s/"))
		if !strings.Contains(c.base, "/s/") {
			decodeEvery(t, c.base+"/manifest.mpd", seconds*25)
			decodeEvery(t, c.base+"/master.m3u8", seconds*25)
		}
	}

	// An unknown codec: VP9.
	vp9 := filepath.Join(dir, "vp9.mp4")
	push("vp9 file", "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=10:duration=1", "-c:v", "libvpx-vp9", "-deadline", "realtime", vp9)
	out, err := exec.Command(bin, "import", "--quiet", "--data", data, vp9, "vod-vp9").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `"vp09"`) {
		t.Errorf("import of VP9: %v, output does not name vp09:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(data, "vod-vp9")); !os.IsNotExist(err) {
		t.Errorf("import of VP9 left an asset: %v", err)
	}
	init := filepath.Join(dir, "vp9-init.mp4")
	push("vp9 init", "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=10:duration=1", "-c:v", "libvpx-vp9", "-deadline", "realtime",
		"-f", "mp4", "-movflags", cmafFlags+"+frag_keyframe", init)
	body, err := os.ReadFile(init)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(n.base+"/vp9.isml/Streams(video.cmfv)", "video/mp4", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	reason := string(rb)
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(reason, `"vp09"`) {
		t.Errorf("VP9 push: %d %q, want 415 naming vp09", resp.StatusCode, reason)
	}
	if code, _ := get(t, n.base+"/vp9.isml/manifest.mpd"); code != http.StatusNotFound {
		t.Errorf("VP9 point after the refused push: MPD %d, want 404", code)
	}
}
