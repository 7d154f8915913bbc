package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrExists is returned when a point or asset of that name exists already.
var ErrExists = errors.New("already exists")

// ErrEmptyCut is returned when no fragment of any track starts in the range.
var ErrEmptyCut = errors.New("no fragment starts in the range")

// cutFile records where an asset was cut from.
const cutFile = "cut.json"

// OpenShared opens a data directory that a running server may be using at
// the same time (`sluice archive cut --data`): nothing is scanned up front,
// points load on first use, and loading never removes a file (a temporary
// file may be a write in progress in the server).
func OpenShared(dir string, log *slog.Logger) (*Store, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data directory %s is not a directory", dir)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{dir: dir, log: log, shared: true, points: map[string]*Point{}}, nil
}

// CutInfo is the provenance of an asset cut from an archive (cut.json).
type CutInfo struct {
	Source string    `json:"source"`
	From   float64   `json:"from"` // requested range, seconds of media time
	To     float64   `json:"to"`
	Start  float64   `json:"start"` // earliest fragment start taken, seconds
	End    float64   `json:"end"`   // latest fragment end taken, seconds
	Cut    time.Time `json:"cut"`
}

// CutResult describes a new asset made by Cut.
type CutResult struct {
	Asset     string
	Dir       string
	Tracks    int
	Fragments int
	Bytes     int64
	// Start and End are the earliest fragment start and the latest fragment
	// end taken, as times on the source's media timeline.
	Start, End time.Duration
	// Copied counts fragments copied because a hard link was impossible.
	Copied int
}

// Duration is the length of the asset.
func (r CutResult) Duration() time.Duration { return r.End - r.Start }

// toTicks converts a time of the media timeline to a track timescale,
// rounding down, without overflow for epoch-anchored times.
func toTicks(d time.Duration, timescale uint32) int64 {
	ts := int64(timescale)
	sec, frac := int64(d/time.Second), int64(d%time.Second)
	return sec*ts + frac*ts/int64(time.Second)
}

// fromTicks converts a time of a track to the media timeline.
func fromTicks(t int64, timescale uint32) time.Duration {
	ts := int64(timescale)
	return time.Duration(t/ts)*time.Second + time.Duration(t%ts*int64(time.Second)/ts)
}

