package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// Hooks let the caller of Receive follow a body as it is stored.
type Hooks struct {
	// Before is called before each fragment is stored (an origin adopts
	// the ingest's anchor here before its first fragment).
	Before func(trackID string, f *media.Fragment)
	// After is called once a fragment is stored or recognised as a copy of
	// one already stored.
	After func(trackID string, f *media.Fragment, res store.AddResult)
}

// ReceiveOptions change how Receive treats a body.
type ReceiveOptions struct {
	// Resume marks a body that continues a stream without repeating its
	// header (a pull with StartTime): the stored header is used and the
	// stream's ended tracks stay ended unless Restart is set.
	Resume bool
	// Restart makes a resumed stream live again (its source says it is live)
	// once a fragment of it is stored.
	Restart bool
	// Push, when set, marks a body from an encoder (directly or teed by a
	// push proxy): its fragments are shifted by the stream's offset and
	// judged for an encoder restart (see restart.go). Without it the body is
	// in stored form (origins pulling, a push proxy catching a standby up)
	// and every fragment is stored at its own time.
	Push  *PushInfo
	Hooks Hooks
	// Marked says the body marks its fragments with styp boxes (a chunked
	// pull from a Sluice ingest, see StartSpec.Chunks and
	// media.Assembler.Marked).
	Marked bool
	// guard bounds a push (progress, receive rate, memory); nil for pulls.
	guard *guard
}

// Result is what Receive did with a body.
type Result struct {
	Fragments  int   // fragments stored
	Duplicates int   // fragments already stored (identical or not)
	Dropped    int   // fragments not stored: a redundant encoder's that overlap stored ones
	Bytes      int64 // body bytes consumed
	Ended      bool  // the body carried the end of the stream
	Restarted  bool  // the push was an encoder restart, placed after what was stored
}

// Receive parses body as one ingest stream of point — ftyp, manifest box,
// moov, moof/mdat pairs, an end box — and stores every fragment durably. It
// is the one code path of every body that reaches a store: encoder pushes,
// bodies forwarded by a push proxy, and streams an origin pulls from an
// ingest. It returns at the end of the body (io.EOF is no error) or at the
// first error; the Result counts what was stored before it. Errors wrap the
// media and store errors, so that callers can map them to a status.
//
// A header changes nothing by itself: it is checked when it arrives and
// stored — tracks created or made live again, the stream recorded — only
// together with the first fragment of the body that is stored, so that a
// body refused after its header leaves the point as it was. A body that
// ends with its header unstored (the header request of CMAF ingest with one
// request per object) leaves it pending in memory for the next body of the
// stream (store.Point.KeepHeader).
func (h *Handler) Receive(ctx context.Context, point *store.Point, streamID string, body io.Reader, opts ReceiveOptions) (res Result, err error) {
	var (
		ids     map[uint32]string
		pending *media.Header // to store with the first stored fragment
	)
	hdr, _ := point.StreamHeader(streamID)
	if hdr != nil {
		if ids, err = point.CheckHeader(streamID, hdr); err != nil {
			return res, err
		}
		if !opts.Resume || opts.Restart {
			pending = hdr
		}
	}
	hasPending := func() bool { return pending != nil }
	commit := func() error {
		if pending == nil {
			return nil
		}
		m, err := point.SetHeader(streamID, pending)
		if err != nil {
			return err
		}
		ids, pending = m, nil
		return nil
	}
	record := func() error {
		if pending == nil {
			return nil
		}
		return point.RecordStream(streamID, pending)
	}
	var tl *timeline
	if opts.Push != nil {
		tl = h.newTimeline(point, streamID, *opts.Push, ids)
		defer tl.close()
	}
	// flush stores what a restarted push held back (see timeline.flush).
	flush := func() error {
		if tl == nil {
			return nil
		}
		act, err := tl.flush(commit)
		if err != nil {
			return err
		}
		return h.apply(point, streamID, act, opts, hasPending, commit, record, &res)
	}
	asm := media.NewAssembler(hdr, int(h.cfg.MaxBox))
	asm.Edge = point.VideoEdge
	asm.Marked = opts.Marked
	// fragment stores one complete fragment of the body.
	fragment := func(f *media.Fragment) error {
		id := ids[f.Info.TrackID]
		act := action{store: []storeItem{{id, f}}}
		if tl != nil {
			var err error
			if act, err = tl.fragment(id, f, commit); err != nil {
				return err
			}
			res.Restarted = res.Restarted || tl.state == restarted
			if act.drop != "" {
				res.Dropped++
				h.m.FragmentsIn.WithLabelValues(point.Name, act.drop).Inc()
				h.log.Warn("fragment of a redundant encoder conflicts with the stored timeline; first copy kept",
					"point", point.Name, "stream", streamID, "track", id, "start", f.Info.Start, "placement", act.drop)
				return nil
			}
		}
		return h.apply(point, streamID, act, opts, hasPending, commit, record, &res)
	}
	// assembled stores what a chunk completed and publishes the parts it
	// began or continued.
	assembled := func(a media.Assembled) error {
		for _, f := range a.Done {
			if err := fragment(f); err != nil {
				return err
			}
		}
		for _, part := range a.Parts {
			if err := h.part(point, streamID, ids[part.Info.TrackID], part, tl, hasPending()); err != nil {
				return err
			}
		}
		return nil
	}
	// complete stores every fragment the assembler holds (the end of the
	// body, a header, the end of the stream).
	complete := func() error {
		fs, err := asm.Flush()
		if ferr := assembled(media.Assembled{Done: fs}); err == nil {
			err = ferr
		}
		return err
	}
	p := media.NewStreamParser(body, uint64(h.cfg.MaxBox), hdr)
	defer p.Close()
	if opts.guard != nil {
		opts.guard.attach(p)
	}
	defer point.Receiving(streamID)()
	defer func() {
		res.Bytes = p.Offset()
		if err == nil && pending != nil && !opts.Resume {
			point.KeepHeader(streamID, pending)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("receive stream %s: %w", streamID, err)
		}
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			if err := complete(); err != nil {
				return res, err
			}
			return res, flush()
		}
		if err != nil {
			return res, err
		}
		switch ev.Kind {
		case media.EventHeader:
			m, err := point.CheckHeader(streamID, ev.Header)
			if err != nil {
				return res, err
			}
			if err := complete(); err != nil {
				return res, err
			}
			asm.SetHeader(ev.Header)
			if err := flush(); err != nil {
				return res, err
			}
			ids, pending = m, ev.Header
			if tl != nil {
				tl.header(ids)
			}
			h.log.Info("stream header", "point", point.Name, "stream", streamID, "tracks", trackList(ev.Header, ids))
			for _, t := range ev.Header.Tracks {
				if !media.SmoothCarries(t) {
					h.log.Info("track left out of the Smooth manifest (no Smooth FourCC for its codec); DASH and HLS announce it",
						"point", point.Name, "stream", streamID, "track", ids[t.TrackID], "codec", t.Codec)
				}
			}
		case media.EventFragment:
			a, err := asm.Add(ev.Fragment)
			if err != nil {
				return res, err
			}
			if err := assembled(a); err != nil {
				return res, err
			}
		case media.EventEnd:
			if err := complete(); err != nil {
				return res, err
			}
			if err := flush(); err != nil {
				return res, err
			}
			for _, id := range ids {
				if _, err := point.TrackInfo(id); err != nil {
					continue // never stored: nothing to end
				}
				if err := point.EndTrack(id); err != nil {
					return res, err
				}
			}
			res.Ended = true
			h.log.Info("end of stream", "point", point.Name, "stream", streamID)
		}
	}
}

