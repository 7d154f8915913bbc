package player

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/pause"
)

// Defaults for Config fields left zero.
const (
	DefaultLiveDuration = 30 * time.Second
	DefaultStartup      = 2 * time.Second
	DefaultBuffer       = 6 * time.Second
	DefaultRetryDelay   = 250 * time.Millisecond
	DefaultStallTimeout = 30 * time.Second
	DefaultMaxObject    = 64 << 20
	DefaultTimeout      = 10 * time.Second
)

// Config configures one playback session.
type Config struct {
	// URL is the manifest URL.
	URL string
	// Format of the manifest; "" guesses from the URL.
	Format Format
	// Duration stops the session after this wall time. 0 plays a static
	// presentation to its end and a live one for DefaultLiveDuration.
	Duration time.Duration
	// Startup is the buffer (every kind) needed to start or resume playback.
	Startup time.Duration
	// Buffer is the target buffer: no fragment is fetched ahead beyond it.
	Buffer time.Duration
	// MaxBitrate caps the video rendition, bits/s; 0 means no cap.
	MaxBitrate int64
	// ABR tunes the rendition choice.
	ABR ABRConfig
	// Client sends every request; nil builds one with DefaultTimeout.
	Client *http.Client
	// SessionID identifies the session (CMCD sid); "" makes a random UUID.
	SessionID string
	// Hooks decorate every request, in order; OnResponse observe every
	// response. CMCDHook is the usual request hook.
	Hooks      []RequestHook
	OnResponse []ResponseHook
	// RetryDelay is the pause before the single retry of a failed request.
	RetryDelay time.Duration
	// StallTimeout ends a session that has made no playback progress (not
	// started, or stalled) for this long.
	StallTimeout time.Duration
	// MaxObject bounds the size of any one response body.
	MaxObject int64
	// Pacing configures the pacing request engine (docs/pacing.md): a pacing
	// specification with each fragment request, the server's CMSD read
	// back. Mode "" leaves it out entirely (no "pacing" in the report).
	Pacing PacingConfig
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Index is the session's number in a load test, copied to the report.
	Index int
	// LowLatency plays a low-latency manifest in low-latency mode
	// (lowlatency.go): LL-HLS blocking reloads, parts and preload hints,
	// LL-DASH segments read as they grow, the playback rate steered to the
	// target latency. Other manifests play in standard mode; the report
	// says which (Report.LowLatency).
	LowLatency bool
	// Progress, when set, receives a line per second in low-latency mode
	// (latency, playback rate, buffer, stalls) and the reason for a
	// fallback to standard mode.
	Progress io.Writer
}

