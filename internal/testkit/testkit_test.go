package testkit_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/testkit"
)

func TestSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total"}, []string{"mode", "result"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	reg.MustRegister(c, g)
	c.WithLabelValues("tee", "ok").Add(2)
	c.WithLabelValues("tee", "bad").Add(3)
	c.WithLabelValues("follow", "ok").Add(5)
	g.Set(7)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"c_total", nil, 10},
		{"c_total", []string{"mode=tee"}, 5},
		{"c_total", []string{"mode=tee", "result=ok"}, 2},
		{"c_total", []string{"mode=none"}, 0},
		{"g", nil, 7},
		{"missing", nil, 0},
	} {
		if got := testkit.Sum(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestSameFragments(t *testing.T) {
	a := map[string][]byte{"v/0": []byte("x"), "v/1": []byte("y")}
	for _, tc := range []struct {
		b    map[string][]byte
		want bool
	}{
		{map[string][]byte{"v/0": []byte("x"), "v/1": []byte("y")}, true},
		{map[string][]byte{"v/0": []byte("x"), "v/1": []byte("z")}, false},
		{map[string][]byte{"v/0": []byte("x"), "v/2": []byte("y")}, false},
		{map[string][]byte{"v/0": []byte("x")}, false},
	} {
		if got := testkit.SameFragments(a, tc.b); got != tc.want {
			t.Errorf("SameFragments(%v) = %v, want %v", tc.b, got, tc.want)
		}
	}
}

func TestPostJSON(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write(b)
	}))
	defer ts.Close()
	for _, tc := range []struct {
		token, body string
		code        int
		want        any
	}{
		{"tok", `{"a":"b"}`, http.StatusCreated, "b"},
		{"", `{"a":"b"}`, http.StatusUnauthorized, nil},
		{"tok", `not json`, http.StatusCreated, nil},
	} {
		code, out := testkit.PostJSON(t, ts.URL, tc.token, tc.body)
		if code != tc.code || out["a"] != tc.want {
			t.Errorf("PostJSON(%q, %q) = %d %v, want %d a=%v", tc.token, tc.body, code, out, tc.code, tc.want)
		}
	}
}

// TestClock: a Clock stands still until Add moves it.
func TestClock(t *testing.T) {
	start := time.Unix(1_800_000_000, 5)
	c := testkit.NewClock(start)
	if !c.Now().Equal(start) || !c.Now().Equal(c.Now()) {
		t.Fatalf("Now() = %v, want %v", c.Now(), start)
	}
	c.Add(90 * time.Second)
	if got := c.Now().Sub(start); got != 90*time.Second {
		t.Fatalf("after Add(90s): %v later", got)
	}
}