// apply stores the fragments of an action.
func (h *Handler) apply(point *store.Point, streamID string, act action, opts ReceiveOptions,
	hasPending func() bool, commit, record func() error, res *Result) error {
	if act.dropped > 0 {
		res.Dropped += act.dropped
		h.m.FragmentsIn.WithLabelValues(point.Name, "overlap").Add(float64(act.dropped))
		h.log.Warn("fragments of a restarted encoder overlap the stored timeline after placement; dropped",
			"point", point.Name, "stream", streamID, "fragments", act.dropped)
	}
	for _, it := range act.store {
		if err := h.add(point, streamID, it.track, it.f, opts, hasPending, commit, record, res); err != nil {
			return err
		}
	}
	return nil
}

// add stores one fragment, committing the body's pending header first when
// the fragment is not a copy of a stored one (a copy only records a new
// stream, see store.Point.RecordStream).
func (h *Handler) add(point *store.Point, streamID, id string, f *media.Fragment, opts ReceiveOptions,
	hasPending func() bool, commit, record func() error, res *Result) error {
	if opts.Hooks.Before != nil {
		opts.Hooks.Before(id, f)
	}
	if hasPending() {
		switch pl, _, _ := point.Place(id, f.Info.Start, f.Info.Duration, f.Data); pl {
		case store.PlaceDuplicate:
			// A copy changes nothing, but a new stream id that carries
			// copies (a redundant encoder) is recorded, to be pulled.
			if err := record(); err != nil {
				return err
			}
		case store.PlaceDiffers:
		default:
			if err := commit(); err != nil {
				return err
			}
		}
	}
	r, err := point.AddFragment(id, f)
	if err != nil {
		return err
	}
	if r != store.Differs {
		// The stream carries media (stored, or the same bytes as stored):
		// offer it to pull.
		if err := point.StreamFed(streamID); err != nil {
			return err
		}
	}
	switch r {
	case store.Added:
		res.Fragments++
		h.m.FragmentsIn.WithLabelValues(point.Name, "added").Inc()
		h.m.BytesIn.WithLabelValues(point.Name).Add(float64(len(f.Data)))
	case store.Duplicate:
		res.Duplicates++
		h.m.FragmentsIn.WithLabelValues(point.Name, "duplicate").Inc()
	case store.Differs:
		res.Duplicates++
		h.m.FragmentsIn.WithLabelValues(point.Name, "differs").Inc()
		h.log.Warn("redundant fragment differs from the stored copy; first copy kept",
			"point", point.Name, "stream", streamID, "track", id, "start", f.Info.Start)
	}
	if opts.Hooks.After != nil {
		opts.Hooks.After(id, f, r)
	}
	return nil
}

// part publishes a part of a fragment still being received (see
// store.Point.AddPart). Parts of a push wait until its timeline is
// settled (the first fragment judged: a restart is placed, a redundant
// copy found out) and are moved like its fragments; none is published
// while the body's header is not stored yet.
func (h *Handler) part(point *store.Point, streamID, id string, part media.Part, tl *timeline, pending bool) error {
	if id == "" || pending {
		return nil
	}
	if tl != nil {
		var ok bool
		var err error
		if part, ok, err = tl.placePart(id, part); err != nil || !ok {
			return err
		}
	}
	if _, err := point.AddPart(id, streamID, part); err != nil {
		return fmt.Errorf("part of track %s: %w", id, err)
	}
	h.m.PartsIn.WithLabelValues(point.Name).Inc()
	return nil
}

// elapsed rounds a duration for logs.
func elapsed(since time.Time) time.Duration { return time.Since(since).Round(time.Millisecond) }
