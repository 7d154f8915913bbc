package archive

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit"
)

func TestParseTime(t *testing.T) {
	anchor := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"93.5", 93500 * time.Millisecond, false},
		{"1732550400", 1732550400 * time.Second, false},
		{"0.000000001", 1, false},
		{"-2", -2 * time.Second, false},
		{"90s", 90 * time.Second, false},
		{"1h30m", 90 * time.Minute, false},
		{"2026-11-25T14:00:00Z", 14 * time.Hour, false},
		{"2026-11-25T15:00:00+01:00", 14 * time.Hour, false},
		{"1e3", 0, true},
		{"soon", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in, anchor)
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
	if _, err := ParseTime("2026-11-25T14:00:00Z", time.Time{}); err == nil {
		t.Error("a wall-clock time without an anchor was accepted")
	}
}

// liveStore holds point "ch" with the media fixture.
func liveStore(t *testing.T) (*store.Store, store.TrackView) {
	t.Helper()
	st, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Create("ch")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../media/testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	return st, testkit.StoreISMV(t, p, body).Tracks[0]
}

func TestAPI(t *testing.T) {
	st, ref := liveStore(t)
	secs := func(i int) float64 { return ref.Seconds(ref.Frags[i].Start) }
	h := API(st, "s3cret", slog.New(slog.DiscardHandler))
	ts := httptest.NewServer(h)
	defer ts.Close()
	disabled := httptest.NewServer(API(st, "", slog.New(slog.DiscardHandler)))
	defer disabled.Close()
	body := func(asset string, from, to any) string {
		b, _ := json.Marshal(map[string]any{"asset": asset, "from": from, "to": to})
		return string(b)
	}
	ok := body("clip", secs(1), secs(3))
	tests := []struct {
		name  string
		base  string
		path  string
		token string
		body  string
		want  int
	}{
		{"disabled", disabled.URL, "/api/points/ch/cut", "s3cret", ok, http.StatusForbidden},
		{"no token", ts.URL, "/api/points/ch/cut", "", ok, http.StatusUnauthorized},
		{"wrong token", ts.URL, "/api/points/ch/cut", "guess", ok, http.StatusUnauthorized},
		{"unknown resource", ts.URL, "/api/points/ch/split", "s3cret", ok, http.StatusNotFound},
		{"unknown point", ts.URL, "/api/points/nope/cut", "s3cret", ok, http.StatusNotFound},
		{"bad json", ts.URL, "/api/points/ch/cut", "s3cret", "{", http.StatusBadRequest},
		{"unknown field", ts.URL, "/api/points/ch/cut", "s3cret", `{"asset":"x","from":1,"to":2,"x":1}`, http.StatusBadRequest},
		{"bad time", ts.URL, "/api/points/ch/cut", "s3cret", body("x", "soon", 2), http.StatusBadRequest},
		{"empty range", ts.URL, "/api/points/ch/cut", "s3cret", body("x", 1e9, 1e9+10), http.StatusUnprocessableEntity},
		{"cut", ts.URL, "/api/points/ch/cut", "s3cret", ok, http.StatusCreated},
		{"again", ts.URL, "/api/points/ch/cut", "s3cret", ok, http.StatusConflict},
		{"string times", ts.URL, "/api/points/ch/cut", "s3cret", body("clip2", "0", "1h"), http.StatusCreated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := testkit.PostJSON(t, tc.base+tc.path, tc.token, tc.body)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %v", code, tc.want, out)
			}
			if code == http.StatusCreated && (out["fragments"].(float64) < 1 || out["manifests"] == nil) {
				t.Fatalf("answer %v", out)
			}
		})
	}
	p, err := st.Point("clip")
	if err != nil || !p.Meta().VOD {
		t.Fatalf("clip: %v", err)
	}
}
