package distribution_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
)

// countingOrigin is a real origin (server with ingest and origin roles)
// whose requests are counted per path.
type countingOrigin struct {
	srv *server.Server
	ts  *httptest.Server
	mu  sync.Mutex
	n   map[string]int
}

func newCountingOrigin(t *testing.T) *countingOrigin {
	t.Helper()
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	cfg.Points = []config.Point{{Name: "ch"}, {Name: "idle"}}
	srv, err := server.New(cfg, server.Roles{Ingest: true, Origin: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	o := &countingOrigin{srv: srv, n: map[string]int{}}
	o.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			o.mu.Lock()
			o.n[r.URL.Path]++
			o.mu.Unlock()
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(o.ts.Close)
	// A live push of the fixture (no final mfra): the point stays live.
	body, err := os.ReadFile("../media/testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.TrimSuffix(body, []byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'})
	for _, pp := range []string{"ch", "idle"} {
		resp, err := http.Post(o.ts.URL+"/"+pp+".isml/Streams(s)", "video/mp4", bytes.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("push %s: %v %v", pp, err, resp)
		}
		resp.Body.Close()
	}
	return o
}

func (o *countingOrigin) counts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, v := range o.n {
		out[k] = v
	}
	return out
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// segmentPaths lists the fragment paths of a Sluice MPD and a Smooth manifest.
func segmentPaths(t *testing.T, base string) []string {
	t.Helper()
	_, mpd := get(t, base+"/ch.isml/manifest.mpd")
	var m struct {
		Sets []struct {
			Tmpl *struct {
				S []struct {
					T *int64 `xml:"t,attr"`
					D int64  `xml:"d,attr"`
					R int    `xml:"r,attr"`
				} `xml:"SegmentTimeline>S"`
			} `xml:"SegmentTemplate"`
			Reps []struct {
				ID string `xml:"id,attr"`
			} `xml:"Representation"`
		} `xml:"Period>AdaptationSet"`
	}
	if err := xml.Unmarshal(mpd, &m); err != nil {
		t.Fatalf("MPD: %v\n%s", err, mpd)
	}
	var out []string
	for _, as := range m.Sets {
		for _, r := range as.Reps {
			var cur int64
			out = append(out, "/ch.isml/tracks/"+r.ID+"/init.mp4")
			for _, s := range as.Tmpl.S {
				if s.T != nil {
					cur = *s.T
				}
				for i := 0; i <= s.R; i++ {
					out = append(out, fmt.Sprintf("/ch.isml/tracks/%s/%d.m4s", r.ID, cur))
					cur += s.D
				}
			}
		}
	}
	return out
}

// TestRealOrigin: players' requests through the proxy to a real origin:
// every fragment comes byte for byte as from the origin, with one upstream
// request per URL however many clients ask; the idle point gets nothing.
func TestRealOrigin(t *testing.T) {
	o := newCountingOrigin(t)
	cfg := config.Defaults()
	cfg.Distribution.Origins = []string{o.ts.URL}
	d, err := server.New(cfg, server.Roles{Distribution: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	dts := httptest.NewServer(d.Handler())
	t.Cleanup(dts.Close)
	if resp, _ := get(t, dts.URL+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	paths := segmentPaths(t, dts.URL)
	if len(paths) < 6 {
		t.Fatalf("only %d segments listed", len(paths))
	}
	before := o.counts()
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for c := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range paths {
				p := paths[(i+c)%len(paths)]
				resp, err := http.Get(dts.URL + p)
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || len(b) == 0 {
					errs <- fmt.Sprintf("%s: %d", p, resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	after := o.counts()
	for _, p := range paths {
		if n := after[p] - before[p]; n != 1 {
			t.Errorf("%s: %d upstream requests, want 1", p, n)
		}
		_, direct := get(t, o.ts.URL+p)
		_, via := get(t, dts.URL+p)
		if !bytes.Equal(direct, via) {
			t.Errorf("%s: bytes differ from the origin's", p)
		}
	}
	for p := range after {
		if strings.HasPrefix(p, "/idle.isml/") {
			t.Errorf("the idle point got a request: %s", p)
		}
	}
	// Smooth: a live fragment far beyond the edge never reaches the origin.
	_, mf := get(t, dts.URL+"/ch.isml/Manifest")
	if !bytes.Contains(mf, []byte(`IsLive="TRUE"`)) {
		t.Fatalf("Smooth manifest:\n%s", mf)
	}
	far := "/ch.isml/QualityLevels(1)/Fragments(video=" + strconv.FormatInt(1<<60, 10) + ")"
	if resp, _ := get(t, dts.URL+far); resp.StatusCode != 404 {
		t.Fatalf("far Smooth fragment: %d", resp.StatusCode)
	}
	if n := o.counts()[far]; n != 0 {
		t.Fatalf("far Smooth fragment reached the origin %d times", n)
	}
	_, metrics := get(t, dts.URL+"/metrics")
	for _, want := range []string{"sluice_distribution_upstream_requests_total", "sluice_distribution_refused_total",
		"sluice_distribution_cache_lookups_total", "sluice_distribution_coalesced_waiters_total"} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