// Cut makes the on-demand asset named asset from the fragments of point
// src that start in [from, to), times on the point's media timeline (the
// time in each track's timescale divided by the timescale: the presentation
// time of the live DASH MPD, Unix time for epoch-anchored channels). The cut
// lies on the fragment boundaries of the reference track (the first video
// track, else the first track): its fragments that start in [from, to) are
// taken, so the asset runs from the first of them to the end of the last.
// Every other track takes the fragments whose middle lies in that span, so
// audio fragments that straddle a boundary fall on the side where most of
// them lies and all tracks cover the same span to within half a fragment.
//
// Fragment files are hard-linked (copied where a link is impossible), so a
// cut costs no media I/O and retention deleting the source's fragments later
// leaves the asset intact. The asset is built in a hidden directory and
// renamed into place when complete: a server never sees half of it. Its
// tracks are ended and it is marked VOD, so its manifests are static.
func (s *Store) Cut(src, asset string, from, to time.Duration) (CutResult, error) {
	res := CutResult{Asset: asset}
	if to <= from {
		return res, fmt.Errorf("cut [%v, %v): the end must be after the start", from, to)
	}
	if !ValidPointName(asset) {
		return res, fmt.Errorf("invalid asset name %q", asset)
	}
	if asset == src {
		return res, fmt.Errorf("asset %q: cannot cut a point into itself: %w", asset, ErrExists)
	}
	p, err := s.Point(src)
	if err != nil {
		return res, err
	}
	dest := filepath.Join(s.dir, filepath.FromSlash(asset))
	res.Dir = dest
	if _, err := os.Stat(dest); err == nil {
		return res, fmt.Errorf("asset %q: %w", asset, ErrExists)
	}
	// Points do not nest: no prefix of the asset name may be a point.
	parts := strings.Split(asset, "/")
	for i := 1; i < len(parts); i++ {
		if _, err := os.Stat(filepath.Join(s.dir, filepath.Join(parts[:i]...), pointFile)); err == nil {
			return res, fmt.Errorf("asset %q would lie inside point %q", asset, strings.Join(parts[:i], "/"))
		}
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return res, fmt.Errorf("create asset parent directory: %w", err)
	}
	tmp, err := os.MkdirTemp(s.dir, ".cut-")
	if err != nil {
		return res, fmt.Errorf("create cut directory: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	v := p.View(0)
	// The reference track fixes the span [spanFrom, spanTo).
	ref := -1
	for i, tv := range v.Tracks {
		if tv.Info.Timescale != 0 && (ref < 0 || (tv.Info.Kind == "video" && v.Tracks[ref].Info.Kind != "video")) {
			ref = i
		}
	}
	if ref < 0 {
		return res, fmt.Errorf("cut %q: %w", src, ErrEmptyCut)
	}
	var spanFrom, spanTo time.Duration
	{
		tv := v.Tracks[ref]
		a, b := toTicks(from, tv.Info.Timescale), toTicks(to, tv.Info.Timescale)
		var sel []FragRef
		for _, f := range tv.Frags {
			if f.Start >= a && f.Start < b {
				sel = append(sel, f)
			}
		}
		if len(sel) == 0 {
			return res, fmt.Errorf("cut %q [%v, %v): %w", src, from, to, ErrEmptyCut)
		}
		spanFrom, spanTo = fromTicks(sel[0].Start, tv.Info.Timescale), fromTicks(sel[len(sel)-1].End(), tv.Info.Timescale)
	}
	first := true
	for i, tv := range v.Tracks {
		if tv.Info.Timescale == 0 {
			continue
		}
		var sel []FragRef
		if i == ref {
			a, b := toTicks(from, tv.Info.Timescale), toTicks(to, tv.Info.Timescale)
			for _, f := range tv.Frags {
				if f.Start >= a && f.Start < b {
					sel = append(sel, f)
				}
			}
		} else {
			// Twice the middle against twice the span: no rounding.
			a, b := 2*toTicks(spanFrom, tv.Info.Timescale), 2*toTicks(spanTo, tv.Info.Timescale)
			for _, f := range tv.Frags {
				if mid := 2*f.Start + int64(f.Duration); mid >= a && mid < b {
					sel = append(sel, f)
				}
			}
		}
		if len(sel) == 0 {
			continue
		}
		init, err := p.Init(tv.ID)
		if err != nil {
			return res, err
		}
		dir := filepath.Join(tmp, "t", tv.ID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return res, fmt.Errorf("create track directory: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(dir, initFile), init); err != nil {
			return res, fmt.Errorf("write init of %s: %w", tv.ID, err)
		}
		for _, f := range sel {
			copied, err := linkOrCopy(filepath.Join(p.dir, "t", tv.ID, fragName(f.Start)), filepath.Join(dir, fragName(f.Start)))
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return res, fmt.Errorf("fragment %s/%d was deleted (retention) during the cut; cut a later range: %w", tv.ID, f.Start, err)
				}
				return res, fmt.Errorf("fragment %s/%d: %w", tv.ID, f.Start, err)
			}
			if copied {
				res.Copied++
			}
			if _, err := linkOrCopy(filepath.Join(p.dir, "t", tv.ID, eventsName(f.Start)), filepath.Join(dir, eventsName(f.Start))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return res, fmt.Errorf("events of fragment %s/%d: %w", tv.ID, f.Start, err)
			}
			res.Fragments++
			res.Bytes += f.Size
		}
		t := &track{ID: tv.ID, Info: tv.Info, Stream: tv.Stream, Ended: true}
		if err := writeJSON(filepath.Join(dir, trackFile), t); err != nil {
			return res, fmt.Errorf("write track %s: %w", tv.ID, err)
		}
		if err := syncDir(dir); err != nil {
			return res, err
		}
		start := fromTicks(sel[0].Start, tv.Info.Timescale)
		end := fromTicks(sel[len(sel)-1].End(), tv.Info.Timescale)
		if first || start < res.Start {
			res.Start = start
		}
		if first || end > res.End {
			res.End = end
		}
		first = false
		res.Tracks++
	}
	if res.Tracks == 0 {
		return res, fmt.Errorf("cut %q [%v, %v): %w", src, from, to, ErrEmptyCut)
	}
	meta := PointMeta{Created: time.Now().UTC(), Anchor: v.Meta.Anchor, VOD: true}
	if err := writeJSON(filepath.Join(tmp, pointFile), meta); err != nil {
		return res, err
	}
	if err := writeCuesIn(tmp, p.Cues(), res.Start, res.End); err != nil {
		return res, err
	}
	info := CutInfo{Source: src, From: from.Seconds(), To: to.Seconds(),
		Start: res.Start.Seconds(), End: res.End.Seconds(), Cut: meta.Created}
	if err := writeJSON(filepath.Join(tmp, cutFile), info); err != nil {
		return res, err
	}
	if err := syncDir(filepath.Join(tmp, "t")); err != nil {
		return res, err
	}
	if err := os.Rename(tmp, dest); err != nil {
		if _, serr := os.Stat(dest); serr == nil {
			return res, fmt.Errorf("asset %q: %w", asset, ErrExists)
		}
		return res, fmt.Errorf("move asset into place: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(dest)); err != nil {
		return res, err
	}
	if _, err := s.load(asset); err != nil {
		return res, err
	}
	return res, nil
}

// linkOrCopy hard-links src to dst, or copies it durably where links are
// not possible; copied reports the latter.
func linkOrCopy(src, dst string) (copied bool, err error) {
	lerr := os.Link(src, dst)
	if lerr == nil {
		return false, nil
	}
	if errors.Is(lerr, os.ErrNotExist) {
		return false, lerr
	}
	in, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return false, err
	}
	return true, writeFileAtomic(dst, data)
}
