package ingest

// Push proxy: an ingest configured with a standby forwards every push it
// receives to the standby ingest, at the same path, so that the encoder
// uploads one copy and the standby holds identical fragments.
//
// Two modes, chosen per connection to the standby:
//
//   - tee: the request body, byte for byte as it arrives, through a bounded
//     queue. Used when a push starts and the standby already holds every
//     fragment the primary held before it. The queue never blocks the
//     primary: a standby that is down, refuses, or falls more than
//     standby_buffer bytes behind is dropped (logged, counted in
//     sluice_proxy_drops_total).
//   - follow: what GET Streams(<id>)/StartTime(<track>=<t>,...) on the
//     primary would return — the stored header, then the stored fragments
//     the standby lacks, then each new fragment of the push as it is
//     stored — sent as a push. Used when the standby is behind: at the
//     start of a push, and for every reconnection after a drop (retried
//     every 1–5 s for as long as the push lasts). Ingest normalisation is
//     idempotent, so the standby stores the same bytes as from a tee.
//
// So the primary pushes the gap: it knows its standby (configuration) and
// asks its StreamManifest what it lacks; the standby needs no configuration
// and never connects back. A forwarded push carries the Sluice-Proxy header
// and is not forwarded again, so two ingests may name each other as
// standby.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/store"
)

// Headers of a forwarded push.
const (
	// ProxyHeader marks a push forwarded by a primary ingest ("1").
	ProxyHeader = "Sluice-Proxy"
	// AnchorHeader carries the primary's anchor of the point (RFC 3339),
	// which the standby adopts.
	AnchorHeader = "Sluice-Anchor"
	// ModeHeader says what a forwarded push carries: "tee", the encoder's
	// body as received (judged for encoder restarts like the primary's,
	// from the same push start), or "follow", fragments from the primary's
	// store, already placed (stored as they are).
	ModeHeader = "Sluice-Proxy-Mode"
	// PushStartHeader carries the wall-clock start of the push at the
	// primary (RFC 3339), from which a restarted encoder's offset derives.
	PushStartHeader = "Sluice-Push-Start"
)

// defaultStandbyBuffer bounds the bytes queued for the standby in tee mode.
const defaultStandbyBuffer = 8 << 20

var (
	errDropped  = errors.New("proxy connection dropped")
	errRefused  = errors.New("standby refused the push")
	errAborted  = errors.New("the push failed at the primary")
	errAnswered = errors.New("standby answered")
)

// standby forwards pushes to one standby ingest.
type standby struct {
	h      *Handler
	base   string
	max    int64
	client *http.Client // forwarded pushes: no timeout
	query  *http.Client // StreamManifest of the standby
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	conns *prometheus.CounterVec // mode
	drops *prometheus.CounterVec // reason
	bytes prometheus.Counter

	// synced holds the streams ("point/stream") whose last forwarding
	// completed: the next push of such a stream is teed at once, without
	// asking the standby what it holds (one push per CMAF segment).
	mu     sync.Mutex
	synced map[string]bool
}

func (sb *standby) isSynced(key string) bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.synced[key]
}

func (sb *standby) setSynced(key string, ok bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if ok {
		sb.synced[key] = true
	} else {
		delete(sb.synced, key)
	}
}

