package player

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/pause"
)

// Low-latency HLS playback. Each media kind has a follower and a fetcher:
//
//   - the follower keeps the kind's media playlist current with blocking
//     reloads (_HLS_msn/_HLS_part for the part after the newest one listed,
//     each answered when that part exists), as delta updates
//     (_HLS_skip=YES) once it holds a whole playlist, completed with the
//     skipped segments it already has (a delta update it cannot complete
//     is followed by a whole reload);
//   - the fetcher starts PART-HOLD-BACK from the end of the playlist (at
//     the newest independent part before that point) and fetches, in
//     order, whole segments while they are complete and it is at a
//     segment's start, else parts; at the end of the playlist it requests
//     the part the preload hint names, which the server answers when the
//     part exists, and adds it to the buffer with the duration of its
//     samples before the playlist lists it. Video switches rendition at
//     segment boundaries (llSwitch).

// hlsFollower keeps one rendition's low-latency media playlist current.
type hlsFollower struct {
	s    *session
	kind Kind
	uri  string

	mu      sync.Mutex
	pl      *llPlaylist
	changed chan struct{}
}

func newHLSFollower(s *session, k Kind, uri string, first *llPlaylist) *hlsFollower {
	return &hlsFollower{s: s, kind: k, uri: uri, pl: first, changed: make(chan struct{})}
}

// current returns the playlist and a channel closed when it is replaced.
func (f *hlsFollower) current() (*llPlaylist, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pl, f.changed
}

func (f *hlsFollower) set(pl *llPlaylist) {
	f.mu.Lock()
	f.pl = pl
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// run follows the playlist until it ends or ctx does.
func (f *hlsFollower) run(ctx context.Context) {
	base, err := url.Parse(f.uri)
	if err != nil {
		return
	}
	full := true // the next reload asks for the whole playlist
	for ctx.Err() == nil {
		pl, _ := f.current()
		if pl.ended {
			return
		}
		u := f.uri
		if pl.canBlock {
			msn, part := pl.nextReload()
			if u, err = reloadURL(f.uri, msn, part, pl.canSkipUntil > 0 && !full); err != nil {
				return
			}
		} else if err := pause.For(ctx, max(pl.partTarget, 100*time.Millisecond)); err != nil {
			return
		}
		data, err := f.s.fetchManifest(ctx, u)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// A 503 (nothing came in three target durations) or a broken
			// connection: look again, whole, after a moment.
			f.s.log.Warn("low-latency playlist reload", "kind", f.kind, "url", u, "err", err)
			full = true
			_ = pause.For(ctx, f.s.cfg.RetryDelay)
			continue
		}
		if pl.canBlock {
			f.s.ll.add(&f.s.ll.stats.BlockingReloads)
		}
		next, err := parseLLPlaylist(data, base)
		if err != nil {
			f.s.log.Warn("low-latency playlist", "kind", f.kind, "err", err)
			full = true
			_ = pause.For(ctx, f.s.cfg.RetryDelay)
			continue
		}
		if next.skipped > 0 {
			merged, err := mergeDelta(pl, next)
			if err != nil {
				f.s.ll.add(&f.s.ll.stats.DeltaGaps)
				f.s.log.Info("delta update not merged; reloading the whole playlist", "kind", f.kind, "err", err)
				full = true
				continue
			}
			f.s.ll.add(&f.s.ll.stats.DeltaUpdates)
			next = merged
		}
		full = false
		if len(next.segs) == 0 {
			continue
		}
		f.set(next)
	}
}

