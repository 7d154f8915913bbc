// Package push plays an MP4 file into an ingest the way a live Smooth
// Streaming (ismv) encoder does: one long chunked HTTP POST per stream,
// carrying ftyp, the live server manifest box, moov, then one moof+mdat per
// track and fragment period written in real time, and an empty mfra at the
// end.
//
// With epoch anchoring (the default for live use) the media time of every
// fragment is derived from the wall clock: the file is looped forever on a
// timeline that starts at the Unix epoch, pass k of the file starting at media
// time k*L (L the file's length). Two pushers started at different moments
// against two ingests therefore send identical fragments — same start times,
// same bytes — for the same wall-clock period, which is what redundant
// ingest needs to deduplicate.
package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sluice-media/sluice/internal/mp4src"
	"github.com/sluice-media/sluice/internal/pause"
)

// Options configures a push.
type Options struct {
	// URLs are the ingest URLs, e.g.
	// http://127.0.0.1:8080/live/demo.isml/Streams(demo). The first is used
	// first; with Retry the push fails over to the next one (round robin).
	URLs []string
	// Token is sent as "Authorization: Bearer <Token>" when not empty.
	Token string
	// Loop plays the file forever (until Duration or cancellation).
	Loop bool
	// Duration stops the push after this much media time, counted from the
	// start of the first fragment and rounded up to whole fragment periods.
	// Zero: one pass over the file (with Epoch it starts at the current
	// point of the wall-clock loop and wraps around), or forever with Loop.
	Duration time.Duration
	// Epoch anchors media times to the wall clock (see the package comment)
	// and starts at the next fragment boundary after now. Without it the
	// first fragment has time zero and is sent at once.
	Epoch bool
	// Fast sends as fast as the ingest reads instead of in real time.
	Fast bool
	// Chunk, when positive, sends each fragment as CMAF chunks of this
	// duration (a low-latency encoder): in real time, chunk k of a period
	// leaves once its end is reached on the wall clock — when a live
	// encoder has encoded its last sample — instead of the whole period
	// at its start. Periods resent after a reconnection go whole.
	Chunk time.Duration
	// Probe sends an empty POST first, so that a refused publishing point or
	// token is reported before any media is sent (MS-SSTR 3.3.3).
	Probe bool
	// Retry reconnects after a lost connection or a 5xx answer (to the next
	// URL, after RetryDelay), resending the header and the last two fragment
	// periods, as AZ-FMP4 asks of encoders. 4xx answers are final.
	Retry bool
	// RetryDelay is the pause before a reconnection; zero means one second.
	RetryDelay time.Duration
	// Client sends the requests; nil means a client without a timeout (the
	// request lasts as long as the push).
	Client *http.Client
	// Log receives events; nil discards them.
	Log *slog.Logger
	// Progress, when not nil, receives a progress bar for a finite push.
	Progress io.Writer
}

// Result summarises a push.
type Result struct {
	Periods   int   // fragment periods sent (each one fragment per track)
	Fragments int   // moof+mdat pairs sent
	Bytes     int64 // body bytes sent, over all connections
	// First and End are the media times, in the file's reference timescale
	// (Timescale), of the start of the first period sent and the end of the
	// last one.
	First, End int64
	Timescale  uint32
	// Status is the HTTP status line of the last answer ("200 OK").
	Status string
	// Connections counts the POSTs that carried media.
	Connections int
}

// StatusError is an ingest's answer that ended a push.
type StatusError struct {
	URL    string
	Code   int
	Status string // "403 Forbidden"
	Body   string // the start of the response body
	Early  bool   // answered before the end of the stream
}

func (e *StatusError) Error() string {
	var b strings.Builder
	if e.Early {
		fmt.Fprintf(&b, "ingest %s ended the stream early with %s", e.URL, e.Status)
	} else {
		fmt.Fprintf(&b, "ingest %s answered %s", e.URL, e.Status)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": %s", e.Body)
	}
	return b.String()
}

// errConnection marks a lost connection (no usable HTTP answer).
var errConnection = errors.New("connection lost")

// pos is a fragment period on the looped timeline: pass k, period i.
type pos struct {
	k int64
	i int
}