func newStandby(h *Handler, base string, max int64, reg *prometheus.Registry) *standby {
	if max <= 0 {
		max = defaultStandbyBuffer
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := metrics.NewFactory(reg)
	sb := &standby{
		h: h, base: strings.TrimSuffix(base, "/"), max: max, log: h.log.With("standby", base),
		client: &http.Client{Transport: tr},
		query:  &http.Client{Transport: tr, Timeout: 3 * time.Second},
		ctx:    ctx, cancel: cancel, synced: map[string]bool{},
		conns: f.CounterVec("sluice_proxy_connections_total", "Connections of the push proxy to the standby ingest, by mode (tee: the push as received; follow: stored fragments the standby lacks, then the push).", "mode"),
		drops: f.CounterVec("sluice_proxy_drops_total", "Proxy connections to the standby dropped, by reason (buffer_full, standby_error, refused).", "reason"),
		bytes: f.Counter("sluice_proxy_bytes_total", "Body bytes forwarded to the standby ingest."),
	}
	if err := f.Err(); err != nil {
		panic(err) // names are fixed: only a programming error gets here
	}
	return sb
}

// close stops every forwarding in progress and waits briefly for them.
func (sb *standby) close() {
	sb.cancel()
	done := make(chan struct{})
	go func() { sb.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// start begins forwarding the push r (already authorised) of point/streamID.
// Every byte the push handler reads must then be written to the returned
// forward, and finish called at the end.
func (sb *standby) start(r *http.Request, point *store.Point, streamID string, pushStart time.Time) *forward {
	hdr := http.Header{}
	for _, k := range []string{"Authorization", "Content-Type"} {
		if v := r.Header.Get(k); v != "" {
			hdr.Set(k, v)
		}
	}
	hdr.Set("User-Agent", "sluice-proxy/1")
	hdr.Set(ProxyHeader, "1")
	hdr.Set(PushStartHeader, pushStart.UTC().Format(time.RFC3339Nano))
	info, _ := streamInfo(point, streamID)
	before := map[string]int64{}
	for _, id := range info.Tracks {
		if st, ok := point.Stats(id); ok && st.Count > 0 {
			before[id] = st.Last
		}
	}
	f := &forward{
		sb: sb, point: point, streamID: streamID, uri: r.URL.RequestURI(), hdr: hdr,
		before: before, tracks: info.Tracks, log: sb.log.With("point", point.Name, "stream", streamID),
		tee: true, done: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	sb.wg.Add(1)
	go f.run()
	return f
}

// forward is the forwarding of one push.
type forward struct {
	sb       *standby
	point    *store.Point
	streamID string
	uri      string
	hdr      http.Header
	before   map[string]int64  // the primary's newest start per track when the push began
	tracks   map[uint32]string // the stream's tracks then (nil: a new stream)
	log      *slog.Logger

	mu        sync.Mutex
	tee       bool // bytes are queued for a tee connection
	queue     [][]byte
	queued    int64
	teeCancel func() // aborts the tee connection
	failed    bool
	done      chan struct{} // closed by finish
	wake      chan struct{}
}

// Write queues p for the tee connection. It never blocks and never fails:
// when the queue would exceed its bound the tee connection is dropped.
func (f *forward) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.tee {
		if f.queued+int64(len(p)) > f.sb.max {
			f.dropLocked("buffer_full", fmt.Sprintf("standby more than %d bytes behind", f.sb.max))
		} else {
			f.queue = append(f.queue, append([]byte(nil), p...))
			f.queued += int64(len(p))
		}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// key names the forwarded stream in standby.synced.
func (f *forward) key() string { return f.point.Name + "/" + f.streamID }

// dropLocked ends tee mode; f.mu is held.
func (f *forward) dropLocked(reason, detail string) {
	if !f.tee {
		return
	}
	f.tee = false
	f.queue, f.queued = nil, 0
	if f.teeCancel != nil {
		f.teeCancel()
	}
	f.sb.setSynced(f.key(), false)
	f.sb.drops.WithLabelValues(reason).Inc()
	f.log.Warn("push proxy: standby connection dropped; the primary's ingest goes on", "reason", reason, "detail", detail)
}

func (f *forward) drop(reason, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(reason, detail)
}

// finish is called once the push handler has read the whole body (err nil)
// or failed (err set).
func (f *forward) finish(err error) {
	f.mu.Lock()
	f.failed = err != nil
	f.mu.Unlock()
	close(f.done)
}

func (f *forward) run() {
	defer f.sb.wg.Done()
	var err error
	behind := !f.sb.isSynced(f.key())
	if behind {
		// Not known to be in sync (the first push of the stream since this
		// process started, or one after a drop): ask the standby.
		var st *StreamStatus
		if st, err = f.standbyStatus(); err == nil {
			_, behind = resumeSpec(f.point, f.tracks, f.before, st)
		}
	}
	if err == nil {
		if !behind {
			err = f.runTee()
			f.sb.setSynced(f.key(), err == nil)
			if err == nil || errors.Is(err, errRefused) || errors.Is(err, errAborted) {
				return
			}
		} else {
			f.mu.Lock()
			f.tee, f.queue, f.queued = false, nil, 0
			f.mu.Unlock()
			f.log.Info("push proxy: the standby lacks fragments; sending them from the store")
		}
	}
	if err != nil {
		f.drop("standby_error", err.Error())
	}
	// Follow mode until the push is over; at least one attempt, so that a
	// standby dropped near the end of a push still catches up.
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if closed(f.done) || f.sb.ctx.Err() != nil {
				return
			}
			select {
			case <-f.sb.ctx.Done():
				return
			case <-f.done:
				// Over while the standby was away: the next push
				// catches it up.
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		err := f.runFollow()
		f.sb.setSynced(f.key(), err == nil)
		switch {
		case err == nil:
			if closed(f.done) {
				return
			}
			backoff = time.Second
		case errors.Is(err, errRefused):
			return
		default:
			if f.sb.ctx.Err() == nil {
				f.log.Info("push proxy: standby unreachable, retrying", "err", err, "in", backoff)
			}
		}
	}
}

// answer is the standby's response to a forwarded push.
type answer struct {
	status int
	body   string
	err    error
}

// post starts a forwarded push with body pr; the answer arrives on the
// returned channel, after which pr is closed.
func (f *forward) post(ctx context.Context, pr *io.PipeReader, anchor time.Time, mode string) (<-chan answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.sb.base+f.uri, pr)
	if err != nil {
		return nil, fmt.Errorf("proxy request: %w", err)
	}
	req.Header = f.hdr.Clone()
	req.Header.Set(ModeHeader, mode)
	if !anchor.IsZero() {
		req.Header.Set(AnchorHeader, anchor.UTC().Format(time.RFC3339Nano))
	}
	req.ContentLength = -1
	ch := make(chan answer, 1)
	go func() {
		resp, err := f.sb.client.Do(req)
		a := answer{err: err}
		if err == nil {
			a.status = resp.StatusCode
			a.body = snippet(resp.Body)
			resp.Body.Close()
		}
		pr.CloseWithError(errAnswered)
		ch <- a
	}()
	return ch, nil
}

// result turns the standby's answer into an error.
func (a answer) result() error {
	switch {
	case a.err != nil:
		return fmt.Errorf("standby: %w", a.err)
	case a.status >= 400 && a.status < 500 && a.status != http.StatusRequestTimeout && a.status != 499:
		return fmt.Errorf("%w: %d %s", errRefused, a.status, a.body)
	case a.status >= 300:
		return fmt.Errorf("standby answered %d: %s", a.status, a.body)
	}
	return nil
}

// await waits for the standby's answer after the body was ended.
func await(ch <-chan answer, cancel func()) answer {
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case a := <-ch:
		return a
	case <-t.C:
		cancel()
		a := <-ch
		if a.err == nil {
			a.err = errors.New("no answer within 30 s of the end of the body")
		}
		return a
	}
}

// waitAnchor waits, boundedly, until the point has an anchor to send along:
// at the start of a new channel the first fragment is still being stored.
func (f *forward) waitAnchor() time.Time {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		changed := f.point.Changed()
		if a := f.point.Meta().Anchor; !a.IsZero() {
			return a
		}
		f.mu.Lock()
		full := f.queued > f.sb.max/2 || !f.tee
		f.mu.Unlock()
		if full || closed(f.done) {
			return time.Time{}
		}
		select {
		case <-changed:
		case <-f.done:
		case <-deadline.C:
			return time.Time{}
		case <-f.sb.ctx.Done():
			return time.Time{}
		}
	}
}

// runTee forwards the queued body bytes until the push ends or the
// connection is dropped.
func (f *forward) runTee() error {
	anchor := f.waitAnchor()
	ctx, cancel := context.WithCancel(f.sb.ctx)
	defer cancel()
	pr, pw := io.Pipe()
	f.mu.Lock()
	if !f.tee {
		f.mu.Unlock()
		return errDropped
	}
	f.teeCancel = func() { cancel(); pr.CloseWithError(errDropped) }
	f.mu.Unlock()
	answers, err := f.post(ctx, pr, anchor, "tee")
	if err != nil {
		return err
	}
	f.sb.conns.WithLabelValues("tee").Inc()
	f.log.Info("push proxy: forwarding the push to the standby", "mode", "tee")
	var sent int64
	for {
		f.mu.Lock()
		chunks, tee, done, failed := f.queue, f.tee, closed(f.done), f.failed
		f.queue, f.queued = nil, 0
		f.mu.Unlock()
		if !tee {
			pw.CloseWithError(errDropped)
			<-answers
			return errDropped
		}
		for _, c := range chunks {
			if _, err := pw.Write(c); err != nil {
				a := <-answers
				if rerr := a.result(); errors.Is(rerr, errRefused) {
					f.drop("refused", rerr.Error())
					return rerr
				}
				f.drop("standby_error", err.Error())
				return fmt.Errorf("forward: %w", err)
			}
			sent += int64(len(c))
			f.sb.bytes.Add(float64(len(c)))
		}
		if done {
			if failed {
				// The standby would refuse what the primary refused; abort
				// rather than end the body cleanly.
				pw.CloseWithError(errAborted)
				<-answers
				return errAborted
			}
			pw.Close()
			a := await(answers, cancel)
			if err := a.result(); err != nil {
				f.drop("standby_error", err.Error())
				return err
			}
			f.log.Info("push proxy: push forwarded", "mode", "tee", "bytes", sent, "status", a.status)
			return nil
		}
		select {
		case <-f.wake:
		case <-f.done:
		case a := <-answers:
			// The standby answered before the body ended.
			pw.CloseWithError(errAnswered)
			err := a.result()
			if err == nil {
				err = fmt.Errorf("standby ended the push early with %d", a.status)
			}
			reason := "standby_error"
			if errors.Is(err, errRefused) {
				reason = "refused"
			}
			f.drop(reason, err.Error())
			return err
		}
	}
}

// runFollow sends the standby what it lacks of the stream, then follows the
// push from the primary's store until the push is over.
func (f *forward) runFollow() error {
	// The stream exists at the primary once the push's header is stored.
	var info store.StreamInfo
	for {
		changed := f.point.Changed()
		var ok bool
		if info, ok = streamInfo(f.point, f.streamID); ok {
			break
		}
		select {
		case <-changed:
		case <-f.done:
			if info, ok = streamInfo(f.point, f.streamID); !ok {
				return nil // the push stored nothing
			}
		case <-f.sb.ctx.Done():
			return f.sb.ctx.Err()
		}
		if ok {
			break
		}
	}
	st, err := f.standbyStatus()
	if err != nil {
		return err
	}
	spec, _ := resumeSpec(f.point, info.Tracks, nil, st)
	ctx, cancel := context.WithCancel(f.sb.ctx)
	defer cancel()
	pr, pw := io.Pipe()
	answers, err := f.post(ctx, pr, f.point.Meta().Anchor, "follow")
	if err != nil {
		return err
	}
	f.sb.conns.WithLabelValues("follow").Inc()
	f.log.Info("push proxy: catching the standby up", "mode", "follow", "from", fromList(spec.From))
	cw := &countWriter{w: pw, c: f.sb.bytes}
	werr := f.sb.h.writeStream(ctx, cw, nil, f.point, info, spec, f.done)
	if werr != nil {
		pw.CloseWithError(werr)
		a := <-answers
		if rerr := a.result(); errors.Is(rerr, errRefused) {
			f.sb.drops.WithLabelValues("refused").Inc()
			f.log.Warn("push proxy: standby refused the push", "err", rerr)
			return rerr
		}
		return fmt.Errorf("follow: %w", werr)
	}
	pw.Close()
	a := await(answers, cancel)
	if err := a.result(); err != nil {
		if errors.Is(err, errRefused) {
			f.sb.drops.WithLabelValues("refused").Inc()
			f.log.Warn("push proxy: standby refused the push", "err", err)
		}
		return err
	}
	f.log.Info("push proxy: standby caught up", "mode", "follow", "bytes", cw.n, "status", a.status)
	return nil
}

// standbyStatus asks the standby which fragments of the stream it holds;
// nil (and no error) when it holds nothing of it.
func (f *forward) standbyStatus() (*StreamStatus, error) {
	ctx, cancel := context.WithTimeout(f.sb.ctx, 3*time.Second)
	defer cancel()
	u := f.sb.base + "/" + f.point.Name + ".isml/StreamManifest"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("standby manifest request: %w", err)
	}
	if a := f.hdr.Get("Authorization"); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := f.sb.query.Do(req)
	if err != nil {
		return nil, fmt.Errorf("standby manifest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("standby manifest: %s", resp.Status)
	}
	var sm StreamManifest
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&sm); err != nil {
		return nil, fmt.Errorf("standby manifest: %w", err)
	}
	for _, s := range sm.Streams {
		if s.ID == f.streamID {
			return &s, nil
		}
	}
	return nil, nil
}

// resumeSpec is where a standby holding st (nil: nothing) must resume the
// stream made of tracks to hold everything the primary's point holds of it,
// and whether it lacks anything the primary held — when before is not nil,
// the newest start per track at some earlier moment (the start of a push).
// A track resumes after the standby's newest fragment when the standby holds
// as many fragments up to it as the primary does (no hole), else from the
// standby's first fragment (the copies it already has are recognised as
// duplicates).
func resumeSpec(point *store.Point, tracks map[uint32]string, before map[string]int64, st *StreamStatus) (StartSpec, bool) {
	spec := StartSpec{Header: true, From: map[string]int64{}}
	behind := false
	for _, id := range tracks {
		stats, _ := point.Stats(id)
		last, has := stats.Last, stats.Count > 0
		if before != nil {
			last, has = before[id]
		}
		var bt *TrackStatus
		if st != nil {
			for i := range st.Tracks {
				if st.Tracks[i].ID == id {
					bt = &st.Tracks[i]
				}
			}
		}
		if bt == nil || bt.Fragments == 0 {
			behind = behind || has
			continue
		}
		if point.Count(id, bt.First, bt.Last) == bt.Fragments {
			spec.From[id] = bt.Last + 1
			behind = behind || (has && last > bt.Last)
		} else {
			spec.From[id] = bt.First
			behind = true
		}
	}
	return spec, behind
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	c prometheus.Counter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.c.Add(float64(n))
	return n, err
}

// snippet reads the start of a response body for logs.
func snippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return strings.TrimSpace(string(b))
}

// fromList formats per-track resume points for logs ("start" for none).
func fromList(from map[string]int64) string {
	if len(from) == 0 {
		return "start"
	}
	return strings.TrimSuffix(strings.TrimPrefix(StartSpec{From: from}.Path(""), "Streams()/StartTime("), ")")
}
