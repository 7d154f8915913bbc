package distribution

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// keptHeaders are the response headers passed from an origin to clients
// (and kept in the cache). Hop-by-hop headers, Date and per-connection
// headers such as CMSD-Dynamic are not.
var keptHeaders = []string{
	"Content-Type", "Cache-Control", "Etag", "Last-Modified", "Expires", "Content-Language",
	"Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Cmsd-Static", "Location",
}

func keep(h http.Header) http.Header {
	out := make(http.Header, len(keptHeaders))
	for _, k := range keptHeaders {
		if v := h.Values(k); len(v) > 0 {
			out[k] = append([]string(nil), v...)
		}
	}
	return out
}

// originState is one origin with its circuit breaker.
type originState struct {
	base string // scheme://host[:port][/prefix], without a trailing slash

	mu        sync.Mutex
	fails     int
	downUntil time.Time
}

// upstream fetches from the origins with failover.
type upstream struct {
	origins []*originState
	client  *http.Client
	// blocking is client for requests an origin may hold (LL-HLS blocking
	// reloads and hinted parts): its header timeout is blockingWait.
	blocking *http.Client
	timeout  time.Duration
	backoff  time.Duration
	m        *metricSet
	log      *slog.Logger
	now      func() time.Time
	// query, when set, returns a query string ("st=…") added to every
	// fetch: the token of an origin that requires signed URLs.
	query func() string
}

func newUpstream(bases []string, timeout, backoff time.Duration, m *metricSet, log *slog.Logger) (*upstream, error) {
	if len(bases) == 0 {
		return nil, errors.New("no origin configured")
	}
	u := &upstream{timeout: timeout, backoff: backoff, m: m, log: log, now: time.Now}
	for _, b := range bases {
		pu, err := url.Parse(b)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("origin %q: want an http(s) base URL", b)
		}
		o := &originState{base: strings.TrimSuffix(pu.Scheme+"://"+pu.Host+pu.EscapedPath(), "/")}
		u.origins = append(u.origins, o)
		m.originUp.WithLabelValues(o.base).Set(1)
	}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout: timeout,
			// TCP keep-alives keep idle connections (sparse tracks) alive
			// through middleboxes; KeepAlive requests keep them open at the
			// origin (see Proxy.keepAlive).
			KeepAlive: 15 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       5 * time.Minute,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	u.client = &http.Client{
		Transport: tr,
		// Redirects are passed on, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	btr := tr.Clone()
	btr.ResponseHeaderTimeout = max(timeout, blockingWait)
	u.blocking = &http.Client{Transport: btr, CheckRedirect: u.client.CheckRedirect}
	return u, nil
}

// blockingWait bounds the wait for the answer to a request the origin may
// hold: three target durations of up to 6 s, and some (the origin answers
// 503 after three).
const blockingWait = 20 * time.Second

// close drops the idle upstream connections.
func (u *upstream) close() {
	u.client.CloseIdleConnections()
	u.blocking.CloseIdleConnections()
}

// order returns the origins to try: those not in back-off in configured
// order, then those in back-off, soonest back first. A request never fails
// only because every breaker is open.
func (u *upstream) order() []*originState {
	now := u.now()
	var up, down []*originState
	for _, o := range u.origins {
		o.mu.Lock()
		d := now.Before(o.downUntil)
		o.mu.Unlock()
		if d {
			down = append(down, o)
		} else {
			up = append(up, o)
		}
	}
	sort.SliceStable(down, func(i, j int) bool {
		down[i].mu.Lock()
		a := down[i].downUntil
		down[i].mu.Unlock()
		down[j].mu.Lock()
		b := down[j].downUntil
		down[j].mu.Unlock()
		return a.Before(b)
	})
	return append(up, down...)
}

// ready reports whether some origin is not in back-off.
func (u *upstream) ready() bool {
	now := u.now()
	for _, o := range u.origins {
		o.mu.Lock()
		d := now.Before(o.downUntil)
		o.mu.Unlock()
		if !d {
			return true
		}
	}
	return false
}

