// Package testkit holds helpers that the tests of several packages share: a
// log sink safe for concurrent writers, the fragments a store holds, sums of
// registry metrics and JSON API calls. Only tests import it.
package testkit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// Buffer is a log sink safe for concurrent writers (a server's goroutines).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LogOnFailure logs the buffer, headed "<name> log:", at the end of a test
// that failed.
func (s *Buffer) LogOnFailure(t testing.TB, name string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, s)
		}
	})
}

// Logger returns a text logger that writes into a new Buffer.
func Logger() (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// Snapshot reads every stored fragment of a point, keyed "<track>/<start>";
// nil when the store has no such point.
func Snapshot(t testing.TB, st *store.Store, point string) map[string][]byte {
	t.Helper()
	p, err := st.Point(point)
	if err != nil {
		return nil
	}
	out := map[string][]byte{}
	for _, tr := range p.View(0).Tracks {
		for _, f := range tr.Frags {
			b, _, err := p.ReadFragment(tr.ID, f.Start)
			if err != nil {
				t.Fatal(err)
			}
			out[tr.ID+"/"+strconv.FormatInt(f.Start, 10)] = b
		}
	}
	return out
}

// SameFragments reports whether two snapshots hold the same keys and bytes.
func SameFragments(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// Sum adds up the counter and gauge samples of the metric family name whose
// labels include every "key=value" of labels.
func Sum(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, kv := range labels {
				k, v, _ := strings.Cut(kv, "=")
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// PostJSON posts body to url, with "Authorization: Bearer <token>" unless
// token is empty, and returns the status and the JSON object of the answer
// (nil when it is none).
func PostJSON(t testing.TB, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// StoreISMV stores every fragment of an ismv push body (e.g.
// internal/media/testdata/small.ismv) in point p, as stream "s", and
// returns the point's view.
func StoreISMV(t testing.TB, p *store.Point, body []byte) store.View {
	t.Helper()
	sp := media.NewStreamParser(bytes.NewReader(body), 1<<20, nil)
	var ids map[uint32]string
	for {
		ev, err := sp.Next()
		if errors.Is(err, io.EOF) {
			return p.View(0)
		}
		if err != nil {
			t.Fatal(err)
		}
		if ids == nil && sp.Header() != nil {
			if ids, err = p.SetHeader("s", sp.Header()); err != nil {
				t.Fatal(err)
			}
		}
		if ev.Kind == media.EventFragment {
			if _, err := p.AddFragment(ids[ev.Fragment.Info.TrackID], ev.Fragment); err != nil {
				t.Fatal(err)
			}
		}
	}
}