func (c Config) withDefaults() Config {
	if c.Startup <= 0 {
		c.Startup = DefaultStartup
	}
	if c.Buffer <= 0 {
		c.Buffer = DefaultBuffer
	}
	if c.Buffer < c.Startup {
		c.Buffer = c.Startup // otherwise playback could never start
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.MaxObject <= 0 {
		c.MaxObject = DefaultMaxObject
	}
	if c.Client == nil {
		c.Client = NewClient(DefaultTimeout, 4)
	}
	if c.SessionID == "" {
		c.SessionID = newUUID()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// NewClient returns an HTTP client for players: a whole-request timeout,
// bounded connect and header waits, and idle connections kept for
// conns parallel sessions' worth of requests.
func NewClient(timeout time.Duration, conns int) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          max(100, 2*conns),
		MaxIdleConnsPerHost:   max(2, 2*conns),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// session is the state of one Run.
type session struct {
	cfg    Config
	log    *slog.Logger
	start  time.Time
	format Format
	man    *manifests
	play   *playback
	abr    *abr
	stats  *stats
	pacer  *pacer // nil without Config.Pacing.Mode
	// kindClients, with the pacing engine, give each media kind its own
	// connections (see clientFor).
	kindClients map[Kind]*http.Client

	live bool // the presentation was live at the first load
	// latency holds, once a second while playing, how far the playhead
	// was behind the wall clock (watch writes it; finish reads it after).
	latency []time.Duration

	// ll is the low-latency state (nil in standard mode); llFallback why
	// a session asked for low latency plays in standard mode.
	ll         *llMode
	llFallback string

	fatalOnce sync.Once
	fatal     error
	cancel    context.CancelFunc
}

// Run plays one session and returns its report. The error is the fatal
// error, if any, that ended the session early (also in Report.Error); a
// session cut short by ctx returns its report and no error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg = cfg.withDefaults()
	s := &session{cfg: cfg, start: time.Now(), abr: newABR(cfg.ABR), stats: newStats()}
	if cfg.Pacing.Mode != "" {
		s.pacer = newPacer(cfg.Pacing, cfg.Startup)
		if tr, ok := cfg.Client.Transport.(*http.Transport); ok {
			s.kindClients = map[Kind]*http.Client{}
			for _, k := range []Kind{KindVideo, KindAudio} {
				c := *cfg.Client
				c.Transport = tr.Clone()
				s.kindClients[k] = &c
			}
			defer func() {
				for _, c := range s.kindClients {
					c.CloseIdleConnections()
				}
			}()
		}
	}
	s.log = cfg.Logger.With("sid", cfg.SessionID)
	rep := Report{Session: cfg.Index, SessionID: cfg.SessionID, URL: cfg.URL, StartupMS: -1}
	err := s.run(ctx)
	s.finish(&rep, err)
	return rep, err
}

func (s *session) run(parent context.Context) error {
	u, err := url.Parse(s.cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("manifest URL %q: want an http(s) URL", s.cfg.URL)
	}

	s.format = s.cfg.Format
	if s.format == "" {
		if s.format, err = GuessFormat(s.cfg.URL); err != nil {
			return err
		}
	}
	fetch := func(ctx context.Context, u string) ([]byte, error) { return s.fetchManifest(ctx, u) }
	var src manifestSource
	switch s.format {
	case FormatDASH:
		src = &dashSource{url: u, fetch: fetch}
	case FormatHLS:
		src = &hlsSource{url: u, fetch: fetch}
	case FormatSmooth:
		src = &smoothSource{url: u, fetch: fetch}
	default:
		return fmt.Errorf("unknown format %q", s.format)
	}
	s.man = newManifests(src, func(err error) { s.log.Warn("manifest", "err", err) })

	// The whole session, the first manifest load included, is bounded by
	// the duration; a live session without one by DefaultLiveDuration,
	// which is applied once the first load has told live from static.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	s.cancel = cancel
	if s.cfg.Duration > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, s.cfg.Duration)
		defer c()
	}
	if err := s.man.refresh(ctx); err != nil {
		if parent.Err() != nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil
		}
		return fmt.Errorf("load manifest: %w", err)
	}
	pres, _ := s.man.current()
	if s.activateFirst(pres) {
		// HLS: whether the presentation is live shows in the media
		// playlists, which the master playlist alone does not load.
		if err := s.man.refresh(ctx); err != nil {
			if parent.Err() != nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("load playlist: %w", err)
		}
		pres, _ = s.man.current()
	}
	s.live = pres.Live
	var followers map[Kind]*hlsFollower
	if s.cfg.LowLatency {
		followers, s.llFallback = s.setupLowLatency(ctx, pres)
		if s.llFallback != "" {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Info("low latency not available; standard mode", "why", s.llFallback)
			if s.cfg.Progress != nil {
				fmt.Fprintf(s.cfg.Progress, "%s: low latency not available (%s): playing in standard mode\n", s.cfg.SessionID, s.llFallback)
			}
		} else if s.cfg.Progress != nil {
			fmt.Fprintf(s.cfg.Progress, "%s: low-latency %s: target latency %v, playback rate %.2f–%.2f, part %v\n", s.cfg.SessionID,
				s.format, s.ll.catchUp.target, s.ll.catchUp.min, s.ll.catchUp.max, s.ll.partTarget)
		}
	}
	if pres.Live && s.cfg.Duration <= 0 {
		var c context.CancelFunc
		ctx, c = context.WithDeadline(ctx, s.start.Add(DefaultLiveDuration))
		defer c()
	}
	var kinds []Kind
	for _, k := range []Kind{KindVideo, KindAudio} {
		if pres.Stream(k) != nil {
			kinds = append(kinds, k)
		}
	}
	threshold := s.cfg.Startup
	if s.ll != nil {
		threshold = llStartup(threshold, s.ll.catchUp.target)
	}
	s.play = newPlayback(kinds, threshold, s.start)
	s.log.Debug("session start", "format", s.format, "live", pres.Live, "kinds", kinds, "low_latency", s.ll != nil)

	var wg sync.WaitGroup
	if followers == nil {
		wg.Go(func() { s.man.run(ctx) })
	}
	for _, k := range kinds {
		wg.Go(func() {
			var err error
			if f := followers[k]; f != nil {
				r := pres.Stream(k).Rendition(s.man.activeID(k))
				if r == nil {
					err = fmt.Errorf("rendition %q gone", s.man.activeID(k))
				} else {
					err = s.llHLSLoop(ctx, pres, k, r, f)
				}
			} else {
				err = s.fetchLoop(ctx, k)
			}
			if err != nil && ctx.Err() == nil {
				s.fail(fmt.Errorf("%s: %w", k, err))
			}
		})
	}
	s.watch(ctx)
	cancel()
	wg.Wait()
	return s.fatal
}