// failed opens the breaker of o: backoff, doubling per consecutive
// failure up to 8 times backoff.
func (u *upstream) failed(o *originState, err error) {
	o.mu.Lock()
	o.fails++
	pause := u.backoff << min(o.fails-1, 3)
	o.downUntil = u.now().Add(pause)
	fails := o.fails
	o.mu.Unlock()
	u.m.originUp.WithLabelValues(o.base).Set(0)
	u.log.Warn("origin failed", "origin", o.base, "err", err, "consecutive", fails, "backoff", pause)
}

// succeeded closes the breaker of o.
func (u *upstream) succeeded(o *originState) {
	o.mu.Lock()
	was := o.fails
	o.fails, o.downUntil = 0, time.Time{}
	o.mu.Unlock()
	if was > 0 {
		u.m.originUp.WithLabelValues(o.base).Set(1)
		u.log.Info("origin back", "origin", o.base)
	}
}

// fetchResult describes the response a flight got.
type fetchResult struct {
	origin      string
	status      int
	received    time.Time
	age         time.Duration // upstream Age header
	revalidated bool          // 304 to a revalidation: the stale body stands
}

// errResume means a response broke off and no origin could continue it.
var errResume = errors.New("response broke off and could not be resumed")

// fetch GETs path from the origins into f, failing over on connection
// errors, timeouts and 5xx answers, and on 404 too when retry404 is set (a
// fragment the manifest lists must exist; another origin may have it). A
// body that breaks off is resumed from the next origin with a Range request
// guarded by If-Range (origins serve identical bytes under identical
// ETags). With f.stale set the request revalidates it (If-None-Match).
//
// blocking marks a request the origin may hold until what it asks for
// exists (an LL-HLS blocking reload or a hinted part): it may wait
// blockingWait for the answer, and the origin's 503 when that never came
// (three target durations: the encoder stalled) is passed on, not taken
// for a failing origin.
func (u *upstream) fetch(ctx context.Context, f *flight, path string, retry404, blocking bool) (fetchResult, error) {
	var (
		res     fetchResult
		started bool
		etag    string
		lastErr error = errUpstream
		// fallback is a 404 kept while other origins are asked.
		fallback *http.Response
		fbody    []byte
	)
	origins := u.order()
	for i, o := range origins {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if i > 0 {
			u.m.failovers.Inc()
		}
		actx, cancel := context.WithCancel(ctx)
		target := o.base + path
		if u.query != nil {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			target += sep + u.query()
		}
		req, err := http.NewRequestWithContext(actx, http.MethodGet, target, nil)
		if err != nil {
			cancel()
			return res, fmt.Errorf("upstream request: %w", err)
		}
		req.Header.Set("User-Agent", "sluice-distribution")
		got := f.size()
		switch {
		case started:
			req.Header.Set("Range", "bytes="+strconv.FormatInt(got, 10)+"-")
			req.Header.Set("If-Range", etag)
		case f.stale != nil && f.stale.header.Get("Etag") != "":
			req.Header.Set("If-None-Match", f.stale.header.Get("Etag"))
		}
		// The header timeout is the transport's; a stalled body is cut by
		// this idle timer, reset at every read.
		client, wait := u.client, u.timeout
		if blocking {
			client, wait = u.blocking, max(u.timeout, blockingWait)
		}
		idle := time.AfterFunc(wait, cancel)
		resp, err := client.Do(req)
		if err != nil {
			idle.Stop()
			cancel()
			u.m.upstream.WithLabelValues(o.base, "error").Inc()
			u.failed(o, err)
			lastErr = fmt.Errorf("%s: %w", o.base, err)
			continue
		}
		code := resp.StatusCode
		if code >= 500 && !(blocking && code == http.StatusServiceUnavailable) {
			idle.Stop()
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			u.m.upstream.WithLabelValues(o.base, "5xx").Inc()
			u.failed(o, fmt.Errorf("status %d", code))
			lastErr = fmt.Errorf("%s: status %d", o.base, code)
			continue
		}
		u.succeeded(o)
		if started {
			// Resuming: only a 206 that continues at the right byte will do.
			cr := resp.Header.Get("Content-Range")
			if code != http.StatusPartialContent || !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(got, 10)+"-") {
				idle.Stop()
				resp.Body.Close()
				cancel()
				u.m.upstream.WithLabelValues(o.base, "resume_refused").Inc()
				return res, errResume
			}
			u.m.upstream.WithLabelValues(o.base, "resumed").Inc()
		} else {
			if code == http.StatusNotFound && retry404 && i < len(origins)-1 {
				// Keep the answer in case no other origin has it either.
				fbody, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				idle.Stop()
				cancel()
				if fallback == nil {
					fallback = resp
				}
				u.m.upstream.WithLabelValues(o.base, "404_retry").Inc()
				continue
			}
			res = fetchResult{origin: o.base, status: code, received: u.now()}
			if a, err := strconv.Atoi(resp.Header.Get("Age")); err == nil && a > 0 {
				res.age = time.Duration(a) * time.Second
			}
			if code == http.StatusNotModified && f.stale != nil {
				idle.Stop()
				resp.Body.Close()
				cancel()
				u.m.upstream.WithLabelValues(o.base, "304").Inc()
				h := f.stale.header.Clone()
				for k, v := range keep(resp.Header) {
					h[k] = v
				}
				res.status, res.revalidated = f.stale.status, true
				f.start(f.stale.status, h, int64(len(f.stale.body)))
				f.write(f.stale.body)
				return res, nil
			}
			outcome := "ok"
			if code >= 400 {
				outcome = "4xx"
			}
			u.m.upstream.WithLabelValues(o.base, outcome).Inc()
			length := int64(-1)
			if code == http.StatusOK {
				length = resp.ContentLength
			}
			etag = resp.Header.Get("Etag")
			f.start(code, keep(resp.Header), length)
			started = true
		}
		err = u.copyBody(f, resp.Body, idle)
		idle.Stop()
		resp.Body.Close()
		cancel()
		if err == nil {
			return res, nil
		}
		u.m.upstream.WithLabelValues(o.base, "broken").Inc()
		u.failed(o, err)
		lastErr = fmt.Errorf("%s: body: %w", o.base, err)
		if etag == "" || res.status != http.StatusOK || strings.HasPrefix(etag, "W/") {
			return res, fmt.Errorf("%w: %w", errResume, lastErr)
		}
	}
	if fallback != nil && !started {
		res = fetchResult{origin: "", status: fallback.StatusCode, received: u.now()}
		f.start(fallback.StatusCode, keep(fallback.Header), -1)
		f.write(fbody)
		return res, nil
	}
	if started {
		return res, fmt.Errorf("%w: %w", errResume, lastErr)
	}
	return res, lastErr
}

// copyBody copies an upstream body into the flight, resetting the idle
// timer at every read.
func (u *upstream) copyBody(f *flight, body io.Reader, idle *time.Timer) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			idle.Reset(u.timeout)
			f.write(buf[:n])
			u.m.upstreamBytes.Add(float64(n))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ping asks every origin for /healthz: it keeps one idle connection per
// origin open and closes the breaker of an origin that is back.
func (u *upstream) ping(ctx context.Context) {
	for _, o := range u.origins {
		pctx, cancel := context.WithTimeout(ctx, u.timeout)
		req, _ := http.NewRequestWithContext(pctx, http.MethodGet, o.base+"/healthz", nil)
		req.Header.Set("User-Agent", "sluice-distribution")
		resp, err := u.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			if resp.StatusCode < 500 {
				u.succeeded(o)
			} else {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil && ctx.Err() == nil {
			u.failed(o, err)
		}
		cancel()
	}
}
