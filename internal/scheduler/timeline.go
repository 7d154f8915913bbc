package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/store"
)

// Timeline gives the fragment index of publishing points.
type Timeline interface {
	// View returns the index of a point: cut to its DVR window while the
	// point is live, whole otherwise (what the origin's manifests list). An
	// unknown point gives an error wrapping store.ErrNotFound.
	View(ctx context.Context, point string) (store.View, error)
}

// A Watcher is a Timeline that can wait for a point's index to change: a
// scheduler keeps one watch per low-latency point, so that it lists each
// part the moment the origin keeps it, without polling.
type Watcher interface {
	// Watch returns the point's index and its version tag once its version
	// differs from since ("": at once). changed is false when the index
	// stayed the same until the wait ended (some seconds; the View is then
	// empty).
	Watch(ctx context.Context, point, since string) (v store.View, tag string, changed bool, err error)
}

// watchWait is how long one watch waits for a change before it answers
// unchanged.
const watchWait = 10 * time.Second

// StoreTimeline reads a local store: the scheduler that runs in the same
// process as the origin (sluice serve).
type StoreTimeline struct {
	Store *store.Store
	// DVR returns the DVR window of a point (0: all of it).
	DVR func(point string) time.Duration
}

// View implements Timeline.
func (t StoreTimeline) View(_ context.Context, name string) (store.View, error) {
	p, err := t.Store.Point(name)
	if err != nil {
		return store.View{}, err
	}
	var w time.Duration
	if t.DVR != nil {
		w = t.DVR(name)
	}
	v := p.View(w)
	if !manifest.Live(v) && w > 0 {
		v = p.View(0)
	}
	return v, nil
}

// Watch implements Watcher: it waits on the store's point itself (the tag
// is viewKey of the index, which covers what manifests list, parts
// included).
func (t StoreTimeline) Watch(ctx context.Context, name, since string) (store.View, string, bool, error) {
	p, err := t.Store.Point(name)
	if err != nil {
		return store.View{}, "", false, err
	}
	timer := time.NewTimer(watchWait)
	defer timer.Stop()
	for {
		changed := p.Changed()
		v, err := t.View(ctx, name)
		if err != nil {
			return store.View{}, "", false, err
		}
		if tag := viewKey(v); tag != since {
			return v, tag, true, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return store.View{}, since, false, nil
		case <-ctx.Done():
			return store.View{}, since, false, ctx.Err()
		}
	}
}

// OriginTimeline asks origins for GET /<point>.isml/view.json (the origin's
// index as JSON, see internal/origin), trying them in order and starting
// with the one that answered last.
type OriginTimeline struct {
	Origins []string // base URLs, http://host:port
	Client  *http.Client
	// Secret is the cluster secret: requests are signed with the key
	// derived from it (internal/clusterauth), and an origin with a cluster
	// secret answers the index only to signed requests.
	Secret []byte

	mu   sync.Mutex
	good int
	// What the origins said last (Ready): when, the error (nil: an
	// origin answered the index), and the last point asked for.
	checked   time.Time
	readyErr  error
	lastPoint string
	probeMu   sync.Mutex // one readiness probe at a time
}

// readyMaxAge is how old the last word of the origins may be before Ready
// asks again.
const readyMaxAge = 5 * time.Second