// activateFirst marks the renditions the session starts with as in use and
// reports whether any of them still has to be loaded.
func (s *session) activateFirst(pres *Presentation) bool {
	load := false
	for _, k := range []Kind{KindVideo, KindAudio} {
		st := pres.Stream(k)
		if st == nil || len(st.Renditions) == 0 {
			continue
		}
		r := st.Renditions[len(st.Renditions)-1]
		if k == KindVideo {
			r = s.abr.choose(abrInput{renditions: st.Renditions, maxBitrate: s.cfg.MaxBitrate, now: time.Now()})
		}
		s.man.setActive(k, r.ID)
		load = load || !r.Loaded
	}
	return load
}

// fail records the first fatal error and ends the session.
func (s *session) fail(err error) {
	s.fatalOnce.Do(func() {
		s.fatal = err
		s.cancel()
	})
}

// watch waits until playback has finished, the session ends, or playback
// has made no progress for StallTimeout.
func (s *session) watch(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	stalls := 0
	var nextSample time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			second := !now.Before(nextSample)
			if second {
				// Once a second (not every tick when the manifest maps no
				// time, on demand).
				nextSample = now.Add(time.Second)
				if lat, ok := s.play.latency(now); ok {
					s.latency = append(s.latency, lat)
				}
			}
			if s.ll != nil {
				s.steer(now, second, stalls)
			}
			sn := s.play.snap(now)
			if sn.Stalls > stalls {
				stalls = sn.Stalls
				s.log.Warn("stalled", "stalls", sn.Stalls, "at", now.Sub(s.start).Round(time.Millisecond),
					"played", sn.Played.Round(time.Millisecond), "state", sn.State, "levels", sn.Level)
			}
			if sn.State == stateFinished {
				return
			}
			if sn.StallFor > s.cfg.StallTimeout {
				what := "stalled"
				if sn.State == stateStartup {
					what = "did not start"
				}
				s.fail(fmt.Errorf("playback %s for %v", what, sn.StallFor.Round(time.Millisecond)))
				return
			}
		}
	}
}

// finish fills the report at the end of the session.
func (s *session) finish(rep *Report, err error) {
	now := time.Now()
	rep.Format = s.format
	rep.DurationMS = now.Sub(s.start).Milliseconds()
	rep.Live = s.live
	if s.play != nil {
		sn := s.play.snap(now)
		if sn.Started {
			rep.StartupMS = sn.Startup.Milliseconds()
		}
		rep.Stalls = sn.Stalls
		rep.StallMS = sn.StallTotal.Milliseconds()
		rep.PlayedMS = sn.Played.Milliseconds()
		rep.Ended = sn.State == stateFinished
		rep.OK = sn.Started && err == nil
	}
	s.stats.fill(rep)
	rep.Latency = latencyReport(s.latency)
	rep.LowLatency = s.lowLatencyReport()
	if ps, ok := s.man.src.(pathwaySwitcher); ok {
		rep.PathwaySwitches = ps.pathwaySwitches()
	}
	rep.ThroughputBPS = int64(s.abr.estimate())
	if s.pacer != nil {
		rep.Pacing = s.pacer.report()
	}
	if err != nil {
		rep.Error = err.Error()
		rep.OK = false
	}
}

