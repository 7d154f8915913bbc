package push_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/mp4src"
	"github.com/sluice-media/sluice/internal/push"
	"github.com/sluice-media/sluice/internal/testmedia"
)

func openSample(t *testing.T) *mp4src.Source {
	t.Helper()
	s, err := mp4src.Open(testmedia.Sample(t), mp4src.Options{})
	if err != nil {
		t.Fatalf("open sample (run scripts/make-sample.sh): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// key identifies a fragment as an ingest does.
type key struct {
	track uint32
	start int64
}

// post is one request as the ingest saw it.
type post struct {
	auth     string
	chunked  bool
	probe    bool // empty body
	headers  int
	frags    []media.FragInfo
	data     map[key][]byte
	ends     int
	parseErr error
	arrived  []time.Time // per fragment
}

// ingest is a test ingest: it parses each request body as a stream, exactly
// as the real ingest does, and records what it got.
type ingest struct {
	*httptest.Server
	mu    sync.Mutex
	posts []*post
	// fail, when set, decides the answer after n fragments of a request;
	// it returns 0 to keep reading.
	fail func(n int) int
	// probeStatus, when set, answers empty POSTs.
	probeStatus int
}

func newIngest(t *testing.T) *ingest {
	in := &ingest{}
	in.Server = httptest.NewServer(http.HandlerFunc(in.serve))
	t.Cleanup(in.Close)
	return in
}

func (in *ingest) serve(w http.ResponseWriter, r *http.Request) {
	p := &post{auth: r.Header.Get("Authorization"), data: map[key][]byte{}}
	p.chunked = len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
	in.mu.Lock()
	in.posts = append(in.posts, p)
	fail := in.fail
	in.mu.Unlock()
	if r.ContentLength == 0 && in.probeStatus != 0 {
		p.probe = true
		http.Error(w, "test ingest gives up", in.probeStatus)
		return
	}
	sp := media.NewStreamParser(r.Body, 16<<20, nil)
	n := 0
	for {
		ev, err := sp.Next()
		if err != nil {
			in.mu.Lock()
			if !errors.Is(err, io.EOF) {
				p.parseErr = err
			}
			p.probe = sp.Offset() == 0
			in.mu.Unlock()
			break
		}
		in.mu.Lock()
		switch ev.Kind {
		case media.EventHeader:
			p.headers++
		case media.EventFragment:
			fi := ev.Fragment.Info
			p.frags = append(p.frags, fi)
			p.data[key{fi.TrackID, fi.Start}] = ev.Fragment.Data
			p.arrived = append(p.arrived, time.Now())
			n++
		case media.EventEnd:
			p.ends++
		}
		in.mu.Unlock()
		if fail != nil {
			if code := fail(n); code != 0 {
				// Connection: close makes net/http answer at once instead
				// of first draining up to 256 KB of the unread body.
				w.Header().Set("Connection", "close")
				http.Error(w, "test ingest gives up", code)
				return
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (in *ingest) snapshot() []*post {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*post(nil), in.posts...)
}

// media returns the one request that carried media.
func (in *ingest) media(t *testing.T) *post {
	t.Helper()
	var out *post
	for _, p := range in.snapshot() {
		if !p.probe {
			if out != nil {
				t.Fatalf("more than one media request")
			}
			out = p
		}
	}
	if out == nil {
		t.Fatalf("no media request")
	}
	return out
}

func url(in *ingest) string { return in.URL + "/live/demo.isml/Streams(demo)" }

// TestRedundantEpochPushes runs two real-time, epoch-anchored pushes of
// about 5 s, started 700 ms apart, against two ingests: both get fragments
// on the wall-clock timeline, and the fragments of the common period are
// identical, times and bytes.
func TestRedundantEpochPushes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 7 s in real time")
	}
	src := openSample(t)
	a, b := newIngest(t), newIngest(t)
	ts := int64(src.Timescale())
	type out struct {
		res push.Result
		err error
	}
	results := make([]out, 2)
	var progress bytes.Buffer
	var wg sync.WaitGroup
	for i, in := range []*ingest{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				time.Sleep(700 * time.Millisecond)
			}
			opts := push.Options{URLs: []string{url(in)}, Token: "s3cret", Loop: true, Duration: 5 * time.Second,
				Epoch: true, Probe: true}
			if i == 0 {
				opts.Progress = &progress
			}
			res, err := push.Push(context.Background(), src, opts)
			results[i] = out{res, err}
		}()
	}
	wg.Wait()

	loop := src.LoopTicks()
	starts := map[int64]bool{}
	for i := 0; i < src.Periods(); i++ {
		starts[src.PeriodStart(i)] = true
	}
	for i, in := range []*ingest{a, b} {
		if results[i].err != nil {
			t.Fatalf("push %d: %v", i, results[i].err)
		}
		res := results[i].res
		if res.Periods != 3 || res.Fragments != 9 {
			t.Errorf("push %d: %d periods, %d fragments; want 3 and 9 (5 s of 2 s periods)", i, res.Periods, res.Fragments)
		}
		posts := in.snapshot()
		if len(posts) != 2 || !posts[0].probe {
			t.Fatalf("ingest %d: %d requests, want a probe and the stream", i, len(posts))
		}
		p := in.media(t)
		if p.auth != "Bearer s3cret" || posts[0].auth != "Bearer s3cret" {
			t.Errorf("ingest %d: Authorization %q", i, p.auth)
		}
		if !p.chunked {
			t.Errorf("ingest %d: body not chunked", i)
		}
		if p.parseErr != nil || p.headers != 1 || p.ends != 1 {
			t.Fatalf("ingest %d: parse error %v, %d headers, %d end boxes", i, p.parseErr, p.headers, p.ends)
		}
		for j, fi := range p.frags {
			if fi.TrackID != 1 {
				continue
			}
			// Epoch anchored: the start is on the looped timeline...
			if !starts[fi.Start%loop] {
				t.Errorf("ingest %d: video fragment at %d is not a period start of the loop", i, fi.Start)
			}
			// ...and its media time is the wall clock at which it was sent.
			mediaWall := time.Unix(0, mp4src.MulDivRound(fi.Start, int64(time.Second), ts))
			if d := p.arrived[j].Sub(mediaWall); d < -50*time.Millisecond || d > time.Second {
				t.Errorf("ingest %d: fragment for %v arrived at %v (%v off)", i, mediaWall, p.arrived[j], d)
			}
		}
	}
	if !bytes.Contains(progress.Bytes(), []byte("100%")) {
		t.Errorf("no finished progress bar: %q", progress.String())
	}
	pa, pb := a.media(t), b.media(t)
	common := 0
	for k, da := range pa.data {
		if db, ok := pb.data[k]; ok {
			common++
			if !bytes.Equal(da, db) {
				t.Errorf("fragment track %d at %d differs between the pushers", k.track, k.start)
			}
		}
	}
	if common < 6 {
		t.Errorf("%d fragments in common, want at least 2 periods (6)", common)
	}
}

// TestPushOnceFast pushes the whole file once from time 0, as fast as the
// ingest reads.
func TestPushOnceFast(t *testing.T) {
	src := openSample(t)
	in := newIngest(t)
	res, err := push.Push(context.Background(), src, push.Options{URLs: []string{url(in)}, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Periods != 6 || res.Fragments != 18 || res.First != 0 || res.End != src.LoopTicks() || res.Status != "200 OK" {
		t.Errorf("result %+v", res)
	}
	p := in.media(t)
	if p.headers != 1 || p.ends != 1 || len(p.frags) != 18 {
		t.Fatalf("ingest got %d headers, %d fragments, %d ends", p.headers, len(p.frags), p.ends)
	}
	if p.frags[0].Start != 0 {
		t.Errorf("first fragment at %d, want 0", p.frags[0].Start)
	}
}

// TestPushErrors covers an ingest that refuses the stream.
func TestPushErrors(t *testing.T) {
	src := openSample(t)
	tests := []struct {
		name        string
		probeStatus int
		fail        func(n int) int
		status      int
	}{
		{"probe refused", http.StatusForbidden, nil, 403},
		{"refused after the header", 0, func(int) int { return http.StatusNotFound }, 404},
		{"server error mid-stream", 0, func(n int) int {
			if n >= 4 {
				return http.StatusInternalServerError
			}
			return 0
		}, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := newIngest(t)
			in.fail, in.probeStatus = tc.fail, tc.probeStatus
			_, err := push.Push(context.Background(), src, push.Options{URLs: []string{url(in)}, Fast: true, Probe: true})
			var se *push.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a StatusError", err)
			}
			// Whether the answer beat the end of the body (se.Early) depends
			// on socket buffers when pushing fast; the status must be reported.
			if se.Code != tc.status {
				t.Errorf("status %d, want %d (%v)", se.Code, tc.status, err)
			}
			if se.Body != "test ingest gives up" {
				t.Errorf("body %q not reported", se.Body)
			}
		})
	}
}

// TestPushFailover loses the first ingest mid-stream (real time, 6 s of
// media) and continues on the standby, which gets the header and the last
// two periods again, so that no fragment is lost.
func TestPushFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs about 4 s in real time")
	}
	src := openSample(t)
	a, b := newIngest(t), newIngest(t)
	a.fail = func(n int) int {
		if n >= 4 { // in period 1
			return http.StatusServiceUnavailable
		}
		return 0
	}
	res, err := push.Push(context.Background(), src, push.Options{
		URLs: []string{url(a), url(b)}, Duration: 6 * time.Second, Retry: true, RetryDelay: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connections != 2 || res.Periods != 3 {
		t.Errorf("result %+v, want 2 connections and 3 periods", res)
	}
	pb := b.media(t)
	if pb.headers != 1 || pb.ends != 1 || pb.parseErr != nil {
		t.Fatalf("standby: %d headers, %d ends, parse error %v", pb.headers, pb.ends, pb.parseErr)
	}
	// The failure is noticed during period 1, so the standby gets periods
	// 0 and 1 again, then period 2: nothing is lost.
	if len(pb.frags) != 9 || pb.frags[0].Start != 0 {
		t.Errorf("standby got %d fragments from %d, want the 9 of periods 0-2", len(pb.frags), pb.frags[0].Start)
	}
}

// TestPushCancel stops a looping real-time push: the stream still ends
// with the end box and a clean answer.
func TestPushCancel(t *testing.T) {
	src := openSample(t)
	in := newIngest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := push.Push(ctx, src, push.Options{URLs: []string{url(in)}, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("cancel took %v", el)
	}
	p := in.media(t)
	if p.ends != 1 || p.parseErr != nil {
		t.Errorf("ingest: %d end boxes, parse error %v", p.ends, p.parseErr)
	}
	if res.Periods != 1 || len(p.frags) != 3 {
		t.Errorf("%d periods pushed, %d fragments received; want the first period only", res.Periods, len(p.frags))
	}
}
