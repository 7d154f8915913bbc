package origin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/clusterauth"
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
// its index only to requests signed with the cluster key (401 with the
// reason otherwise, before it says whether the point exists); the
// scheduler's client signs them. The secret itself is refused as a header.
func TestViewJSONNeedsClusterSecret(t *testing.T) {
	const secret = "s3cret"
	e := newEnvWith(t, t.TempDir(), func(c *config.Config) { c.Cluster.Secret = secret })
	e.push(true)
	sig := func(key string) []string {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/ch.isml/view.json", nil)
		clusterauth.NewKeys([]byte(key)).Sign(req, time.Now())
		return []string{clusterauth.Header, req.Header.Get(clusterauth.Header)}
	}
	signedFor := func(path string) []string {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		clusterauth.NewKeys([]byte(secret)).Sign(req, time.Now())
		return []string{clusterauth.Header, req.Header.Get(clusterauth.Header)}
	}
	for _, c := range []struct {
		name, path string
		hdr        []string
		want       int
		reason     string
	}{
		{"unsigned", "/ch.isml/view.json", nil, 401, "unsigned"},
		{"the secret in clear", "/ch.isml/view.json", []string{"Sluice-Cluster-Secret", secret}, 401, "unsigned"},
		{"another key", "/ch.isml/view.json", sig("nope"), 401, "bad_signature"},
		{"unknown point, unsigned", "/other.isml/view.json", nil, 401, "unsigned"},
		{"signed for another path", "/other.isml/view.json", sig(secret), 401, "bad_signature"},
		{"signed", "/ch.isml/view.json", signedFor("/ch.isml/view.json"), 200, ""},
		{"unknown point, signed", "/other.isml/view.json", signedFor("/other.isml/view.json"), 404, ""},
		{"manifests stay public", "/ch.isml/manifest.mpd", nil, 200, ""},
	} {
		resp, body := e.get(c.path, c.hdr...)
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
	if _, err := tl.View(ctx, "ch"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("OriginTimeline without the secret: %v, want a 401", err)
	}
}

// TestViewLongPoll: view.json with If-None-Match naming the current
// version and Prefer: wait is answered when the index changes (the
// scheduler's watch of a low-latency point, scheduler.OriginTimeline.Watch),
// else 304 once the wait is over.
func TestViewLongPoll(t *testing.T) {
	e := newEnv(t, t.TempDir())
	e.push(true)
	resp, _ := e.get("/ch.isml/view.json")
	etag := resp.Header.Get("ETag")
	t0 := time.Now()
	resp, _ = e.get("/ch.isml/view.json", "If-None-Match", etag, "Prefer", "wait=1")
	if took := time.Since(t0); resp.StatusCode != http.StatusNotModified || took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("unchanged index with Prefer: wait=1: %d after %v, want 304 after 1 s", resp.StatusCode, took)
	}
	tl := &scheduler.OriginTimeline{Origins: []string{e.ts.URL}}
	_, tag, changed, err := tl.Watch(context.Background(), "ch", "")
	if err != nil || !changed || tag != etag {
		t.Fatalf("first watch: tag %q changed %v %v, want %q", tag, changed, err, etag)
	}
	type result struct {
		v       store.View
		changed bool
		err     error
		took    time.Duration
	}
	done := make(chan result, 1)
	go func() {
		t0 := time.Now()
		v, _, changed, err := tl.Watch(context.Background(), "ch", tag)
		done <- result{v, changed, err, time.Since(t0)}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("the watch answered before the index changed: %+v", r)
	default:
	}
	e.push(false) // the same fragments, then the end: the index changes
	select {
	case r := <-done:
		if r.err != nil || !r.changed || !r.v.Ended || r.took > 3*time.Second {
			t.Errorf("watch: changed %v ended %v err %v after %v; want the ended index at once", r.changed, r.v.Ended, r.err, r.took)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("the watch was not answered when the index changed")
	}
}