// fetchLoop fetches the fragments of one kind until its stream ends or ctx
// does.
func (s *session) fetchLoop(ctx context.Context, k Kind) error {
	var (
		cur       cursor
		curID     string
		initDone  = map[string]bool{}
		initFails int // consecutive failures of an init segment
		lastFetch time.Time
		// Low-latency DASH: the track timing of each init segment (to time
		// the chunks of a growing segment) and the media before the start
		// point.
		timings = map[string]trackTiming{}
		skip    time.Duration
	)
	for ctx.Err() == nil {
		now := time.Now()
		level, _ := s.play.levelOf(k, now)
		if level >= s.cfg.Buffer {
			// Full: wait until a fragment's worth has played out.
			_ = pause.For(ctx, min(level-s.cfg.Buffer+50*time.Millisecond, 250*time.Millisecond))
			continue
		}
		pres, changed := s.man.current()
		st := pres.Stream(k)
		if st == nil || len(st.Renditions) == 0 {
			s.play.end(k, time.Now())
			return nil
		}
		r := s.pick(k, st, curID, level)
		if r.ID != curID {
			if curID != "" {
				s.log.Debug("switch", "kind", k, "from", curID, "to", r.ID, "bitrate", r.Bitrate)
			}
			curID = r.ID
		}
		if !r.Loaded {
			if err := s.man.use(ctx, k, r.ID); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("load playlist", "kind", k, "err", err)
				_ = pause.For(ctx, s.cfg.RetryDelay)
			}
			continue
		}
		s.man.setActive(k, r.ID)
		segs := r.Segments(time.Now())
		if s.ll == nil && pres.Live && pres.LowLatency != nil {
			segs = completeSegments(segs, s.dashNow())
		}
		if !cur.set && pres.Live && len(segs) > 0 {
			first := segs[liveStart(segs, pres.LiveDelay)]
			if s.ll != nil {
				var i int
				i, skip = dashStart(segs, s.ll.catchUp.target, s.dashNow())
				first = segs[i]
			}
			cur = cursor{set: true, lastSeq: first.Seq - 1, end: first.Start}
			s.log.Debug("live start", "kind", k, "seq", first.Seq, "start", first.Start)
		}
		seg, idx, res, behind := nextSegment(segs, cur, pres.byTime, r.Ended)
		switch res {
		case nextEnded:
			s.play.end(k, time.Now())
			return nil
		case nextWait:
			period := min(max(pres.UpdatePeriod/4, 50*time.Millisecond), 500*time.Millisecond)
			t := time.NewTimer(period)
			select {
			case <-ctx.Done():
			case <-changed:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		if behind {
			s.log.Warn("fell behind the manifest window; jumping", "kind", k, "to", seg.Start)
		}
		if r.Init != nil && !initDone[r.Init.URL+"|"+r.Init.Range] {
			data, err := s.fetchInitData(ctx, pres, k, r, seg)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("init segment", "kind", k, "url", r.Init.URL, "err", err)
				if initFails++; initFails <= maxFailoverReloads {
					// The manifest may name the header elsewhere by now
					// (static ones included), or on another pathway; the
					// next turn uses it.
					s.switchPathway(ctx, k, pres.Pathway)
					s.stats.add(&s.stats.failoverReloads)
					if err := s.man.refresh(ctx); err != nil && ctx.Err() == nil {
						s.log.Warn("failover: reload manifest", "kind", k, "err", err)
					}
				}
				_ = pause.For(ctx, s.cfg.RetryDelay)
				continue
			}
			initFails = 0
			initDone[r.Init.URL+"|"+r.Init.Range] = true
			if s.ll != nil {
				tt, err := parseTrackTiming(data)
				if err != nil {
					s.log.Warn("init segment timing; segments are counted whole", "kind", k, "err", err)
				}
				timings[r.Init.URL] = tt
			}
		}
		if s.ll != nil {
			// Low-latency DASH: the segment at its availability (listed
			// ones are, with a server that lists a segment once it has
			// begun), read as it arrives.
			if pres.LowLatency != nil && !seg.Wall.IsZero() {
				if wait := seg.Wall.Add(seg.Dur - pres.LowLatency.ato).Sub(s.dashNow()); wait > 0 {
					if pause.For(ctx, wait) != nil {
						return nil
					}
				}
			}
			var tt trackTiming
			if r.Init != nil {
				tt = timings[r.Init.URL]
			}
			n, err := s.fetchChunked(ctx, pres, k, r, seg, tt, &skip)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				s.stats.add(&s.stats.skipped)
				s.log.Warn("fragment skipped", "kind", k, "url", seg.URL, "err", err)
			} else {
				s.stats.fragment(k, r.Bitrate, n, seg.Dur, k == KindVideo || pres.Video == nil)
			}
			cur.advance(seg)
			continue
		}
		next, ahead := following(pres, segs, idx)
		n, err := s.fetchFragment(ctx, pres, k, r, seg, next, ahead, 2)
		if err != nil && ctx.Err() == nil {
			n, err = s.failover(ctx, k, r.ID, seg, pres, err)
		}
		if ctx.Err() != nil {
			return nil
		}
		lastFetch = time.Now()
		if err != nil {
			s.stats.add(&s.stats.skipped)
			s.log.Warn("fragment skipped", "kind", k, "url", seg.URL, "err", err)
		} else {
			s.stats.fragment(k, r.Bitrate, n, seg.Dur, k == KindVideo || pres.Video == nil)
			s.play.add(k, seg.Dur, seg.Wall, lastFetch)
		}
		cur.advance(seg)
	}
	return nil
}