func (p pos) next(n int) pos {
	if p.i+1 < n {
		return pos{p.k, p.i + 1}
	}
	return pos{p.k + 1, 0}
}

func (p pos) prev(n int) pos {
	if p.i > 0 {
		return pos{p.k, p.i - 1}
	}
	return pos{p.k - 1, n - 1}
}

// pusher holds the state of one push across connections.
type pusher struct {
	src   *mp4src.Source
	opts  Options
	log   *slog.Logger
	loop  int64 // L in reference ticks
	n     int   // periods per pass
	base  time.Time
	first pos
	limit int64 // stop before a period starting at or after this time (ticks); -1 none
	res   Result
	bar   *progressbar.ProgressBar
}

// Push streams src to the ingest until the file (or Duration) is done, or
// ctx is cancelled; either way the stream is ended cleanly with an empty
// mfra and the ingest's answer is awaited.
func Push(ctx context.Context, src *mp4src.Source, opts Options) (Result, error) {
	if len(opts.URLs) == 0 {
		return Result{}, errors.New("push: no ingest URL")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	p := &pusher{src: src, opts: opts, log: opts.Log, loop: src.LoopTicks(), n: src.Periods(), limit: -1}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.res.Timescale = src.Timescale()
	p.first = p.startPos(time.Now())
	start := p.ticks(p.first)
	p.res.First, p.res.End = start, start
	var total int64 = -1
	switch {
	case opts.Duration > 0:
		total = mp4src.DurationToTicks(opts.Duration, src.Timescale())
	case !opts.Loop:
		total = p.loop
	}
	if total >= 0 {
		p.limit = start + total
	}
	if opts.Progress != nil && total > 0 {
		p.bar = newBar(opts.Progress, total*1000/int64(src.Timescale()))
	}
	p.log.Info("push starting", "file", src.Path(), "url", opts.URLs[0], "epoch", opts.Epoch,
		"loop", opts.Loop, "first_media_time", start, "timescale", src.Timescale(),
		"starts_in", time.Until(p.wall(p.first)).Round(time.Millisecond))

	err := p.run(ctx)
	if p.bar != nil {
		if err == nil && ctx.Err() == nil {
			_ = p.bar.Finish()
		} else {
			_ = p.bar.Exit() // keep the bar where the push stopped
		}
		fmt.Fprintln(opts.Progress)
	}
	if err != nil {
		p.log.Error("push failed", "err", err, "periods", p.res.Periods)
		return p.res, err
	}
	p.log.Info("push finished", "periods", p.res.Periods, "fragments", p.res.Fragments,
		"bytes", p.res.Bytes, "status", p.res.Status)
	return p.res, nil
}

// startPos is the first period to send.
func (p *pusher) startPos(now time.Time) pos {
	if !p.opts.Epoch {
		p.base = now
		return pos{0, 0}
	}
	ts := int64(p.src.Timescale())
	nowTicks := mp4src.MulDivFloor(now.UnixNano(), ts, int64(time.Second))
	k := nowTicks / p.loop
	for i := 0; i < p.n; i++ {
		if k*p.loop+p.src.PeriodStart(i) >= nowTicks {
			return pos{k, i}
		}
	}
	return pos{k + 1, 0}
}

// ticks is the media start time of a period in reference ticks.
func (p *pusher) ticks(q pos) int64 { return q.k*p.loop + p.src.PeriodStart(q.i) }

// wall is the wall-clock time at which a period is sent.
func (p *pusher) wall(q pos) time.Time {
	ts := int64(p.src.Timescale())
	if p.opts.Epoch {
		return time.Unix(0, mp4src.MulDivRound(p.ticks(q), int64(time.Second), ts))
	}
	return p.base.Add(mp4src.TicksToDuration(p.ticks(q), uint32(ts)))
}

// run drives connections until the push is over.
func (p *pusher) run(ctx context.Context) error {
	next := p.first
	resend := 0
	for attempt := 0; ; attempt++ {
		url := p.opts.URLs[attempt%len(p.opts.URLs)]
		if p.opts.Probe {
			if err := p.probe(ctx, url); err != nil {
				if !p.retryable(ctx, err) {
					return err
				}
				p.log.Warn("probe failed, retrying", "url", url, "err", err, "in", p.opts.RetryDelay)
				if pause.For(ctx, p.opts.RetryDelay) != nil {
					return ctx.Err()
				}
				continue
			}
		}
		var err error
		next, err = p.session(ctx, url, next, resend)
		if err == nil {
			return nil
		}
		if !p.retryable(ctx, err) {
			return err
		}
		// Resend the last two periods on the next connection, so that an
		// ingest that lost the end of the previous one has no gap.
		resend = 2
		p.log.Warn("stream interrupted, reconnecting", "url", url, "err", err, "in", p.opts.RetryDelay)
		if pause.For(ctx, p.opts.RetryDelay) != nil {
			return fmt.Errorf("cancelled while reconnecting after: %w", err)
		}
	}
}

func (p *pusher) retryable(ctx context.Context, err error) bool {
	if !p.opts.Retry || ctx.Err() != nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		// 5xx, or an ingest that ended the stream early without refusing it.
		return se.Code >= 500 || (se.Early && se.Code < 300)
	}
	return errors.Is(err, errConnection)
}

