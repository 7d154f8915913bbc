package origin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/config"
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

// TestViewJSONNeedsClusterSecret: an origin with a cluster secret answers
// its index only to requests that carry it (403 with the reason
// otherwise, before it says whether the point exists); the scheduler's
// client sends it.
func TestViewJSONNeedsClusterSecret(t *testing.T) {
	const secret = "s3cret"
	e := newEnvWith(t, t.TempDir(), func(c *config.Config) { c.Cluster.Secret = secret })
	e.push(true)
	for _, c := range []struct {
		name, path, secret string
		want               int
		reason             string
	}{
		{"no secret", "/ch.isml/view.json", "", 403, "missing cluster secret"},
		{"wrong secret", "/ch.isml/view.json", "nope", 403, "wrong cluster secret"},
		{"unknown point, no secret", "/other.isml/view.json", "", 403, "missing cluster secret"},
		{"secret", "/ch.isml/view.json", secret, 200, ""},
		{"unknown point, secret", "/other.isml/view.json", secret, 404, ""},
		{"manifests stay public", "/ch.isml/manifest.mpd", "", 200, ""},
	} {
		var hdr []string
		if c.secret != "" {
			hdr = []string{cluster.SecretHeader, c.secret}
		}
		resp, body := e.get(c.path, hdr...)
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.reason) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, resp.StatusCode, body, c.want, c.reason)
		}
	}
	ctx := context.Background()
	tl := &scheduler.OriginTimeline{Origins: []string{e.ts.URL}, Secret: []byte(secret)}
	if v, err := tl.View(ctx, "ch"); err != nil || len(v.Tracks) == 0 {
		t.Errorf("OriginTimeline with the secret: %v, %d tracks", err, len(v.Tracks))
	}
	tl = &scheduler.OriginTimeline{Origins: []string{e.ts.URL}}
	if _, err := tl.View(ctx, "ch"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("OriginTimeline without the secret: %v, want a 403", err)
	}
}
