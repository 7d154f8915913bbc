package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// node is one `sluice serve` child process.
type node struct {
	base string
	p    *proc
}

func startNode(t *testing.T, bin, data, logName string, port int, extra ...string) *node {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{bin, "serve", "--no-demo", "--listen", addr, "--data", data}, extra...)
	p := startProc(t, "sluice", filepath.Join(artifactsDir(t), logName), args...)
	n := &node{base: "http://" + addr, p: p}
	waitHTTP(t, n.base+"/healthz", 30*time.Second, p)
	return n
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return getWith(t, &http.Client{Timeout: 10 * time.Second}, url)
}

// getMaster fetches and parses an HLS master playlist (hls-m3u8), failing
// the test unless it is one with variants; it returns the body too.
func getMaster(t *testing.T, url string) (*m3u8.MasterPlaylist, []byte) {
	t.Helper()
	code, body := get(t, url)
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(body), true)
	if code != http.StatusOK || err != nil || typ != m3u8.MASTER {
		t.Fatalf("%s: %d %v\n%s", url, code, err, body)
	}
	master := pl.(*m3u8.MasterPlaylist)
	if len(master.Variants) == 0 {
		t.Fatalf("%s without variants:\n%s", url, body)
	}
	return master, body
}

// getWith is get with a client.
func getWith(t *testing.T, c *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// probe runs ffprobe on url and returns the codec names of its streams.
func probe(t *testing.T, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
		"-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	var codecs []string
	for _, l := range strings.Fields(string(out)) {
		codecs = append(codecs, strings.Trim(l, ","))
	}
	return codecs
}

// decodeAll decodes every stream of url with ffmpeg and returns the number
// of video frames decoded; any decoder error fails the test.
func decodeAll(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-v", "error", "-i", url,
		"-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("ffmpeg decode of %s: %v\n%s", url, err, out)
	}
	out, err = exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", url).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe -count_frames %s: %v\n%s", url, err, out)
	}
	// HLS lists each variant as a program: the first count is v:0.
	fields := strings.Fields(strings.ReplaceAll(string(out), ",", " "))
	if len(fields) == 0 {
		t.Fatalf("no frame count from ffprobe for %s", url)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatalf("frame count %q: %v", out, err)
	}
	return n
}

func hasCodecs(codecs []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, c := range codecs {
			found = found || c == w
		}
		if !found {
			return false
		}
	}
	return true
}

// TestLiveFFmpegPushFFprobe: Debian ffmpeg pushes a 2-bitrate + audio ismv
// stream and a CMAF stream (one POST per track); ffprobe reads the HLS and
// DASH output of both while live and after the end, and ffmpeg decodes every
// frame without error.
func TestLiveFFmpegPushFFprobe(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	requireTools(t, "ffmpeg", "ffprobe")
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	n := startNode(t, bin, filepath.Join(dir, "data"), "live-node.log", freePort(t), "--point", "ismv", "--point", "cmaf")

	const seconds = 16
	ismv := startProc(t, "ffmpeg-ismv", filepath.Join(artifactsDir(t), "ffmpeg-ismv.log"),
		append([]string{"ffmpeg"}, testmedia.ISMVArgs(seconds, 2, true, n.base+"/ismv.isml/Streams(ismv)")...)...)
	epoch := time.Now().Unix() / 2 * 2
	cmaf := startProc(t, "ffmpeg-cmaf", filepath.Join(artifactsDir(t), "ffmpeg-cmaf.log"),
		append([]string{"ffmpeg"}, testmedia.CMAFArgs(seconds, true, epoch,
			n.base+"/cmaf.isml/Streams(video.cmfv)", n.base+"/cmaf.isml/Streams(audio.cmfa)")...)...)

	points := []string{"ismv", "cmaf"}
	// While live: dynamic MPD and HLS without ENDLIST, readable by ffprobe.
	for _, pp := range points {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, body := get(t, n.base+"/"+pp+".isml/manifest.mpd")
			if c, _ := videoSegments(body); c >= 3 {
				if !bytes.Contains(body, []byte(`type="dynamic"`)) {
					t.Fatalf("%s: live MPD is not dynamic:\n%s", pp, body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no 3 video segments in time; ffmpeg: %s %s", pp, ismv.out, cmaf.out)
			}
			time.Sleep(500 * time.Millisecond)
		}
		for _, u := range []string{"/master.m3u8", "/manifest.mpd"} {
			if c := probe(t, n.base+"/"+pp+".isml"+u); !hasCodecs(c, "h264", "aac") {
				t.Errorf("live %s%s: ffprobe sees %v", pp, u, c)
			}
		}
	}
	for _, p := range []*proc{ismv, cmaf} {
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not finish", p.name)
		}
		if p.err != nil {
			t.Fatalf("%s: %v\n%s", p.name, p.err, p.out)
		}
	}
	// After the end: static manifests, every frame decodes.
	for _, pp := range points {
		// ffmpeg may exit before the server has read the end of its
		// body (it does not wait for the answer): the end lands shortly.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, mpdBody := get(t, n.base+"/"+pp+".isml/manifest.mpd")
			if bytes.Contains(mpdBody, []byte(`type="static"`)) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: MPD not static 10 s after the end", pp)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		_, master := get(t, n.base+"/"+pp+".isml/master.m3u8")
		first := ""
		for _, l := range strings.Split(string(master), "\n") {
			if strings.HasSuffix(l, ".m3u8") && !strings.HasPrefix(l, "#") {
				first = l
				break
			}
		}
		_, media := get(t, n.base+"/"+pp+".isml/"+first)
		if !bytes.Contains(media, []byte("#EXT-X-ENDLIST")) {
			t.Errorf("%s: HLS media playlist without ENDLIST after the end", pp)
		}
		for _, u := range []string{"/master.m3u8", "/manifest.mpd"} {
			frames := decodeAll(t, n.base+"/"+pp+".isml"+u)
			if frames < seconds*25-2 || frames > seconds*25 {
				t.Errorf("%s%s: decoded %d video frames, pushed %d", pp, u, frames, seconds*25)
			}
		}
	}
}

