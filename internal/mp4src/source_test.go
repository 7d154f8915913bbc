package mp4src_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/mp4src"
	"github.com/sluice-media/sluice/internal/testmedia"
)

func openSample(t *testing.T, opts mp4src.Options) *mp4src.Source {
	t.Helper()
	s, err := mp4src.Open(testmedia.Sample(t), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// parsed is what media.StreamParser makes of a stream.
type parsed struct {
	header *media.Header
	frags  map[uint32][]*media.Fragment // by track_ID, in arrival order
	ends   int
}

func parse(t *testing.T, r io.Reader) parsed {
	t.Helper()
	out := parsed{frags: map[uint32][]*media.Fragment{}}
	p := media.NewStreamParser(r, 16<<20, nil)
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("StreamParser at byte %d: %v", p.Offset(), err)
		}
		switch ev.Kind {
		case media.EventHeader:
			out.header = ev.Header
		case media.EventFragment:
			if out.ends > 0 {
				t.Fatalf("fragment after the end box")
			}
			out.frags[ev.Fragment.Info.TrackID] = append(out.frags[ev.Fragment.Info.TrackID], ev.Fragment)
		case media.EventEnd:
			out.ends++
		}
	}
}

func TestStreamParsesIntoThreeTracks(t *testing.T) {
	s := openSample(t, mp4src.Options{})
	var buf bytes.Buffer
	if _, err := s.WriteAll(&buf); err != nil {
		t.Fatal(err)
	}
	got := parse(t, &buf)
	if got.header == nil {
		t.Fatal("no header event")
	}
	if got.ends != 1 {
		t.Fatalf("%d end events, want 1", got.ends)
	}
	if s.Periods() != 6 {
		t.Errorf("%d periods, want 6 (12 s, 2 s GOP)", s.Periods())
	}
	want := []struct {
		kind, fourcc   string
		timescale      uint32
		minBR, maxBR   int
		width, height  int
		sampleRate, ch int
	}{
		{"video", "H264", 12800, 500_000, 700_000, 640, 360, 0, 0},
		{"video", "H264", 12800, 150_000, 250_000, 320, 180, 0, 0},
		{"audio", "AACL", 48000, 50_000, 80_000, 0, 0, 48000, 2},
	}
	if len(got.header.Tracks) != len(want) {
		t.Fatalf("%d tracks, want %d", len(got.header.Tracks), len(want))
	}
	for i, w := range want {
		ti := got.header.Tracks[i]
		if ti.Kind != w.kind || ti.FourCC != w.fourcc || ti.Timescale != w.timescale {
			t.Errorf("track %d: %s %s ts %d, want %s %s ts %d", ti.TrackID, ti.Kind, ti.FourCC, ti.Timescale, w.kind, w.fourcc, w.timescale)
		}
		if ti.Bitrate < w.minBR || ti.Bitrate > w.maxBR {
			t.Errorf("track %d: bitrate %d outside [%d,%d]", ti.TrackID, ti.Bitrate, w.minBR, w.maxBR)
		}
		if ti.Width != w.width || ti.Height != w.height || ti.SampleRate != w.sampleRate || ti.Channels != w.ch {
			t.Errorf("track %d: %dx%d %d Hz %d ch, want %dx%d %d Hz %d ch", ti.TrackID, ti.Width, ti.Height,
				ti.SampleRate, ti.Channels, w.width, w.height, w.sampleRate, w.ch)
		}
		if ti.Name != w.kind {
			t.Errorf("track %d: trackName %q, want %q", ti.TrackID, ti.Name, w.kind)
		}
		if ti.CodecPrivateData == "" {
			t.Errorf("track %d: no CodecPrivateData", ti.TrackID)
		}
		frags := got.frags[ti.TrackID]
		if len(frags) != s.Periods() {
			t.Errorf("track %d: %d fragments, want %d", ti.TrackID, len(frags), s.Periods())
			continue
		}
		// Contiguous start times from 0, every fragment a key frame with tfxd.
		next := int64(0)
		for _, f := range frags {
			fi := f.Info
			if fi.Start != next {
				t.Errorf("track %d: fragment starts at %d, previous ended at %d", ti.TrackID, fi.Start, next)
			}
			if !fi.Key || !fi.HasTfxd || !fi.HasTfdt {
				t.Errorf("track %d fragment %d: key=%v tfxd=%v tfdt=%v", ti.TrackID, fi.Start, fi.Key, fi.HasTfxd, fi.HasTfdt)
			}
			next = fi.Start + int64(fi.Duration)
		}
		// Total duration 12 s; audio within one AAC frame.
		secs := float64(next) / float64(ti.Timescale)
		tol := 1e-9
		if w.kind == "audio" {
			tol = 1024.0 / 48000
		}
		if d := secs - 12; d > tol || d < -tol {
			t.Errorf("track %d lasts %.6f s, want 12 s (±%.4f)", ti.TrackID, secs, tol)
		}
	}
}