// completeSegments cuts a low-latency MPD's segments, for a player in
// standard mode, to those complete at now (their wall-clock end passed):
// such an MPD lists the segment in progress (availabilityTimeOffset), which
// a standard player would fetch whole from the moment it begins.
func completeSegments(segs []Segment, now time.Time) []Segment {
	n := len(segs)
	for n > 0 && !segs[n-1].Wall.IsZero() && segs[n-1].Wall.Add(segs[n-1].Dur).After(now) {
		n--
	}
	return segs[:n]
}

// following returns the segment after segs[idx] (nil at the end) and, live,
// the media listed after it (-1 when not live).
func following(pres *Presentation, segs []Segment, idx int) (*Segment, time.Duration) {
	var next *Segment
	if idx+1 < len(segs) {
		next = &segs[idx+1]
	}
	ahead := time.Duration(-1)
	if pres.Live {
		ahead = 0
		for _, x := range segs[idx+1:] {
			ahead += x.Dur
		}
	}
	return next, ahead
}

// maxFailoverReloads bounds the manifest reloads for one failed fragment
// (and for one failing init segment).
const maxFailoverReloads = 2

// failover runs when a fragment failed at every attempt (the sender that
// the manifest names for it may be dead): it reloads the manifest — static
// ones too, which are otherwise never reloaded — and fetches the fragment
// of rendition rid at the same position (start time when byTime, else media
// sequence number) from the URL the fresh manifest lists, once per reload,
// at most maxFailoverReloads reloads. A reload that still lists the failed
// URL is followed by another after RetryDelay (a scheduler needs a moment
// to notice a dead sender); the last one is tried whatever it lists. It
// returns the fragment's size, or cause when no reload helped.
func (s *session) failover(ctx context.Context, k Kind, rid string, seg Segment, from *Presentation, cause error) (int, error) {
	failed, byTime, pathway := seg, from.byTime, from.Pathway
	for i := 1; i <= maxFailoverReloads; i++ {
		switched := s.switchPathway(ctx, k, pathway)
		if i > 1 && !switched {
			if err := pause.For(ctx, s.cfg.RetryDelay); err != nil {
				return 0, cause
			}
		}
		s.stats.add(&s.stats.failoverReloads)
		if err := s.man.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return 0, cause
			}
			s.log.Warn("failover: reload manifest", "kind", k, "err", err)
			continue
		}
		pres, _ := s.man.current()
		pathway = pres.Pathway
		r := pres.Stream(k).Rendition(rid)
		if r == nil || !r.Loaded {
			s.log.Warn("failover: the reloaded manifest lacks the rendition", "kind", k, "rendition", rid)
			return 0, cause
		}
		segs := r.Segments(time.Now())
		idx := samePosition(segs, seg, byTime)
		if idx < 0 {
			s.log.Warn("failover: the reloaded manifest no longer lists the fragment", "kind", k, "start", seg.Start, "seq", seg.Seq)
			return 0, cause
		}
		alt := segs[idx]
		if alt.URL == failed.URL && alt.Range == failed.Range && i < maxFailoverReloads {
			s.log.Info("failover: the reloaded manifest still lists the failed URL", "kind", k, "url", alt.URL)
			continue
		}
		s.log.Info("failover", "kind", k, "from", failed.URL, "to", alt.URL, "reload", i, "cause", cause)
		next, ahead := following(pres, segs, idx)
		n, err := s.fetchFragment(ctx, pres, k, r, alt, next, ahead, 1)
		if err == nil {
			s.stats.add(&s.stats.failovers)
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, cause
		}
		failed, cause = alt, err
	}
	return 0, cause
}

// switchPathway moves a manifest with content steering to another pathway
// after a failure (pathways.next) and reports whether it did.
func (s *session) switchPathway(ctx context.Context, k Kind, from string) bool {
	ps, ok := s.man.src.(pathwaySwitcher)
	if !ok || from == "" || !ps.switchPathway(ctx, from) {
		return false
	}
	s.log.Info("failover: another pathway", "kind", k, "from", from)
	return true
}

