package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/sluice-media/sluice/internal/media"
)

// Event messages (media.Emsg) are stored two ways:
//
//   - in-band events, the emsg boxes an encoder sent before a fragment, in
//     a file beside the fragment (<start>.emsg: version 1 emsg boxes with
//     absolute times on the track's timescale), written durably before
//     the fragment itself, so that a fragment on disk always has its
//     events; a file without its fragment (a crash between the two) is
//     ignored and overwritten when the encoder resends the fragment;
//   - cues inserted out of band (the cues API), in the point's cues.json,
//     times in 90 kHz ticks on the point's media timeline.
const (
	eventsExt = ".emsg"
	cuesFile  = "cues.json"
	// MaxCues bounds the cues kept per point; the earliest go first.
	MaxCues = 1024
	// CueTimescale is the timescale of cue times (SCTE-35's 90 kHz).
	CueTimescale = 90000
)

func eventsName(start int64) string { return strconv.FormatInt(start, 10) + eventsExt }

// writeEvents stores the events of the fragment at start of track id
// durably (nothing when there are none). p.mu need not be held.
func (p *Point) writeEvents(id string, start int64, evs []media.Emsg) error {
	if len(evs) == 0 {
		return nil
	}
	b, err := media.EncodeEvents(evs)
	if err != nil {
		return fmt.Errorf("track %s: %w", id, err)
	}
	if err := writeFile(filepath.Join(p.dir, "t", id, eventsName(start)), b, !p.store.noSync); err != nil {
		return fmt.Errorf("store events: %w", err)
	}
	return nil
}

// loadEvents reads the events files of t's indexed fragments from dir;
// names are the files of the directory.
func (p *Point) loadEvents(dir string, t *track, names map[int64]bool) {
	for _, f := range t.frags {
		if !names[f.Start] {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, eventsName(f.Start)))
		if err == nil {
			var evs []media.Emsg
			if evs, err = media.DecodeEvents(b); err == nil {
				t.setEvents(f.Start, evs)
				continue
			}
		}
		p.store.log.Warn("skipping unreadable events", "point", p.Name, "track", t.ID, "start", f.Start, "err", err)
	}
}

// setEvents records the events of t's fragment at start. p.mu must be held
// for writing.
func (t *track) setEvents(start int64, evs []media.Emsg) {
	if len(evs) == 0 {
		return
	}
	if t.events == nil {
		t.events = map[int64][]media.Emsg{}
		t.schemes = map[EventScheme]int{}
	}
	t.forget(start)
	t.events[start] = evs
	seen := map[EventScheme]bool{}
	for _, e := range evs {
		if es := (EventScheme{e.Scheme, e.Value}); !seen[es] {
			seen[es] = true
			t.schemes[es]++
		}
		if e.Scheme == media.SchemeSCTE35 {
			t.listed = append(t.listed, listedEvent{frag: start, e: e})
		}
	}
	sort.SliceStable(t.listed, func(i, j int) bool { return t.listed[i].frag < t.listed[j].frag })
}

// forget drops what setEvents recorded for the fragment at start.
func (t *track) forget(start int64) {
	old, ok := t.events[start]
	if !ok {
		return
	}
	delete(t.events, start)
	seen := map[EventScheme]bool{}
	for _, e := range old {
		if es := (EventScheme{e.Scheme, e.Value}); !seen[es] {
			seen[es] = true
			if t.schemes[es]--; t.schemes[es] <= 0 {
				delete(t.schemes, es)
			}
		}
	}
	kept := t.listed[:0]
	for _, l := range t.listed {
		if l.frag != start {
			kept = append(kept, l)
		}
	}
	t.listed = kept
}

// listedEvent is an event the manifests list (SCTE-35) and the start of
// the fragment it is stored with.
type listedEvent struct {
	frag int64
	e    media.Emsg
}

// dropEvents forgets and deletes the events of pruned fragments.
func (p *Point) dropEvents(t *track, gone []FragRef) {
	for _, f := range gone {
		if _, ok := t.events[f.Start]; ok {
			t.forget(f.Start)
			os.Remove(filepath.Join(p.dir, "t", t.ID, eventsName(f.Start)))
		}
	}
}

// Events returns the in-band events stored with the fragment of track id
// that starts at start (nil when none).
func (p *Point) Events(id string, start int64) []media.Emsg {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if t := p.tracks[id]; t != nil {
		return t.events[start]
	}
	return nil
}