func TestSameOffsetSameBytes(t *testing.T) {
	a := openSample(t, mp4src.Options{})
	b := openSample(t, mp4src.Options{})
	if !bytes.Equal(a.Header(), b.Header()) {
		t.Fatal("two opens of the same file give different headers")
	}
	L := a.LoopTicks()
	tests := []struct {
		name   string
		offset int64
	}{
		{"zero", 0},
		{"second pass", L},
		{"epoch-like pass", 147_000_000 * L},
		{"not a pass boundary", 12345},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < a.Periods(); i++ {
				var x, y bytes.Buffer
				if _, err := a.WritePeriod(&x, tc.offset, i); err != nil {
					t.Fatal(err)
				}
				if _, err := b.WritePeriod(&y, tc.offset, i); err != nil {
					t.Fatal(err)
				}
				// A second call on the same source too.
				var z bytes.Buffer
				if _, err := a.WritePeriod(&z, tc.offset, i); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(x.Bytes(), y.Bytes()) || !bytes.Equal(x.Bytes(), z.Bytes()) {
					t.Fatalf("period %d at offset %d: bytes differ", i, tc.offset)
				}
			}
		})
	}
}

// TestLoopSeams checks that consecutive passes at epoch-like offsets follow
// each other without gap or overlap in every track, and that fragment sizes
// (hence bitrates) repeat pass after pass.
func TestLoopSeams(t *testing.T) {
	s := openSample(t, mp4src.Options{})
	L := s.LoopTicks()
	k0 := int64(147_000_000)
	var buf bytes.Buffer
	s.WriteHeader(&buf)
	for k := k0; k < k0+3; k++ {
		for i := 0; i < s.Periods(); i++ {
			if _, err := s.WritePeriod(&buf, k*L, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	mp4src.WriteEnd(&buf)
	got := parse(t, &buf)
	for _, ti := range got.header.Tracks {
		frags := got.frags[ti.TrackID]
		if len(frags) != 3*s.Periods() {
			t.Fatalf("track %d: %d fragments, want %d", ti.TrackID, len(frags), 3*s.Periods())
		}
		wantFirst := s.TrackTime(s.Tracks()[ti.TrackID-1], k0*L)
		if d := frags[0].Info.Start - wantFirst; d < -1024 || d > 1024 {
			t.Errorf("track %d: first fragment at %d, want about %d", ti.TrackID, frags[0].Info.Start, wantFirst)
		}
		for j := 1; j < len(frags); j++ {
			prev, cur := frags[j-1].Info, frags[j].Info
			if prev.Start+int64(prev.Duration) != cur.Start {
				t.Errorf("track %d: fragment %d starts at %d, previous ends at %d", ti.TrackID, j, cur.Start, prev.Start+int64(prev.Duration))
			}
		}
		if ti.Kind == "video" {
			for j := s.Periods(); j < len(frags); j++ {
				if a, b := len(frags[j].Data), len(frags[j-s.Periods()].Data); a != b {
					t.Errorf("track %d: fragment %d is %d bytes, one pass earlier %d", ti.TrackID, j, a, b)
				}
			}
		}
	}
}

// TestFFmpegDecodes writes the stream to an .ismv file and has ffprobe and
// ffmpeg read it: the first pass from time 0, and two passes at epoch-like
// times across a loop seam.
func TestFFmpegDecodes(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Skip("ffprobe not installed")
	}
	s := openSample(t, mp4src.Options{OmitTfdt: true})
	L := s.LoopTicks()
	tests := []struct {
		name   string
		passes []int64
	}{
		{"from zero", []int64{0}},
		{"epoch loop seam", []int64{147_000_000, 147_000_001}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			s.WriteHeader(&buf)
			for _, k := range tc.passes {
				for i := 0; i < s.Periods(); i++ {
					if _, err := s.WritePeriod(&buf, k*L, i); err != nil {
						t.Fatal(err)
					}
				}
			}
			mp4src.WriteEnd(&buf)
			path := filepath.Join(t.TempDir(), "stream.ismv")
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(ffprobe, "-v", "error", "-show_streams", "-of", "json", path).Output()
			if err != nil {
				t.Fatalf("ffprobe: %v", err)
			}
			var probe struct {
				Streams []struct {
					CodecName string `json:"codec_name"`
					CodecType string `json:"codec_type"`
					Width     int    `json:"width"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(out, &probe); err != nil {
				t.Fatalf("ffprobe output: %v", err)
			}
			var codecs []string
			for _, st := range probe.Streams {
				codecs = append(codecs, st.CodecName)
			}
			if strings.Join(codecs, ",") != "h264,h264,aac" {
				t.Fatalf("ffprobe streams %v, want h264,h264,aac", codecs)
			}
			cmd := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path, "-map", "0", "-f", "null", "-")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Fatalf("ffmpeg decode: %v\n%s", err, stderr.String())
			}
			// Every video frame is decoded.
			frames, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:1", "-count_frames",
				"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
			if err != nil {
				t.Fatalf("ffprobe count frames: %v", err)
			}
			if want := 300 * len(tc.passes); strings.TrimSpace(string(frames)) != itoa(want) {
				t.Errorf("decoded %s frames of the 320x180 track, want %d", strings.TrimSpace(string(frames)), want)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestRejects checks the errors for inputs mp4src cannot stream.
func TestRejects(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	dir := t.TempDir()
	mk := func(name string, args ...string) string {
		p := filepath.Join(dir, name)
		a := append([]string{"-nostdin", "-v", "error", "-y"}, args...)
		if out, err := exec.Command(ffmpeg, append(a, p)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", name, err, out)
		}
		return p
	}
	text := filepath.Join(dir, "text.mp4")
	os.WriteFile(text, []byte("this is not an mp4 file at all\n"), 0o644)
	ismv := filepath.Join(dir, "frag.ismv")
	{
		s := openSample(t, mp4src.Options{})
		var buf bytes.Buffer
		s.WriteAll(&buf)
		os.WriteFile(ismv, buf.Bytes(), 0o644)
	}
	tests := []struct {
		name, path, want string
		unsupported      bool
	}{
		{"missing file", filepath.Join(dir, "nope.mp4"), "no such file", false},
		{"not an mp4", text, "", false},
		{"fragmented input", ismv, "fragmented", true},
		{"mpeg-4 part 2 video", mk("mpeg4.mp4", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=1", "-c:v", "mpeg4"), "only H.264 (avc1/avc3), HEVC", true},
		{"mp3 audio", mk("mp3.mp4", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libmp3lame"), "only AAC (mp4a with an AudioSpecificConfig), Opus", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := mp4src.Open(tc.path, mp4src.Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if errors.Is(err, mp4src.ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(ErrUnsupported) = %v, want %v (%v)", !tc.unsupported, tc.unsupported, err)
			}
		})
	}
}

// TestAudioOnly cuts a file without video into ~2 s audio fragments.
func TestAudioOnly(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	p := filepath.Join(t.TempDir(), "audio.mp4")
	if out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=sample_rate=44100:duration=5",
		"-c:a", "aac", "-b:a", "64k", p).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	s, err := mp4src.Open(p, mp4src.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var buf bytes.Buffer
	if _, err := s.WriteAll(&buf); err != nil {
		t.Fatal(err)
	}
	got := parse(t, &buf)
	if len(got.header.Tracks) != 1 || got.header.Tracks[0].Kind != "audio" || got.header.Tracks[0].Timescale != 44100 {
		t.Fatalf("tracks %+v", got.header.Tracks)
	}
	frags := got.frags[1]
	if len(frags) < 2 {
		t.Fatalf("%d fragments, want at least 2", len(frags))
	}
	var total int64
	for _, f := range frags {
		if d := float64(f.Info.Duration) / 44100; d < 1 || d > 3.5 {
			t.Errorf("fragment of %.2f s", d)
		}
		total += int64(f.Info.Duration)
	}
	if secs := float64(total) / 44100; secs < 4.9 || secs > 5.1 {
		t.Errorf("audio lasts %.3f s, want about 5", secs)
	}
}

// TestCodecs: HEVC, AV1, Opus, AC-3 and E-AC-3 files stream with their
// sample entries passed through, and the receiving parser derives the same
// codec strings as from the file.
func TestCodecs(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	dir := t.TempDir()
	v := []string{"-f", "lavfi", "-i", "testsrc2=size=160x96:rate=25:duration=2"}
	a := []string{"-f", "lavfi", "-i", "sine=r=48000:duration=2"}
	cases := []struct {
		name  string
		args  []string
		codec []string // per track
	}{
		{"hevc-ac3", append(append(append([]string{}, v...), a...), "-c:v", "libx265", "-x265-params", "log-level=none:keyint=25", "-tag:v", "hvc1", "-c:a", "ac3"), []string{"hvc1.1.6.L", "ac-3"}},
		{"av1-opus", append(append(append([]string{}, v...), a...), "-c:v", "libsvtav1", "-preset", "12", "-g", "25", "-c:a", "libopus"), []string{"av01.0.", "Opus"}},
		{"eac3", append(append([]string{}, a...), "-c:a", "eac3"), []string{"ec-3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".mp4")
			cmd := exec.Command(ffmpeg, append(append([]string{"-nostdin", "-v", "error", "-y"}, c.args...), p)...)
			cmd.Env = append(os.Environ(), "SVT_LOG=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg: %v\n%s", err, out)
			}
			s, err := mp4src.Open(p, mp4src.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var buf bytes.Buffer
			if _, err := s.WriteAll(&buf); err != nil {
				t.Fatal(err)
			}
			got := parse(t, &buf)
			if len(got.header.Tracks) != len(c.codec) {
				t.Fatalf("%d tracks, want %d", len(got.header.Tracks), len(c.codec))
			}
			for i, ti := range got.header.Tracks {
				if !strings.HasPrefix(ti.Codec, c.codec[i]) || ti.Codec != s.Tracks()[i].Codec {
					t.Errorf("track %d: codec %q (source says %q), want %s...", i, ti.Codec, s.Tracks()[i].Codec, c.codec[i])
				}
				if len(got.frags[ti.TrackID]) == 0 {
					t.Errorf("track %d: no fragment", i)
				}
			}
		})
	}
}
