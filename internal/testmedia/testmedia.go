// Package testmedia makes real encoder output with Debian's ffmpeg for
// tests: ismv (Smooth ingest) and CMAF bodies with 1 or 2 video bitrates
// plus audio, written to files or pushed live to an ingest URL.
package testmedia

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
)

// Sample returns the path of the bundled sample (testdata/sample/sample.mp4,
// made by scripts/make-sample.sh), failing the test when it is missing.
func Sample(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "sample", "sample.mp4")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("sample file missing (run scripts/make-sample.sh): %v", err)
	}
	return p
}

// FFmpeg returns the path of ffmpeg, failing the test when it is missing:
// these tests need the real encoder.
func FFmpeg(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("ffmpeg is required (apt-get install ffmpeg): %v", err)
	}
	return p
}

// ISMVArgs returns ffmpeg arguments that encode a test pattern with the
// given number of video bitrates (1 or 2) plus AAC audio as a Smooth ismv
// stream to out (a file or an ingest URL). realtime adds -re.
func ISMVArgs(seconds float64, videos int, realtime bool, out string) []string {
	args := []string{"-hide_banner", "-loglevel", "error", "-y"}
	dur := strconv.FormatFloat(seconds, 'f', -1, 64)
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-t", dur, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25")
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-t", dur, "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000")
	if videos == 2 {
		args = append(args, "-filter_complex", "[0:v]split=2[a][b];[b]scale=320:180[b2]",
			"-map", "[a]", "-map", "[b2]", "-map", "1:a",
			"-b:v:0", "800k", "-b:v:1", "300k")
	} else {
		args = append(args, "-map", "0:v", "-map", "1:a", "-b:v", "800k")
	}
	args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-avoid_negative_ts", "make_non_negative",
		"-f", "ismv", "-movflags", "isml+frag_keyframe", out)
	return args
}

// TinyISMVArgs returns ffmpeg arguments that encode a tiny ismv stream to
// out: a size (WxH) test pattern at 10 fps in 1 s GOPs at 20 kbit/s plus
// 8 kHz AAC audio at 16 kbit/s, for tests that need many quick encodes.
func TinyISMVArgs(seconds float64, size, out string) []string {
	dur := strconv.FormatFloat(seconds, 'f', -1, 64)
	return []string{"-hide_banner", "-loglevel", "error", "-y",
		"-t", dur, "-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=10",
		"-t", dur, "-f", "lavfi", "-i", "sine=sample_rate=8000",
		"-c:v", "libx264", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-b:v", "20k",
		"-c:a", "aac", "-b:a", "16k", "-avoid_negative_ts", "make_non_negative",
		"-f", "ismv", "-movflags", "isml+frag_keyframe", out}
}

// TinyISMVOtherArgs is TinyISMVArgs for other content with the same codec
// configuration (the test pattern from its second second on, a 1 kHz
// tone): what an encoder that restarted on a live source sends, its times
// from zero again.
func TinyISMVOtherArgs(seconds float64, size, out string) []string {
	dur := strconv.FormatFloat(seconds, 'f', -1, 64)
	return []string{"-hide_banner", "-loglevel", "error", "-y",
		"-ss", "1", "-t", dur, "-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=10",
		"-t", dur, "-f", "lavfi", "-i", "sine=sample_rate=8000:frequency=1000",
		"-c:v", "libx264", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-b:v", "20k",
		"-c:a", "aac", "-b:a", "16k", "-avoid_negative_ts", "make_non_negative",
		"-f", "ismv", "-movflags", "isml+frag_keyframe", out}
}

// CMAFArgs returns ffmpeg arguments for DASH-IF style CMAF ingest: one long
// POST per track, video to videoOut and audio to audioOut, epoch-anchored.
func CMAFArgs(seconds float64, realtime bool, epoch int64, videoOut, audioOut string) []string {
	dur := strconv.FormatFloat(seconds, 'f', -1, 64)
	args := []string{"-hide_banner", "-loglevel", "error", "-y"}
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-t", dur, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25")
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-t", dur, "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-b:v", "800k", "-maxrate", "800k", "-bufsize", "1600k",
		"-c:a", "aac", "-b:a", "128k",
		"-map", "0:v", "-video_track_timescale", "90000", "-f", "mp4",
		"-movflags", "cmaf+empty_moov+separate_moof+default_base_moof+frag_keyframe+frag_discont",
		"-output_ts_offset", strconv.FormatInt(epoch, 10), videoOut,
		"-map", "1:a", "-metadata:s:a:0", "language=eng", "-f", "mp4",
		"-movflags", "cmaf+empty_moov+separate_moof+default_base_moof+frag_discont", "-frag_duration", "1920000",
		"-output_ts_offset", strconv.FormatInt(epoch, 10), audioOut)
	return args
}

// ChunkedISMVArgs returns ffmpeg arguments that encode a small test
// pattern (2 s GOPs at 25 fps) plus AAC audio as a Smooth ismv stream in
// chunks of chunk seconds: moof+mdat pairs that each hold chunk seconds of
// one track, a fragment's first chunk starting with its key frame. realtime
// adds -re; epoch > 0 moves the times by that many seconds.
func ChunkedISMVArgs(seconds, chunk float64, realtime bool, epoch int64, out string) []string {
	dur := strconv.FormatFloat(seconds, 'f', -1, 64)
	args := []string{"-hide_banner", "-loglevel", "error", "-y"}
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-t", dur, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25")
	if realtime {
		args = append(args, "-re")
	}
	args = append(args, "-t", dur, "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
		"-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-b:v", "300k", "-c:a", "aac", "-b:a", "64k", "-avoid_negative_ts", "make_non_negative")
	if epoch > 0 {
		args = append(args, "-output_ts_offset", strconv.FormatInt(epoch, 10))
	}
	return append(args, "-f", "ismv", "-movflags", "isml+frag_keyframe", "-frag_duration", strconv.Itoa(int(chunk*1e6)), out)
}

// Run runs ffmpeg with args and fails the test on error.
func Run(t testing.TB, args []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*1e9)
	defer cancel()
	out, err := exec.CommandContext(ctx, FFmpeg(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// ISMVFile encodes seconds of test pattern into an .ismv file in dir.
func ISMVFile(t testing.TB, dir string, seconds float64, videos int) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("test-%dv.ismv", videos))
	Run(t, ISMVArgs(seconds, videos, false, p))
	return p
}

// CMAFFiles encodes CMAF video and audio track files in dir.
func CMAFFiles(t testing.TB, dir string, seconds float64, epoch int64) (video, audio string) {
	t.Helper()
	video, audio = filepath.Join(dir, "video.cmfv"), filepath.Join(dir, "audio.cmfa")
	Run(t, CMAFArgs(seconds, false, epoch, video, audio))
	return video, audio
}

// ReadFile reads a file or fails the test.
func ReadFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Boxes splits a body into its top-level boxes or fails the test.
func Boxes(t testing.TB, body []byte) []media.Box {
	t.Helper()
	br := media.NewBoxReader(bytes.NewReader(body), uint64(len(body)))
	var out []media.Box
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

// Join concatenates the boxes' bytes.
func Join(bs []media.Box) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b.Raw...)
	}
	return out
}