// llHLSLoop plays one kind of a low-latency HLS session, starting with
// rendition r, whose playlist f holds; it runs the follower of the
// rendition in use. Video switches rendition (ABR) at segment boundaries:
// the new rendition's playlist is loaded whole, its init segment fetched,
// and its follower replaces the old one; the position (media sequence
// number) carries over.
func (s *session) llHLSLoop(ctx context.Context, pres *Presentation, k Kind, r *Rendition, f *hlsFollower) error {
	var (
		fwg        sync.WaitGroup
		stopFollow = func() {}
	)
	follow := func(nf *hlsFollower) {
		stopFollow()
		fctx, cancel := context.WithCancel(ctx)
		stopFollow = cancel
		fwg.Go(func() { nf.run(fctx) })
	}
	defer func() {
		stopFollow()
		fwg.Wait()
	}()
	follow(f)
	pl, _ := f.current()
	pos, skip := startPosition(pl, s.ll.holdBack)
	s.log.Debug("low-latency start", "kind", k, "msn", pos.msn, "part", pos.part, "skip", skip)
	timing, err := s.llInit(ctx, pres, k, r)
	if err != nil {
		return err
	}
	if k == KindVideo {
		s.stats.chose(r.Bitrate)
	}
	st := pres.Stream(k)
	hinted := "" // URL of the hinted part fetched but not yet listed
	for ctx.Err() == nil {
		pl, changed := f.current()
		if hinted != "" {
			// The hinted part is the one after pos; once listed, move on.
			if p, ok := findPart(pl, hinted); ok {
				pos, hinted = llPos{msn: p.msn, part: p.part + 1}, ""
				continue
			}
		}
		// A switch waits for a segment boundary. At the end of the
		// playlist in the middle of a segment the next part may begin the
		// next segment or not: while the throughput estimate asks for
		// another rendition, the hinted part is not requested ahead, and
		// the next playlist says which it is.
		holdHint := false
		if k == KindVideo && hinted == "" && len(st.Renditions) > 1 && pos.part > 0 && atEnd(pl, pos) {
			level, _ := s.play.levelOf(k, time.Now())
			holdHint = s.abrChoice(st, r.ID, level).ID != r.ID
		}
		if k == KindVideo && pos.part == 0 && hinted == "" && len(st.Renditions) > 1 {
			level, _ := s.play.levelOf(k, time.Now())
			if nr := s.pick(k, st, r.ID, level); nr.ID != r.ID {
				nf, rr, tt, err := s.llSwitch(ctx, pres, k, nr)
				if ctx.Err() != nil {
					return nil
				}
				if err != nil {
					s.log.Warn("low-latency rendition switch", "kind", k, "to", nr.ID, "err", err)
				} else {
					s.log.Debug("switch", "kind", k, "from", r.ID, "to", nr.ID, "bitrate", nr.Bitrate, "msn", pos.msn)
					f, r, timing = nf, rr, tt
					follow(f)
					continue
				}
			}
		}
		seg := pl.seg(pos.msn)
		if seg != nil && !seg.Open && pos.part >= len(seg.Parts) && pos.part > 0 {
			pos = llPos{msn: pos.msn + 1}
			continue
		}
		switch {
		case seg != nil && !seg.Open && pos.part == 0:
			// A complete segment from its start: fetch it whole.
			data, err := s.fetchMedia(ctx, pres, k, r, Segment{URL: seg.URL, Seq: seg.Seq, Dur: seg.Dur}, 2)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				s.stats.add(&s.stats.skipped)
				s.log.Warn("segment skipped", "kind", k, "url", seg.URL, "err", err)
			} else {
				s.stats.fragment(k, r.Bitrate, len(data), seg.Dur, k == KindVideo || pres.Video == nil)
				s.addMedia(k, seg.Dur, seg.Wall, &skip)
			}
			pos = llPos{msn: pos.msn + 1}
		case seg != nil && pos.part < len(seg.Parts):
			part := seg.Parts[pos.part]
			wall := time.Time{}
			if !seg.Wall.IsZero() {
				wall = seg.Wall
				for _, p := range seg.Parts[:pos.part] {
					wall = wall.Add(p.Dur)
				}
			}
			data, err := s.fetchMedia(ctx, pres, k, r, Segment{URL: part.URL, Seq: seg.Seq, Dur: part.Dur}, 2)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				s.stats.add(&s.stats.skipped)
				s.log.Warn("part skipped", "kind", k, "url", part.URL, "err", err)
			} else {
				s.ll.add(&s.ll.stats.Parts)
				s.stats.fragment(k, r.Bitrate, len(data), part.Dur, k == KindVideo || pres.Video == nil)
				s.addMedia(k, part.Dur, wall, &skip)
			}
			pos.part++
		case pl.ended && seg == nil:
			s.play.end(k, time.Now())
			return nil
		case hinted == "" && pl.hint != "" && atEnd(pl, pos) && !holdHint:
			// The end of the playlist: the hinted part is the next one;
			// the server answers when it exists.
			end := playlistEndWall(pl)
			data, err := s.fetchMedia(ctx, pres, k, r, Segment{URL: pl.hint, Seq: pos.msn, Dur: pl.partTarget}, 1)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != 404 {
					s.log.Info("preload-hinted part", "kind", k, "url", pl.hint, "err", err)
				}
				// Take it from the playlist when it is listed.
				waitChange(ctx, changed, pl.target)
				continue
			}
			d, derr := timing.chunkDuration(data)
			if derr != nil || d <= 0 {
				// Without its duration it cannot be counted before it is
				// listed: fetch it again from the playlist.
				waitChange(ctx, changed, pl.target)
				continue
			}
			s.ll.add(&s.ll.stats.Parts)
			s.ll.add(&s.ll.stats.PreloadHints)
			s.stats.fragment(k, r.Bitrate, len(data), d, k == KindVideo || pres.Video == nil)
			s.addMedia(k, d, end, &skip)
			hinted = pl.hint
		default:
			// Nothing to fetch until the playlist grows (a session that
			// stops growing ends at Config.StallTimeout).
			waitChange(ctx, changed, pl.target)
		}
	}
	return nil
}

