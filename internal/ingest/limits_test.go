package ingest_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// livePush is a push whose body the test writes as it goes.
type livePush struct {
	t    *testing.T
	w    *io.PipeWriter
	done chan struct{}
	code int
	body string
	hdr  http.Header
}

func startPush(t *testing.T, e *env, path string) *livePush {
	t.Helper()
	pr, pw := io.Pipe()
	p := &livePush{t: t, w: pw, done: make(chan struct{})}
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, pr)
	req.ContentLength = -1
	go func() {
		defer close(p.done)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			p.body = err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p.code, p.body, p.hdr = resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
		pr.CloseWithError(io.ErrClosedPipe) // unblock a writer
	}()
	t.Cleanup(func() { pw.Close() })
	return p
}

// write sends b; false once the server has answered.
func (p *livePush) write(b []byte) bool {
	_, err := p.w.Write(b)
	return err == nil
}

// answer waits for the status.
func (p *livePush) answer(within time.Duration) (int, string) {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code, p.body
	case <-time.After(within):
		p.t.Fatalf("no answer within %v", within)
		return 0, ""
	}
}

func boxHeader(size uint32, typ string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, size)
	copy(b[4:], typ)
	return b
}

// header returns the boxes of a body before its first moof.
func header(t *testing.T, body []byte) []byte {
	t.Helper()
	var hdr []media.Box
	for _, b := range testmedia.Boxes(t, body) {
		if b.Type == "moof" {
			break
		}
		hdr = append(hdr, b)
	}
	return testmedia.Join(hdr)
}

// TestPushTrickleCut: one byte at a time into a box that declares 1 MiB is
// cut by the minimum receive rate (408) after its window, although bytes
// keep coming; a push that sends only complete padding boxes is cut for
// making no progress.
func TestPushTrickleCut(t *testing.T) {
	e := newEnvWith(t, nil, func(c *config.Config) {
		c.IngestIdle = 2 * time.Second
		c.IngestMinRate = 1000
		c.IngestRateWindow = time.Second
	})
	a, _ := fixtures(t)
	for _, c := range []struct {
		name   string
		first  []byte
		every  []byte
		reason string
	}{
		{"trickle into a box", append(header(t, a), boxHeader(1<<20, "uuid")...), []byte{0}, "receive rate"},
		{"padding only", header(t, a), append(boxHeader(9, "free"), 0), "no header, fragment or end"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			p := startPush(t, e, "/live.isml/Streams(slow)")
			p.write(c.first)
			for p.write(c.every) {
				if time.Since(start) > 20*time.Second {
					t.Fatal("never cut")
				}
				time.Sleep(100 * time.Millisecond)
			}
			code, body := p.answer(5 * time.Second)
			if code != http.StatusRequestTimeout || !strings.Contains(body, c.reason) {
				t.Fatalf("%d %q, want 408 %q", code, body, c.reason)
			}
			t.Logf("cut after %v: %s", time.Since(start).Round(10*time.Millisecond), body)
		})
	}
}