// probe sends the empty POST that asks whether the point accepts a stream.
func (p *pusher) probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, http.NoBody)
	if err != nil {
		return fmt.Errorf("probe request: %w", err)
	}
	p.headers(req)
	resp, err := p.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w: %w", url, errConnection, err)
	}
	body := snippet(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return &StatusError{URL: url, Code: resp.StatusCode, Status: resp.Status, Body: body}
	}
	p.log.Info("probe accepted", "url", url, "status", resp.Status)
	return nil
}

func (p *pusher) headers(req *http.Request) {
	req.Header.Set("Content-Type", "video/mp4")
	req.Header.Set("User-Agent", "sluice-push/1")
	if p.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.opts.Token)
	}
}

type answer struct {
	resp *http.Response
	body string
	err  error
}

// session sends one POST: the header, resend already-sent periods before
// next, then periods from next on, paced. It returns the first period not
// yet sent.
func (p *pusher) session(ctx context.Context, url string, next pos, resend int) (pos, error) {
	// The request outlives ctx: on cancellation the body is ended cleanly
	// (mfra, last chunk) and the answer awaited; reqCancel aborts it when
	// that takes too long.
	reqCtx, reqCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer reqCancel()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, url, pr)
	if err != nil {
		return next, fmt.Errorf("request: %w", err)
	}
	p.headers(req)
	req.ContentLength = -1 // chunked
	answers := make(chan answer, 1)
	go func() {
		resp, err := p.opts.Client.Do(req)
		a := answer{resp: resp, err: err}
		if err == nil {
			a.body = snippet(resp.Body)
			resp.Body.Close()
		}
		// A write blocked on a server that stopped reading fails now.
		pr.CloseWithError(errors.New("ingest answered"))
		answers <- a
	}()
	p.res.Connections++
	p.log.Info("connected", "url", url, "resend_periods", resend)

	var got *answer
	write := func(b []byte) error {
		n, err := pw.Write(b)
		p.res.Bytes += int64(n)
		return err
	}
	// stopWatch aborts the request if a cancelled push cannot end its
	// body in time (a server that stopped reading).
	stopWatch := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(15*time.Second, reqCancel)
		<-reqCtx.Done()
		t.Stop()
	})
	defer stopWatch()

	werr := write(p.src.Header())
	var buf bytes.Buffer
	// Periods already sent on a previous connection go out at once.
	start := next
	for r := 0; r < resend && p.ticks(start.prev(p.n)) >= p.ticks(p.first); r++ {
		start = start.prev(p.n)
	}
	q := start
	cancelled := false
	for werr == nil {
		if p.limit >= 0 && p.ticks(q) >= p.limit {
			break
		}
		if ctx.Err() != nil {
			cancelled = true
			break
		}
		if wait := time.Until(p.wall(q)); q == next && !p.opts.Fast && wait > 0 {
			// Real time: a period is sent when its start is reached on
			// the wall clock.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				cancelled = true
			case a := <-answers:
				got = &a
			case <-t.C:
			}
			t.Stop()
			if cancelled || got != nil {
				break
			}
		}
		buf.Reset()
		// Periods sent again after a reconnection go whole: the ingest
		// holds them already, and as chunks the first would be split
		// where the stored fragment is not (see media.Assembler).
		if p.opts.Chunk > 0 && (q == next || p.opts.Fast) {
			chunks, err := p.src.PeriodChunks(q.k*p.loop, q.i, p.opts.Chunk)
			if err != nil {
				pw.CloseWithError(err)
				return next, fmt.Errorf("build chunks: %w", err)
			}
			end := p.wall(q.next(p.n))
			for k, c := range chunks {
				if q == next && !p.opts.Fast {
					at := p.wall(q).Add(time.Duration(k+1) * p.opts.Chunk)
					if at.After(end) {
						at = end
					}
					if cancelled, got = p.sleepUntil(ctx, at, answers); cancelled || got != nil {
						break
					}
				}
				if werr = write(c); werr != nil {
					break
				}
				buf.Write(c)
			}
			if cancelled || got != nil || werr != nil {
				break
			}
		} else {
			if _, err := p.src.WritePeriod(&buf, q.k*p.loop, q.i); err != nil {
				pw.CloseWithError(err)
				return next, fmt.Errorf("build fragments: %w", err)
			}
			if werr = write(buf.Bytes()); werr != nil {
				break
			}
		}
		if q == next {
			p.res.Periods++
			p.res.Fragments += len(p.src.Tracks())
			p.res.End = p.ticks(q) + (p.src.PeriodStart(q.i+1) - p.src.PeriodStart(q.i))
			if p.bar != nil {
				_ = p.bar.Set64((p.res.End - p.ticks(p.first)) * 1000 / int64(p.src.Timescale()))
			}
			p.log.Debug("period sent", "pass", q.k, "period", q.i, "media_time", p.ticks(q), "bytes", buf.Len())
			next = q.next(p.n)
		}
		q = q.next(p.n)
	}
	if cancelled {
		p.log.Info("cancelled, ending the stream")
	}
	answeredEarly := got != nil
	if got == nil && werr == nil {
		// Normal end (file done, duration reached or cancelled): the
		// empty mfra, then the last chunk.
		werr = write(mp4src.EndBox())
	}
	pw.Close()
	if got == nil {
		t := time.NewTimer(30 * time.Second)
		select {
		case a := <-answers:
			got = &a
		case <-t.C:
			reqCancel()
			a := <-answers
			got = &a
			if got.err == nil {
				got.err = errors.New("no answer within 30 s of the end of the body")
			}
		}
		t.Stop()
	}
	if got.err != nil {
		if werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
			return next, fmt.Errorf("%s: %w: %w", url, errConnection, werr)
		}
		return next, fmt.Errorf("%s: %w: %w", url, errConnection, got.err)
	}
	p.res.Status = got.resp.Status
	// The answer came before the body ended, or the body could not be
	// written: the ingest ended the stream.
	early := werr != nil || answeredEarly
	if early || got.resp.StatusCode >= 300 {
		return next, &StatusError{URL: url, Code: got.resp.StatusCode, Status: got.resp.Status, Body: got.body, Early: early}
	}
	p.log.Info("ingest answered", "url", url, "status", got.resp.Status)
	return next, nil
}

// sleepUntil waits until at, the push's cancellation or the ingest's
// answer, whichever comes first.
func (p *pusher) sleepUntil(ctx context.Context, at time.Time, answers <-chan answer) (cancelled bool, got *answer) {
	wait := time.Until(at)
	if wait <= 0 {
		return false, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true, nil
	case a := <-answers:
		return false, &a
	case <-t.C:
		return false, nil
	}
}

// snippet reads the start of a response body for error messages.
func snippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return strings.TrimSpace(string(b))
}

// newBar draws a progress bar of media milliseconds on w.
func newBar(w io.Writer, totalMs int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(totalMs,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("pushing (media ms)"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
	)
}