// listedFrom returns t's events that manifests list (SCTE-35) stored with
// the fragments from start on: a few per break, whatever else (an ID3 tag
// per fragment) the track holds. p.mu must be held.
func (t *track) listedFrom(start int64) []media.Emsg {
	i := sort.Search(len(t.listed), func(i int) bool { return t.listed[i].frag >= start })
	out := make([]media.Emsg, 0, len(t.listed)-i)
	for _, l := range t.listed[i:] {
		out = append(out, l.e)
	}
	return out
}

// schemeList is the schemes t's stored events use, sorted.
func (t *track) schemeList() []EventScheme {
	if len(t.schemes) == 0 {
		return nil
	}
	out := make([]EventScheme, 0, len(t.schemes))
	for es := range t.schemes {
		out = append(out, es)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Scheme != out[j].Scheme {
			return out[i].Scheme < out[j].Scheme
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// sameEvent reports whether two events are one: the same scheme, value,
// id and message at the same time (to the millisecond), as the copies
// an encoder sends on its video and audio tracks are.
func sameEvent(a, b media.Emsg) bool {
	return a.Scheme == b.Scheme && a.Value == b.Value && a.ID == b.ID &&
		eventMillis(a) == eventMillis(b) && bytes.Equal(a.Data, b.Data)
}

func eventMillis(e media.Emsg) int64 {
	if e.Timescale == 0 {
		return 0
	}
	return int64(fromTicks(e.Time, e.Timescale) / time.Millisecond)
}

// mergeEvents sorts events by time and drops copies (sameEvent).
func mergeEvents(evs []media.Emsg) []media.Emsg {
	sort.SliceStable(evs, func(i, j int) bool {
		return fromTicks(evs[i].Time, evs[i].Timescale) < fromTicks(evs[j].Time, evs[j].Timescale)
	})
	out := evs[:0]
	for _, e := range evs {
		dup := false
		for k := len(out) - 1; k >= 0 && eventMillis(out[k]) == eventMillis(e); k-- {
			if sameEvent(out[k], e) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}

func (p *Point) loadCues() {
	b, err := os.ReadFile(filepath.Join(p.dir, cuesFile))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.store.log.Warn("skipping unreadable cues", "point", p.Name, "err", err)
		}
		return
	}
	if err := json.Unmarshal(b, &p.cues); err != nil {
		p.store.log.Warn("skipping unreadable cues", "point", p.Name, "err", err)
		p.cues = nil
	}
}

// AddCue stores an event inserted out of band (the cues API) durably with
// the point: cue.Timescale must be CueTimescale. A cue equal to one kept
// (sameEvent) is stored once. Beyond MaxCues the earliest is dropped.
func (p *Point) AddCue(cue media.Emsg) error {
	if cue.Timescale != CueTimescale || cue.Time < 0 {
		return fmt.Errorf("cue at %d/%d: time must be in %d Hz ticks, not negative", cue.Time, cue.Timescale, CueTimescale)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.cues {
		if sameEvent(c, cue) {
			return nil
		}
	}
	cues := mergeEvents(append(append([]media.Emsg(nil), p.cues...), cue))
	if len(cues) > MaxCues {
		cues = cues[len(cues)-MaxCues:]
	}
	if err := writeJSONSync(filepath.Join(p.dir, cuesFile), cues, !p.store.noSync); err != nil {
		return fmt.Errorf("store cue: %w", err)
	}
	p.cues = cues
	p.notify()
	return nil
}

// Cues returns the cues kept for the point, earliest first.
func (p *Point) Cues() []media.Emsg {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return append([]media.Emsg(nil), p.cues...)
}

// Edge is the latest fragment end over the point's tracks on its media
// timeline, and whether any fragment is stored.
func (p *Point) Edge() (time.Duration, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	tl := p.pointTimeline("")
	return tl.end, tl.known
}

// writeCuesIn writes to dir the cues of v that lie in [from, to) (a cut).
func writeCuesIn(dir string, cues []media.Emsg, from, to time.Duration) error {
	var sel []media.Emsg
	for _, c := range cues {
		if t := fromTicks(c.Time, c.Timescale); t >= from && t < to {
			sel = append(sel, c)
		}
	}
	if len(sel) == 0 {
		return nil
	}
	return writeJSON(filepath.Join(dir, cuesFile), sel)
}