// TestLiveEncodersNotCut: real ffmpeg pushes in real time — audio only at
// 16 kbit/s, and video with 2 s fragments — are never cut by a receive
// rate window shorter than their fragment period, nor by an idle time of
// a few fragment periods (the first fragment of x264 comes a GOP plus its
// look-ahead after the header).
func TestLiveEncodersNotCut(t *testing.T) {
	testmedia.FFmpeg(t)
	e := newEnvWith(t, nil, func(c *config.Config) {
		c.IngestIdle = 6 * time.Second
		c.IngestMinRate = 64 << 10 // far above what these encoders send per second
		c.IngestRateWindow = time.Second
	})
	for name, args := range map[string][]string{
		"audio 16k": {"-re", "-t", "7", "-f", "lavfi", "-i", "sine=sample_rate=8000", "-c:a", "aac", "-b:a", "16k",
			"-f", "ismv", "-movflags", "isml+frag_keyframe", "-frag_duration", "2000000"},
		"video 2s fragments": {"-re", "-t", "7", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
			"-c:v", "libx264", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "100k",
			"-f", "ismv", "-movflags", "isml+frag_keyframe"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id := strings.ReplaceAll(name, " ", "_")
			argv := append([]string{"-hide_banner", "-loglevel", "error"}, args...)
			argv = append(argv, e.ts.URL+"/live.isml/Streams("+id+")")
			testmedia.Run(t, argv)
			// ffmpeg exits without reading the answer: the end may be
			// logged a moment later.
			deadline := time.Now().Add(5 * time.Second)
			for {
				ended := false
				for _, l := range strings.Split(e.logs.String(), "\n") {
					if !strings.Contains(l, "stream="+id+" ") && !strings.HasSuffix(l, "stream="+id) {
						continue
					}
					if strings.Contains(l, "status=408") {
						t.Fatalf("a live encoder was cut: %s", l)
					}
					ended = ended || strings.Contains(l, "end of stream")
				}
				if ended {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("push did not reach its end:\n%s", e.logs.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestMemoryBudget: pushes that hold large boxes half sent fill the
// budget; the next one to need memory cuts the push that holds the most
// (503 with Retry-After), and a push of real fragments goes through while
// they hold it.
func TestMemoryBudget(t *testing.T) {
	// A hog sends 900 KiB of a 1 MiB box: the reader holds the chunks of
	// 64, 128, 256 and 512 KiB it has filled or is filling, 960 KiB. Two
	// fill the budget exactly.
	const held = 960 << 10
	e := newEnvWith(t, nil, func(c *config.Config) {
		c.MaxBox = 1 << 20
		c.IngestMemory = 2 * held
		c.IngestMinRate = 0
	})
	a, _ := fixtures(t)
	hog := func(id string) *livePush {
		p := startPush(t, e, "/live.isml/Streams("+id+")")
		p.write(append(boxHeader(1<<20, "uuid"), make([]byte, 900<<10)...))
		return p
	}
	h1 := hog("hog1")
	waitBuffered(t, e, held)
	h2 := hog("hog2")
	waitBuffered(t, e, 2*held)
	// A good push needs memory: one hog is cut, the push is stored.
	e.mustPush("good push while the budget is full", a)
	var cut *livePush
	for cut == nil {
		select {
		case <-h1.done:
			cut = h1
		case <-h2.done:
			cut = h2
		case <-time.After(5 * time.Second):
			t.Fatal("no hog was cut")
		}
	}
	code, body := cut.answer(time.Second)
	if code != http.StatusServiceUnavailable || cut.hdr.Get("Retry-After") == "" || !strings.Contains(body, "memory budget") {
		t.Fatalf("cut hog: %d %q Retry-After %q", code, body, cut.hdr.Get("Retry-After"))
	}
	if got := fragCount(e.view("live")); got < 6 {
		t.Fatalf("good push stored %d fragments", got)
	}
}

// waitBuffered waits until the ingest buffers hold at least n bytes.
func waitBuffered(t *testing.T, e *env, n float64) {
	t.Helper()
	waitGauge(t, e, "sluice_ingest_buffer_bytes", n)
}

// waitGauge waits until a gauge of the server is at least n.
func waitGauge(t *testing.T, e *env, name string, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if testkit.Sum(t, e.srv.Metrics.Registry, name) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %v", name, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMaxPushes: one push more than max_pushes to a point gets 503 with
// Retry-After before its body is read; another point is not affected.
func TestMaxPushes(t *testing.T) {
	e := newEnvWith(t, nil, func(c *config.Config) { c.MaxPushes = 2 })
	a, _ := fixtures(t)
	for _, id := range []string{"p1", "p2"} {
		p := startPush(t, e, "/live.isml/Streams("+id+")")
		p.write(header(t, a))
		waitGauge(t, e, "sluice_active_pushes", 1) // in the handler: its slot is taken
	}
	waitGauge(t, e, "sluice_active_pushes", 2)
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/live.isml/Streams(p3)", bytes.NewReader(a))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "max_pushes") {
		t.Fatalf("third push: %d %q, Retry-After %q", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if code, body := e.post("/secure.isml/Streams(s1)", a, map[string]string{"Authorization": "Bearer s3cret"}); code != 200 {
		t.Fatalf("other point: %d %s", code, body)
	}
}

// TestDiskFailureIs500: a write the filesystem refuses answers 500 on every
// path — stream header, anchor, end of track — not 400.
func TestDiskFailureIs500(t *testing.T) {
	a, _ := fixtures(t)
	block := func(t *testing.T, path string) {
		os.RemoveAll(path)
		if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, e *env) // before the push of a to s1
	}{
		{"stream header", func(t *testing.T, e *env) {
			block(t, filepath.Join(e.srv.Store.Dir(), "live", "s", "s1", "header.mp4"))
		}},
		{"anchor", func(t *testing.T, e *env) {
			if _, err := e.srv.Store.Create("live"); err != nil {
				t.Fatal(err)
			}
			block(t, filepath.Join(e.srv.Store.Dir(), "live", "point.json"))
		}},
		{"end of track", func(t *testing.T, e *env) {
			// The tracks stay live (no mfra): a's end of stream must
			// write their track.json. (Pushing a whole again would
			// change nothing: its fragments are copies and its tracks
			// ended already.)
			hdr, frags, _ := parts(t, a)
			e.mustPush("first push, without its end", append(hdr, bytes.Join(frags, nil)...))
			for _, tr := range e.view("live").Tracks {
				block(t, filepath.Join(e.srv.Store.Dir(), "live", "t", tr.ID, "track.json"))
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			c.setup(t, e)
			code, body := e.post("/live.isml/Streams(s1)", a, nil)
			if code != http.StatusInternalServerError || !strings.Contains(body, "disk write failed") {
				t.Fatalf("%d %q, want 500", code, body)
			}
		})
	}
}

// TestJunkStreamsNotListed: pushes with new stream ids that never deliver a
// fragment are refused and neither listed in the StreamManifest nor
// pullable; the stream that carries media is.
func TestJunkStreamsNotListed(t *testing.T) {
	e := newEnv(t)
	a, _ := fixtures(t)
	e.mustPush("good", a)
	junk := append(header(t, a), bytes.Repeat([]byte{0xde, 0xad}, 50)...)
	for i := 0; i < 20; i++ {
		if code, _ := e.post("/live.isml/Streams(junk"+string(rune('a'+i))+")", junk, nil); code != 400 {
			t.Fatalf("junk push: %d", code)
		}
	}
	resp, err := http.Get(e.ts.URL + "/live.isml/StreamManifest")
	if err != nil {
		t.Fatal(err)
	}
	var sm ingest.StreamManifest
	json.NewDecoder(resp.Body).Decode(&sm)
	resp.Body.Close()
	if len(sm.Streams) != 1 || sm.Streams[0].ID != "s1" {
		t.Fatalf("listed: %+v", sm.Streams)
	}
	resp, err = http.Get(e.ts.URL + "/live.isml/Streams(junka)")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("pull of a junk stream: %d", resp.StatusCode)
	}
}