// samePosition returns the index in segs of the segment at seg's position:
// the one whose start lies within half a duration of seg's (byTime), or the
// one with seg's sequence number; -1 when there is none.
func samePosition(segs []Segment, seg Segment, byTime bool) int {
	for i, x := range segs {
		if byTime {
			if (x.Start - seg.Start).Abs() < max(seg.Dur, x.Dur)/2 {
				return i
			}
		} else if x.Seq == seg.Seq {
			return i
		}
	}
	return -1
}

// pick chooses the rendition of kind k for the next fragment: ABR for
// video, the highest-bitrate rendition for audio.
func (s *session) pick(k Kind, st *Stream, curID string, level time.Duration) *Rendition {
	if k != KindVideo {
		if r := st.Rendition(curID); r != nil {
			return r
		}
		return st.Renditions[len(st.Renditions)-1]
	}
	r := s.abrChoice(st, curID, level)
	s.stats.chose(r.Bitrate)
	return r
}

// abrChoice is the video rendition ABR would choose now (pick without
// recording the choice).
func (s *session) abrChoice(st *Stream, curID string, level time.Duration) *Rendition {
	startup := s.cfg.Startup
	if s.play != nil {
		startup = s.play.threshold // lower in low-latency mode
	}
	return s.abr.choose(abrInput{
		renditions: st.Renditions, current: st.Rendition(curID), buffer: level,
		bufferTarget: s.cfg.Buffer, startup: startup, maxBitrate: s.cfg.MaxBitrate,
		now: time.Now(),
	})
}

// requestInfo describes a request for a media object of rendition r.
func (s *session) requestInfo(pres *Presentation, k Kind, r *Rendition, obj ObjectType) RequestInfo {
	level, urgent := s.play.levelOf(k, time.Now())
	info := RequestInfo{
		SessionID: s.cfg.SessionID, Format: s.format, Live: pres.Live, Object: obj, Kind: k,
		Rendition: r.ID, Bitrate: r.Bitrate, Buffer: level, BufferTarget: s.cfg.Buffer,
		Throughput: s.abr.estimate(), Startup: urgent, EncodedRate: s.stats.encodedRate(k),
	}
	if st := pres.Stream(k); st != nil && len(st.Renditions) > 0 {
		info.TopBitrate = st.Renditions[len(st.Renditions)-1].Bitrate
		if s.cfg.MaxBitrate > 0 && info.TopBitrate > s.cfg.MaxBitrate {
			info.TopBitrate = r.Bitrate
			for _, x := range st.Renditions {
				if x.Bitrate <= s.cfg.MaxBitrate {
					info.TopBitrate = max(info.TopBitrate, x.Bitrate)
				}
			}
		}
	}
	return info
}

func objectType(pres *Presentation, k Kind) ObjectType {
	switch {
	case k == KindAudio:
		return ObjectAudio
	case pres.Format == FormatHLS && pres.Audio == nil:
		return ObjectMuxed
	}
	return ObjectVideo
}

// fetchInit fetches and checks an init segment.
func (s *session) fetchInit(ctx context.Context, pres *Presentation, k Kind, r *Rendition, first Segment) error {
	_, err := s.fetchInitData(ctx, pres, k, r, first)
	return err
}

// fetchInitData fetches and checks r's init segment and returns it.
func (s *session) fetchInitData(ctx context.Context, pres *Presentation, k Kind, r *Rendition, first Segment) ([]byte, error) {
	info := s.requestInfo(pres, k, r, ObjectInit)
	info.Next, info.NextRange = first.URL, first.Range
	return s.fetchChecked(ctx, 2, func() ([]byte, time.Duration, error) {
		data, elapsed, _, err := s.get(ctx, r.Init.URL, r.Init.Range, info)
		return data, elapsed, err
	}, checkInit)
}