// llInit fetches rendition r's init segment (if it has one) and reads its
// track timing (zero when unreadable: hinted parts are then taken from
// the playlist).
func (s *session) llInit(ctx context.Context, pres *Presentation, k Kind, r *Rendition) (trackTiming, error) {
	if r.Init == nil {
		return trackTiming{}, nil
	}
	data, err := s.fetchInitData(ctx, pres, k, r, Segment{})
	if err != nil {
		return trackTiming{}, fmt.Errorf("init segment: %w", err)
	}
	tt, err := parseTrackTiming(data)
	if err != nil {
		s.log.Warn("init segment timing", "kind", k, "err", err)
	}
	return tt, nil
}

// llSwitch prepares a switch of kind k to rendition nr: its playlist
// (loaded whole; it must be low-latency), a follower for it, the
// rendition with the playlist's init segment, and that segment's timing.
func (s *session) llSwitch(ctx context.Context, pres *Presentation, k Kind, nr *Rendition) (*hlsFollower, *Rendition, trackTiming, error) {
	src, ok := s.man.src.(*hlsSource)
	if !ok {
		return nil, nil, trackTiming{}, errors.New("not an HLS source")
	}
	uri := src.mediaURI(nr.ID)
	if uri == "" {
		return nil, nil, trackTiming{}, errors.New("no media playlist")
	}
	base, err := url.Parse(uri)
	if err != nil {
		return nil, nil, trackTiming{}, fmt.Errorf("playlist URL: %w", err)
	}
	data, err := s.fetchManifest(ctx, uri)
	if err != nil {
		return nil, nil, trackTiming{}, err
	}
	npl, err := parseLLPlaylist(data, base)
	if err != nil {
		return nil, nil, trackTiming{}, err
	}
	if !npl.lowLatency() || len(npl.segs) == 0 {
		return nil, nil, trackTiming{}, errors.New("the playlist is not low-latency")
	}
	rr := *nr
	rr.Init = npl.init
	tt, err := s.llInit(ctx, pres, k, &rr)
	if err != nil {
		return nil, nil, trackTiming{}, err
	}
	s.man.setActive(k, nr.ID)
	return newHLSFollower(s, k, uri, npl), &rr, tt, nil
}

// fetchMedia fetches and checks a segment or part of a low-latency HLS
// session in at most attempts attempts and returns it. The throughput
// estimate learns from each chunk's burst, not from the whole request: a
// preload-hinted part waits at the server until it exists.
func (s *session) fetchMedia(ctx context.Context, pres *Presentation, k Kind, r *Rendition, seg Segment, attempts int) ([]byte, error) {
	return s.fetchChecked(ctx, attempts, func() ([]byte, time.Duration, error) {
		info := s.requestInfo(pres, k, r, objectType(pres, k))
		info.Duration = seg.Dur
		info.Starved = s.play.takeStarved(k)
		return s.getStream(ctx, seg.URL, info, func(chunk []byte, burst time.Duration) {
			s.abr.sample(len(chunk), burst)
		})
	}, checkFragment)
}

// addMedia adds d of media of kind k, whose first frame the manifest maps
// to wall, to the buffer; the first *skip of it lies before the start
// point (a start inside a segment or part) and is not added.
func (s *session) addMedia(k Kind, d time.Duration, wall time.Time, skip *time.Duration) {
	now := time.Now()
	if *skip > 0 {
		if *skip >= d {
			*skip -= d
			return
		}
		d -= *skip
		if !wall.IsZero() {
			wall = wall.Add(*skip)
		}
		*skip = 0
	}
	s.ll.add(&s.ll.stats.Chunks)
	s.play.add(k, d, wall, now)
}

// findPart returns the position of the part with URL u in pl.
func findPart(pl *llPlaylist, u string) (llPos, bool) {
	for _, sg := range pl.segs {
		for i, p := range sg.Parts {
			if p.URL == u {
				return llPos{msn: sg.Seq, part: i}, true
			}
		}
	}
	return llPos{}, false
}

// atEnd tells whether pos is right after the newest media pl lists (where
// the preload hint points).
func atEnd(pl *llPlaylist, pos llPos) bool {
	msn, part := pl.nextReload()
	return pos == llPos{msn: msn, part: part}
}

// playlistEndWall is the program date time of the end of what pl lists.
func playlistEndWall(pl *llPlaylist) time.Time {
	l := pl.last()
	if l == nil || l.Wall.IsZero() {
		return time.Time{}
	}
	return l.Wall.Add(l.end())
}

// waitChange waits until changed is closed, at most d, or ctx ends.
func waitChange(ctx context.Context, changed <-chan struct{}, d time.Duration) {
	t := time.NewTimer(max(d, 100*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-changed:
	case <-t.C:
	}
}
