package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// activity is what an ingest stream did since the process started: kept in
// memory only (a restart gives every stream a fresh start).
type activity struct {
	since time.Time // the stream was loaded or created
	last  time.Time // the last fragment arrived on it (zero: none yet)
}

// idleSince is when the stream last showed life: its last fragment, or its
// loading or creation.
func (a activity) idleSince() time.Time {
	if a.last.After(a.since) {
		return a.last
	}
	return a.since
}

// inferFed marks as fed, at load, the streams that predate the fed flag and
// created a track that holds fragments. Call with p.mu held (or before the
// point is shared).
func (p *Point) inferFed() {
	for _, st := range p.streams {
		if st.Fed {
			continue
		}
		for _, id := range st.Tracks {
			if t := p.tracks[id]; t != nil && t.Stream == st.ID && len(t.frags) > 0 {
				st.Fed = true
				break
			}
		}
	}
}

// Receiving records that a body is being received on a stream (a push, a
// pull into an origin) until the returned function is called: a stream in
// use is never expired.
func (p *Point) Receiving(streamID string) (done func()) {
	p.mu.Lock()
	p.busy[streamID]++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.busy[streamID]--; p.busy[streamID] <= 0 {
			delete(p.busy, streamID)
		}
	}
}

// StreamFed records that a fragment arrived on a stream (stored, or a copy
// of one stored). The first one marks the stream as fed durably: only fed
// streams are offered to pull (a stream whose pushes never delivered a
// fragment carries nothing). An unknown stream is ignored.
func (p *Point) StreamFed(streamID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.streams[streamID]
	if st == nil {
		return nil
	}
	st.act.last = time.Now()
	if st.Fed {
		return nil
	}
	st.Fed = true
	if err := writeJSON(filepath.Join(p.dir, "s", streamID, streamFile), st); err != nil {
		st.Fed = false
		return fmt.Errorf("save stream %s: %w", streamID, err)
	}
	return nil
}

// ExpireStreams removes the records of the streams that never received a
// fragment, receive nothing now, and were created (or loaded) more than
// after before now: what refused pushes with ever new stream ids leave. It
// returns the ids removed. Fed streams are kept: they hold a recording.
func (p *Point) ExpireStreams(now time.Time, after time.Duration) ([]string, error) {
	if after <= 0 {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var gone []string
	for id, st := range p.streams {
		if st.Fed || p.busy[id] > 0 || now.Sub(st.act.idleSince()) <= after {
			continue
		}
		if err := os.RemoveAll(filepath.Join(p.dir, "s", id)); err != nil {
			return gone, diskErr(err)
		}
		delete(p.streams, id)
		gone = append(gone, id)
	}
	if len(gone) > 0 {
		p.notify()
	}
	return gone, nil
}