// fetchChecked runs get in at most attempts attempts (1 or 2: once more
// after RetryDelay) and returns the first body check accepts; a body it
// refuses is counted (invalid fragment) and fails the attempt.
func (s *session) fetchChecked(ctx context.Context, attempts int, get func() ([]byte, time.Duration, error), check func([]byte) error) ([]byte, error) {
	var out []byte
	attempt := func() (int, time.Duration, error) {
		data, elapsed, err := get()
		if err != nil {
			return len(data), elapsed, err
		}
		if err := check(data); err != nil {
			s.stats.invalidFragment()
			return len(data), elapsed, err
		}
		out = data
		return len(data), elapsed, nil
	}
	var err error
	if attempts > 1 {
		err = s.withRetry(ctx, attempt)
	} else {
		_, _, err = attempt()
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fetchFragment fetches and checks a media fragment in at most attempts
// attempts (1 or 2: once more after RetryDelay), and returns its size.
func (s *session) fetchFragment(ctx context.Context, pres *Presentation, k Kind, r *Rendition, seg Segment, next *Segment, ahead time.Duration, attempts int) (int, error) {
	data, err := s.fetchFragmentData(ctx, pres, k, r, seg, next, ahead, attempts)
	return len(data), err
}

// fetchFragmentData is fetchFragment returning the fragment.
func (s *session) fetchFragmentData(ctx context.Context, pres *Presentation, k Kind, r *Rendition, seg Segment, next *Segment, ahead time.Duration, attempts int) ([]byte, error) {
	var (
		elapsed time.Duration
		pace    float64
	)
	data, err := s.fetchChecked(ctx, attempts, func() ([]byte, time.Duration, error) {
		info := s.requestInfo(pres, k, r, objectType(pres, k))
		info.Duration = seg.Dur
		info.Size = rangeSize(seg.Range)
		if ahead >= 0 {
			// Live: the buffer cannot grow beyond what the manifest lists.
			// At the live edge it is as full as it can get, however low.
			info.BufferTarget = min(info.BufferTarget, info.Buffer+ahead)
		}
		info.Starved = s.play.takeStarved(k)
		if next != nil {
			info.Next, info.NextRange = next.URL, next.Range
		}
		var data []byte
		var err error
		data, elapsed, pace, err = s.get(ctx, seg.URL, seg.Range, info)
		return data, elapsed, err
	}, checkFragment)
	if err != nil {
		return nil, err
	}
	// A download held back by a pacing rate measures the pace, not the
	// network: it counts as "the network carries the pace", which may
	// raise the estimate but never lowers it (the request's round trip and
	// ramp make the measured rate a little lower than the pace).
	switch {
	case pace == 0:
		s.abr.sample(len(data), elapsed)
	case pace > s.abr.estimate():
		s.abr.sample(len(data), time.Duration(float64(len(data))*8/pace*float64(time.Second)))
	}
	return data, nil
}

// withRetry runs attempt, and once more after RetryDelay if it fails.
func (s *session) withRetry(ctx context.Context, attempt func() (int, time.Duration, error)) error {
	_, _, err := attempt()
	if err == nil || ctx.Err() != nil {
		return err
	}
	s.stats.add(&s.stats.retries)
	if serr := pause.For(ctx, s.cfg.RetryDelay); serr != nil {
		return err
	}
	_, _, err = attempt()
	return err
}

// StatusError is an HTTP response with a status other than 2xx.
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string {
	return "GET " + e.URL + ": HTTP " + strconv.Itoa(e.Code) + " " + http.StatusText(e.Code)
}

// get performs one GET with the hooks and the pacing engine, counts it,
// and returns the body, the time from sending the request to the end of the
// body, and the pacing rate (bits/s) that set that time, 0 when none did.
func (s *session) get(ctx context.Context, u, rng string, info RequestInfo) (data []byte, elapsed time.Duration, pace float64, err error) {
	return s.fetch(ctx, u, rng, info, nil)
}

// fetch is get; with onChunk the body is read as it arrives and onChunk is
// called with each complete CMAF chunk (readChunks, low-latency DASH).
func (s *session) fetch(ctx context.Context, u, rng string, info RequestInfo, onChunk func([]byte, time.Duration)) (data []byte, elapsed time.Duration, pace float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("request %s: %w", u, err)
	}
	if rng != "" {
		req.Header.Set("Range", "bytes="+rng)
	}
	for _, h := range s.cfg.Hooks {
		h(req, info)
	}
	var dec PacingDecision
	if s.pacer != nil {
		dec = s.pacer.decide(info)
		s.pacer.apply(req, dec)
	}
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectDone: func(_, _ string, err error) {
			if err != nil && ctx.Err() == nil {
				s.stats.add(&s.stats.connectFailures)
			}
		},
	}))
	t0 := time.Now()
	resp, err := s.clientFor(info).Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.stats.networkError()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the method and URL
		}
		return nil, time.Since(t0), 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		s.stats.response(resp.StatusCode)
		elapsed = time.Since(t0)
		if s.pacer != nil {
			s.pacer.observe(resp, info, dec, t0, 0, elapsed)
		}
		s.observe(resp, info, 0, elapsed)
		return nil, elapsed, 0, &StatusError{URL: u, Code: resp.StatusCode}
	}
	if onChunk != nil {
		data, err = readChunks(resp.Body, s.cfg.MaxObject, onChunk)
	} else {
		data, err = readLimited(resp.Body, s.cfg.MaxObject)
	}
	elapsed = time.Since(t0)
	s.stats.received(info.Object, int64(len(data)))
	if err != nil {
		if ctx.Err() == nil {
			s.stats.networkError()
		}
		s.stats.response(resp.StatusCode)
		return data, elapsed, 0, fmt.Errorf("GET %s: body: %w", u, err)
	}
	s.stats.response(resp.StatusCode)
	if s.pacer != nil {
		pace = s.pacer.observe(resp, info, dec, t0, int64(len(data)), elapsed)
	}
	s.observe(resp, info, int64(len(data)), elapsed)
	return data, elapsed, pace, nil
}