// TestCrashRecovery: kill -9 the server in the middle of a push; after a
// restart every fragment that a client had seen listed is served byte for
// byte, nothing torn is served, and the index is rebuilt.
func TestCrashRecovery(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	requireTools(t, "ffmpeg")
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	data := filepath.Join(dir, "data")
	port := freePort(t)
	n := startNode(t, bin, data, "crash-node-1.log", port, "--point", "live")
	startProc(t, "ffmpeg", filepath.Join(artifactsDir(t), "ffmpeg-crash.log"),
		append([]string{"ffmpeg"}, testmedia.ISMVArgs(30, 2, true, n.base+"/live.isml/Streams(live)")...)...)

	// Acknowledged = listed in a manifest: fetch and remember each one.
	seen := map[string][32]byte{}
	// Until nine are seen (about 18 s of encoding), however slow ffmpeg
	// starts on a loaded machine.
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) < 9 && time.Now().Before(deadline) {
		for _, u := range segmentURLs(t, n.base+"/live.isml/") {
			if _, ok := seen[u]; ok {
				continue
			}
			code, b := get(t, u)
			if code != 200 || !media.IsComplete(b) {
				t.Fatalf("%s: status %d, complete %v", u, code, media.IsComplete(b))
			}
			seen[u] = sha256.Sum256(b)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(seen) < 9 {
		t.Fatalf("only %d fragments seen before the crash", len(seen))
	}
	syscall.Kill(n.p.cmd.Process.Pid, syscall.SIGKILL)
	<-n.p.done

	n2 := startNode(t, bin, data, "crash-node-2.log", port, "--point", "live")
	for u, sum := range seen {
		code, b := get(t, u)
		if code != 200 {
			t.Fatalf("after restart %s: status %d", u, code)
		}
		if sha256.Sum256(b) != sum {
			t.Fatalf("after restart %s: bytes differ", u)
		}
	}
	// Everything listed now is complete, and nothing temporary is left.
	for _, u := range segmentURLs(t, n2.base+"/live.isml/") {
		if code, b := get(t, u); code != 200 || !media.IsComplete(b) {
			t.Fatalf("after restart %s: status %d complete %v", u, code, media.IsComplete(b))
		}
	}
	filepath.Walk(data, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), ".tmp-") {
			t.Errorf("temporary file left after recovery: %s", p)
		}
		return nil
	})
}

// segmentURLs lists the absolute URLs of every segment of the DASH MPD
// under base (which ends in "<pp>.isml/").
func segmentURLs(t *testing.T, base string) []string {
	t.Helper()
	code, body := get(t, base+"manifest.mpd")
	if code != 200 {
		return nil
	}
	var m struct {
		Sets []struct {
			Tmpl *tmpl `xml:"SegmentTemplate"`
			Reps []struct {
				ID   string `xml:"id,attr"`
				Tmpl *tmpl  `xml:"SegmentTemplate"`
			} `xml:"Representation"`
		} `xml:"Period>AdaptationSet"`
	}
	if err := xml.Unmarshal(body, &m); err != nil {
		t.Fatalf("MPD: %v\n%s", err, body)
	}
	var out []string
	for _, as := range m.Sets {
		for _, r := range as.Reps {
			tp := r.Tmpl
			if tp == nil {
				tp = as.Tmpl
			}
			if tp == nil {
				t.Fatalf("no SegmentTemplate for %s", r.ID)
			}
			var cur int64
			for _, s := range tp.S {
				if s.T != nil {
					cur = *s.T
				}
				for i := 0; i <= s.R; i++ {
					u := strings.ReplaceAll(tp.Media, "$RepresentationID$", r.ID)
					u = strings.ReplaceAll(u, "$Time$", strconv.FormatInt(cur, 10))
					out = append(out, base+u)
					cur += s.D
				}
			}
		}
	}
	return out
}

// tmpl is a DASH SegmentTemplate with its SegmentTimeline.
type tmpl struct {
	Media string `xml:"media,attr"`
	S     []struct {
		T *int64 `xml:"t,attr"`
		D int64  `xml:"d,attr"`
		R int    `xml:"r,attr"`
	} `xml:"SegmentTimeline>S"`
}
