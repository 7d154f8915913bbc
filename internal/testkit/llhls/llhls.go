// Package llhls checks low-latency HLS media playlists (RFC 8216bis) as
// the tests see them, parsed with github.com/Eyevinn/hls-m3u8: part
// durations within PART-TARGET, parts numbered by the segment they belong
// to, the parts of a complete segment covering it, the server control a
// blocking client needs, a preload hint naming the part after the last one
// listed, and delta updates that agree with the full playlist. It knows
// Sluice's part names (part-<start>.m4s, start in the track's timescale)
// to check that the parts and the hint are contiguous.
package llhls

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// Parse parses a media playlist.
func Parse(body []byte) (*m3u8.MediaPlaylist, error) {
	pl, typ, err := m3u8.Decode(*bytes.NewBuffer(body), false)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if typ != m3u8.MEDIA {
		return nil, errors.New("not a media playlist")
	}
	return pl.(*m3u8.MediaPlaylist), nil
}

// partStart is the start time in a Sluice part URI (part-<start>.m4s).
func partStart(uri string) (int64, bool) {
	v, ok := strings.CutPrefix(path.Base(uri), "part-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(v, ".m4s"), 10, 64)
	return n, err == nil
}

// Check checks a media playlist: nothing when it lists no parts (not a
// low-latency playlist), else every rule above; it returns every rule
// broken, joined.
func Check(body []byte) error {
	mp, err := Parse(body)
	if err != nil {
		return err
	}
	if mp.PartTargetDuration == 0 && len(mp.PartialSegments) == 0 {
		return nil
	}
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	target := float64(mp.PartTargetDuration)
	if target <= 0 {
		bad("parts without EXT-X-PART-INF:PART-TARGET")
	}
	sc := mp.ServerControl
	switch {
	case sc == nil:
		bad("no EXT-X-SERVER-CONTROL")
	case !sc.CanBlockReload:
		bad("EXT-X-SERVER-CONTROL without CAN-BLOCK-RELOAD=YES")
	case sc.PartHoldBack < 2*target:
		bad("PART-HOLD-BACK %.3f is under twice PART-TARGET %.3f", sc.PartHoldBack, target)
	}
	segs := mp.GetAllSegments()
	first := mp.SeqNo + mp.SkippedSegments()
	last := first + uint64(len(segs)) - 1 // the last complete segment
	if len(segs) == 0 {
		last = first - 1
	}
	// hls-m3u8 numbers the parts (SeqID) from EXT-X-MEDIA-SEQUENCE as if
	// no segment were skipped.
	msn := func(p *m3u8.PartialSegment) uint64 { return p.SeqID + mp.SkippedSegments() }
	sums := map[uint64]float64{}
	var prev *m3u8.PartialSegment
	var ticks float64 // timescale ticks per second, from two contiguous parts
	for i, p := range mp.PartialSegments {
		if p.Duration > target+1e-9 {
			bad("part %d (%s) lasts %.3f s, over PART-TARGET %.3f", i, p.URI, p.Duration, target)
		}
		if msn(p) < first || msn(p) > last+1 {
			bad("part %d (%s) belongs to segment %d, outside %d..%d", i, p.URI, msn(p), first, last+1)
		}
		sums[msn(p)] += p.Duration
		if prev != nil {
			if p.SeqID < prev.SeqID {
				bad("part %d (%s) of segment %d after a part of segment %d", i, p.URI, msn(p), msn(prev))
			}
			a, okA := partStart(prev.URI)
			b, okB := partStart(p.URI)
			if okA && okB {
				if b <= a {
					bad("part %d (%s) does not start after the part before (%s)", i, p.URI, prev.URI)
				} else if ticks == 0 {
					ticks = float64(b-a) / prev.Duration
				} else if d := math.Abs(float64(b-a)/ticks - prev.Duration); d > 0.002 {
					bad("part %d (%s) does not start where the part before (%s) ends: %.3f s apart", i, p.URI, prev.URI, d)
				}
			}
		}
		prev = p
	}
	// The parts of a complete segment cover it (the oldest listed segment
	// with parts may have lost its first parts to the playlist's window).
	for i, s := range segs {
		n := first + uint64(i)
		sum, ok := sums[n]
		if !ok || n == msn(mp.PartialSegments[0]) {
			continue
		}
		if math.Abs(sum-s.Duration) > 0.002*float64(len(mp.PartialSegments)) {
			bad("the parts of segment %d last %.3f s, the segment %.3f s", n, sum, s.Duration)
		}
	}
	ph := mp.PreloadHints
	switch {
	case ph == nil:
		bad("no EXT-X-PRELOAD-HINT")
	case ph.Type != "PART":
		bad("preload hint of type %q", ph.Type)
	case prev != nil && ticks > 0:
		a, okA := partStart(prev.URI)
		h, okH := partStart(ph.URI)
		if okA && okH && math.Abs(float64(h-a)/ticks-prev.Duration) > 0.002 {
			bad("preload hint %s does not name the part after the last one (%s, %.3f s)", ph.URI, prev.URI, prev.Duration)
		}
	}
	return errors.Join(errs...)
}

// CheckDelta checks a delta update (EXT-X-SKIP) against the full playlist
// of the same moment: the same media sequence, the skipped segments and
// the ones listed add up to the full playlist's, and the listed ones are
// the full playlist's last ones. Live playlists move between two requests:
// the caller asks both with the same blocking directives, and the full
// playlist may have one segment more at its end.
func CheckDelta(full, delta []byte) error {
	f, err := Parse(full)
	if err != nil {
		return fmt.Errorf("full: %w", err)
	}
	d, err := Parse(delta)
	if err != nil {
		return fmt.Errorf("delta: %w", err)
	}
	if d.SkippedSegments() == 0 {
		return errors.New("delta update skips no segment")
	}
	fs, ds := f.GetAllSegments(), d.GetAllSegments()
	if d.SeqNo != f.SeqNo {
		return fmt.Errorf("delta media sequence %d, full %d", d.SeqNo, f.SeqNo)
	}
	n := int(d.SkippedSegments()) + len(ds)
	if n != len(fs) && n+1 != len(fs) {
		return fmt.Errorf("delta lists %d skipped + %d segments, the full playlist %d", d.SkippedSegments(), len(ds), len(fs))
	}
	for i, s := range ds {
		o := fs[int(d.SkippedSegments())+i]
		if s.URI != o.URI || math.Abs(s.Duration-o.Duration) > 1e-6 {
			return fmt.Errorf("delta segment %d is %s (%.3f s), the full playlist's %s (%.3f s)", i, s.URI, s.Duration, o.URI, o.Duration)
		}
	}
	return nil
}