// clientFor returns the client for a request. With the pacing engine on,
// each media kind's init segments and fragments use their own connections
// (a clone of Config.Client's transport): the server's per-connection
// metadata (the loss of the previous response, its bottleneck estimate)
// then describes this kind's previous fragment, not whatever request last
// used a pooled connection. Manifests use Config.Client.
func (s *session) clientFor(info RequestInfo) *http.Client {
	if c := s.kindClients[info.Kind]; c != nil && info.Object != ObjectManifest {
		return c
	}
	return s.cfg.Client
}

// rangeSize returns the size of an HTTP byte range "first-last", 0 when
// the range is absent or open.
func rangeSize(rng string) int64 {
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || last < first {
		return 0
	}
	return last - first + 1
}

func (s *session) observe(resp *http.Response, info RequestInfo, n int64, elapsed time.Duration) {
	for _, h := range s.cfg.OnResponse {
		h(resp, info, n, elapsed)
	}
}

// fetchManifest fetches a manifest or playlist, retrying once.
func (s *session) fetchManifest(ctx context.Context, u string) ([]byte, error) {
	info := RequestInfo{SessionID: s.cfg.SessionID, Format: s.format, Object: ObjectManifest, Throughput: s.abr.estimate()}
	if s.man != nil {
		if p, _ := s.man.current(); p != nil {
			info.Live = p.Live
		}
	}
	var data []byte
	err := s.withRetry(ctx, func() (int, time.Duration, error) {
		var err error
		var elapsed time.Duration
		data, elapsed, _, err = s.get(ctx, u, "", info)
		return len(data), elapsed, err
	})
	return data, err
}

// checkFragment verifies that data is a media fragment: optional styp,
// sidx, prft, emsg or free boxes, then one or more moof+mdat pairs.
func checkFragment(data []byte) error {
	br := media.NewBoxReader(bytes.NewReader(data), uint64(len(data)))
	pairs := 0
	prev := ""
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errNotMedia, err)
		}
		switch b.Type {
		case "moof":
			if prev == "moof" {
				return fmt.Errorf("%w: moof followed by moof", errNotMedia)
			}
		case "mdat":
			if prev != "moof" {
				return fmt.Errorf("%w: mdat without a moof before it", errNotMedia)
			}
			pairs++
		case "styp", "sidx", "ssix", "prft", "emsg", "free", "skip", "uuid":
			if prev == "moof" {
				return fmt.Errorf("%w: moof followed by %s, not mdat", errNotMedia, b.Type)
			}
		default:
			return fmt.Errorf("%w: unexpected %q box", errNotMedia, b.Type)
		}
		prev = b.Type
	}
	if prev == "moof" {
		return fmt.Errorf("%w: moof without mdat", errNotMedia)
	}
	if pairs == 0 {
		return fmt.Errorf("%w: no moof+mdat", errNotMedia)
	}
	return nil
}

// checkInit verifies that data is an init segment: it holds a moov box.
func checkInit(data []byte) error {
	br := media.NewBoxReader(bytes.NewReader(data), uint64(len(data)))
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return errors.New("init segment without moov")
		}
		if err != nil {
			return fmt.Errorf("init segment: %w", err)
		}
		if b.Type == "moov" {
			return nil
		}
	}
}
