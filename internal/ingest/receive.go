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
	// Restart makes a resumed stream live again (its source says it is live).
	Restart bool
	Hooks   Hooks
	// guard bounds a push (progress, receive rate, memory); nil for pulls.
	guard *guard
}

// Result is what Receive did with a body.
type Result struct {
	Fragments  int   // fragments stored
	Duplicates int   // fragments already stored (identical or not)
	Bytes      int64 // body bytes consumed
	Ended      bool  // the body carried the end of the stream
}

// Receive parses body as one ingest stream of point — ftyp, manifest box,
// moov, moof/mdat pairs, an end box — and stores every fragment durably. It
// is the one code path of every body that reaches a store: encoder pushes,
// bodies forwarded by a push proxy, and streams an origin pulls from an
// ingest. It returns at the end of the body (io.EOF is no error) or at the
// first error; the Result counts what was stored before it. Errors wrap the
// media and store errors, so that callers can map them to a status.
func (h *Handler) Receive(ctx context.Context, point *store.Point, streamID string, body io.Reader, opts ReceiveOptions) (res Result, err error) {
	var ids map[uint32]string
	hdr, _ := point.StreamHeader(streamID)
	if hdr != nil {
		if opts.Resume && !opts.Restart {
			for _, s := range point.Streams() {
				if s.ID == streamID {
					ids = s.Tracks
				}
			}
		} else if m, err := point.SetHeader(streamID, hdr); err == nil {
			ids = m
		}
	}
	p := media.NewStreamParser(body, uint64(h.cfg.MaxBox), hdr)
	defer p.Close()
	if opts.guard != nil {
		opts.guard.attach(p)
	}
	defer point.Receiving(streamID)()
	defer func() { res.Bytes = p.Offset() }()
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("receive stream %s: %w", streamID, err)
		}
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		switch ev.Kind {
		case media.EventHeader:
			m, err := point.SetHeader(streamID, ev.Header)
			if err != nil {
				return res, err
			}
			ids = m
			h.log.Info("stream header", "point", point.Name, "stream", streamID, "tracks", trackList(ev.Header, ids))
		case media.EventFragment:
			f := ev.Fragment
			id := ids[f.Info.TrackID]
			if opts.Hooks.Before != nil {
				opts.Hooks.Before(id, f)
			}
			r, err := point.AddFragment(id, f)
			if err != nil {
				return res, err
			}
			if r != store.Differs {
				// The stream carries media (stored, or the same bytes
				// as stored): offer it to pull.
				if err := point.StreamFed(streamID); err != nil {
					return res, err
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
					"point", point.Name, "track", id, "start", f.Info.Start)
			}
			if opts.Hooks.After != nil {
				opts.Hooks.After(id, f, r)
			}
		case media.EventEnd:
			for _, id := range ids {
				if err := point.EndTrack(id); err != nil {
					return res, err
				}
			}
			res.Ended = true
			h.log.Info("end of stream", "point", point.Name, "stream", streamID)
		}
	}
}

// elapsed rounds a duration for logs.
func elapsed(since time.Time) time.Duration { return time.Since(since).Round(time.Millisecond) }