// Ready reports whether an origin answered the index lately: nil when the
// last request for a view was answered (the view, or 404 for an unknown
// point), else why not (no origin reachable, 403 for a wrong cluster
// secret, ...). When the last answer is older than 5 s (no sessions ask
// for views) it asks an origin again, for the last point asked for, at
// most 2 s.
func (t *OriginTimeline) Ready() error {
	t.probeMu.Lock()
	defer t.probeMu.Unlock()
	t.mu.Lock()
	stale := time.Since(t.checked) > readyMaxAge
	point := t.lastPoint
	t.mu.Unlock()
	if stale {
		if point == "" {
			point = "readyz"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.View(ctx, point)
		cancel()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.checked.IsZero() {
		return errors.New("no origin asked for the index yet")
	}
	return t.readyErr
}

// record keeps the outcome of a view request for Ready.
func (t *OriginTimeline) record(point string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.checked = time.Now()
	t.readyErr = nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.readyErr = fmt.Errorf("no origin answered the index: %w", err)
	}
	if point != "readyz" || t.lastPoint == "" {
		t.lastPoint = point
	}
}

// maxView bounds a view document (a long on-demand asset is a few MB).
const maxView = 64 << 20

// View implements Timeline.
func (t *OriginTimeline) View(ctx context.Context, point string) (store.View, error) {
	if len(t.Origins) == 0 {
		return store.View{}, errors.New("no origin configured")
	}
	v, err := t.view(ctx, point)
	t.record(point, err)
	return v, err
}

func (t *OriginTimeline) view(ctx context.Context, point string) (store.View, error) {
	t.mu.Lock()
	first := t.good
	t.mu.Unlock()
	var errs []error
	for i := range t.Origins {
		k := (first + i) % len(t.Origins)
		v, err := t.fetch(ctx, t.Origins[k], point)
		if err == nil {
			t.mu.Lock()
			t.good = k
			t.mu.Unlock()
			return v, nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return v, err
		}
		errs = append(errs, err)
	}
	return store.View{}, fmt.Errorf("view of %q: %w", point, errors.Join(errs...))
}

func (t *OriginTimeline) fetch(ctx context.Context, base, point string) (store.View, error) {
	u := strings.TrimRight(base, "/") + "/" + escapePoint(point) + ".isml/view.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return store.View{}, err
	}
	if len(t.Secret) > 0 {
		if err := clusterauth.NewKeys(t.Secret).Sign(req, time.Now()); err != nil {
			return store.View{}, err
		}
	}
	c := t.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return store.View{}, fmt.Errorf("origin %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return store.View{}, fmt.Errorf("origin %s: point %q: %w", base, point, store.ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return store.View{}, fmt.Errorf("origin %s: view of %q: %s: %s", base, point, resp.Status, strings.TrimSpace(string(msg)))
	}
	var v store.View
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxView)).Decode(&v); err != nil {
		return store.View{}, fmt.Errorf("origin %s: view of %q: %w", base, point, err)
	}
	return v, nil
}

// Watch implements Watcher with a long poll of the origin that answered
// last: GET view.json with If-None-Match: <since> and Prefer: wait=10
// (the origin answers when its index changes, else 304). The tag is the
// origin's ETag.
func (t *OriginTimeline) Watch(ctx context.Context, point, since string) (store.View, string, bool, error) {
	if len(t.Origins) == 0 {
		return store.View{}, "", false, errors.New("no origin configured")
	}
	t.mu.Lock()
	base := t.Origins[t.good%len(t.Origins)]
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, watchWait+5*time.Second)
	defer cancel()
	u := strings.TrimRight(base, "/") + "/" + escapePoint(point) + ".isml/view.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return store.View{}, "", false, err
	}
	if since != "" {
		req.Header.Set("If-None-Match", since)
		req.Header.Set("Prefer", "wait="+strconv.Itoa(int(watchWait/time.Second)))
	}
	if len(t.Secret) > 0 {
		if err := clusterauth.NewKeys(t.Secret).Sign(req, time.Now()); err != nil {
			return store.View{}, "", false, err
		}
	}
	c := t.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return store.View{}, "", false, fmt.Errorf("origin %s: %w", base, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		return store.View{}, since, false, nil
	case http.StatusOK:
	case http.StatusNotFound:
		return store.View{}, "", false, fmt.Errorf("origin %s: point %q: %w", base, point, store.ErrNotFound)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return store.View{}, "", false, fmt.Errorf("origin %s: view of %q: %s: %s", base, point, resp.Status, strings.TrimSpace(string(msg)))
	}
	var v store.View
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxView)).Decode(&v); err != nil {
		return store.View{}, "", false, fmt.Errorf("origin %s: view of %q: %w", base, point, err)
	}
	return v, resp.Header.Get("ETag"), true, nil
}

// escapePoint escapes each segment of a point name for a URL path.
func escapePoint(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
