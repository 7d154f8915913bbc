package origin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/sluice-media/sluice/internal/scheduler"
	"github.com/sluice-media/sluice/internal/store"
)

func TestViewJSON(t *testing.T) {
	for _, live := range []bool{true, false} {
		e := newEnv(t, t.TempDir())
		e.push(live)
		resp, body := e.get("/ch.isml/view.json")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("live=%v: %d %s", live, resp.StatusCode, body)
		}
		var v store.View
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		want := e.view()
		if v.Name != "ch" || len(v.Tracks) != len(want.Tracks) || v.Ended != want.Ended {
			t.Fatalf("live=%v: view %+v", live, v)
		}
		for i, tr := range v.Tracks {
			w := want.Tracks[i]
			if tr.ID != w.ID || len(tr.Frags) != len(w.Frags) || tr.Info != w.Info {
				t.Errorf("track %d: %s %d frags, want %s %d", i, tr.ID, len(tr.Frags), w.ID, len(w.Frags))
			}
		}
		// Conditional requests: an unchanged index is 304.
		resp, _ = e.get("/ch.isml/view.json", "If-None-Match", resp.Header.Get("ETag"))
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match: %d", resp.StatusCode)
		}
		// The scheduler's client for it reads the same.
		tl := &scheduler.OriginTimeline{Origins: []string{"http://127.0.0.1:1", e.ts.URL}}
		got, err := tl.View(context.Background(), "ch")
		if err != nil || len(got.Tracks) != len(v.Tracks) {
			t.Errorf("OriginTimeline: %v %d tracks", err, len(got.Tracks))
		}
		if _, err := tl.View(context.Background(), "nope"); err == nil {
			t.Error("unknown point: no error")
		}
	}
}
