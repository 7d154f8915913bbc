package player

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// A low-latency HLS media playlist (RFC 8216bis) as `sluice play
// --low-latency` follows it: the segments, the parts (EXT-X-PART) of the
// newest ones, the segment in progress (parts only, listed after the last
// EXTINF), the preload hint, and the server control that says what the
// server does (blocking reloads, delta updates, PART-HOLD-BACK).

// llPart is one EXT-X-PART.
type llPart struct {
	URL         string
	Dur         time.Duration
	Independent bool
}

// llSeg is one media segment of a low-latency playlist: a complete one
// (URL and Dur from its EXTINF, maybe with parts) or the one in progress
// (Open: parts only).
type llSeg struct {
	Seq   int64
	URL   string
	Dur   time.Duration
	Wall  time.Time // its program date time (zero: unknown)
	Parts []llPart
	Open  bool
}

// end is the segment's duration as listed: its EXTINF, or the sum of the
// parts of the one in progress.
func (s llSeg) end() time.Duration {
	if !s.Open {
		return s.Dur
	}
	var d time.Duration
	for _, p := range s.Parts {
		d += p.Dur
	}
	return d
}

// llPlaylist is a parsed (and, for a delta update, merged) low-latency
// media playlist.
type llPlaylist struct {
	target       time.Duration // EXT-X-TARGETDURATION
	partTarget   time.Duration // EXT-X-PART-INF:PART-TARGET; 0: not low-latency
	partHoldBack time.Duration
	canBlock     bool          // CAN-BLOCK-RELOAD=YES
	canSkipUntil time.Duration // CAN-SKIP-UNTIL; 0: no delta updates
	seq          int64         // EXT-X-MEDIA-SEQUENCE
	skipped      int64         // EXT-X-SKIP:SKIPPED-SEGMENTS (0 once merged)
	ended        bool
	init         *Segment
	segs         []llSeg // complete segments, then the one in progress (if any)
	hint         string  // EXT-X-PRELOAD-HINT TYPE=PART URI (resolved), "" none
}

// lowLatency tells whether the playlist is one to play in low-latency
// mode: it has parts and is live.
func (p *llPlaylist) lowLatency() bool { return p.partTarget > 0 && !p.ended }

// seg returns the segment with media sequence number msn, or nil.
func (p *llPlaylist) seg(msn int64) *llSeg {
	if len(p.segs) == 0 {
		return nil
	}
	i := msn - p.segs[0].Seq
	if i < 0 || i >= int64(len(p.segs)) {
		return nil
	}
	return &p.segs[i]
}

// last returns the newest segment (complete or in progress).
func (p *llPlaylist) last() *llSeg {
	if len(p.segs) == 0 {
		return nil
	}
	return &p.segs[len(p.segs)-1]
}

// nextReload is the _HLS_msn and _HLS_part of a blocking reload for the
// part after the newest one listed: the next part of the segment in
// progress, else part 0 of the segment after the last complete one.
func (p *llPlaylist) nextReload() (msn int64, part int) {
	l := p.last()
	if l == nil {
		return p.seq, 0
	}
	if l.Open {
		return l.Seq, len(l.Parts)
	}
	return l.Seq + 1, 0
}

// reloadURL is a blocking playlist reload of playlist uri (RFC 8216bis
// 6.2.5.2): _HLS_msn=msn&_HLS_part=part (part < 0: none), with
// _HLS_skip=YES for a delta update; other query parameters are kept. The
// directives come in the order the RFC gives (msn, part, skip), so that
// caches see one URL per request.
func reloadURL(uri string, msn int64, part int, skip bool) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("playlist URL: %w", err)
	}
	q := u.Query()
	q.Del("_HLS_msn")
	q.Del("_HLS_part")
	q.Del("_HLS_skip")
	rest := q.Encode()
	d := "_HLS_msn=" + strconv.FormatInt(msn, 10)
	if part >= 0 {
		d += "&_HLS_part=" + strconv.Itoa(part)
	}
	if skip {
		d += "&_HLS_skip=YES"
	}
	if rest != "" {
		d = rest + "&" + d
	}
	u.RawQuery = d
	return u.String(), nil
}

// parseLLPlaylist parses a media playlist with github.com/Eyevinn/hls-m3u8.
// hls-m3u8 cannot attach an EXT-X-PART before the first EXTINF (it fails
// the whole playlist), so those parts — of the first listed segment, which
// is complete — are left out before it reads the playlist; the player
// fetches that segment whole if it needs it. It numbers the segments after
// an EXT-X-SKIP from EXT-X-MEDIA-SEQUENCE, not counting the skipped ones,
// which this corrects.
func parseLLPlaylist(data []byte, base *url.URL) (*llPlaylist, error) {
	pl, err := decodePlaylist(stripLeadingParts(data), m3u8.MEDIA)
	if err != nil {
		return nil, fmt.Errorf("media playlist: %w", err)
	}
	mp := pl.(*m3u8.MediaPlaylist)
	if mp.TargetDuration == 0 {
		return nil, errors.New("media playlist without EXT-X-TARGETDURATION")
	}
	sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	p := &llPlaylist{
		target:     time.Duration(mp.TargetDuration) * time.Second,
		partTarget: sec(mp.PartTargetDuration),
		seq:        int64(mp.SeqNo),
		skipped:    int64(mp.SkippedSegments()),
		ended:      mp.Closed || mp.MediaType == m3u8.VOD,
	}
	if sc := mp.ServerControl; sc != nil {
		p.partHoldBack = sec(sc.PartHoldBack)
		p.canBlock = sc.CanBlockReload
		p.canSkipUntil = sec(sc.CanSkipUntil)
	}
	if p.partTarget > 0 && p.partHoldBack <= 0 {
		p.partHoldBack = 3 * p.partTarget // RFC 8216bis: at least three part targets
	}
	if mp.Map != nil {
		if p.init, err = mapSegment(base, mp.Map); err != nil {
			return nil, err
		}
	}
	var wall time.Time
	var firstID uint64
	for i, s := range mp.Segments {
		if s == nil {
			break
		}
		if i == 0 {
			firstID = s.SeqId
		}
		if !(s.Duration > 0) {
			return nil, fmt.Errorf("segment %d (%s): EXTINF duration %v", i, s.URI, s.Duration)
		}
		u, err := resolve(base, s.URI)
		if err != nil {
			return nil, fmt.Errorf("segment URI: %w", err)
		}
		seg := llSeg{Seq: p.seq + p.skipped + int64(i), URL: u.String(), Dur: sec(s.Duration)}
		if !s.ProgramDateTime.IsZero() {
			wall = s.ProgramDateTime
		}
		if !wall.IsZero() {
			seg.Wall = wall
			wall = wall.Add(seg.Dur)
		}
		p.segs = append(p.segs, seg)
	}
	// Parts: hls-m3u8 gives each the sequence ID of the segment it
	// belongs to, counted like the segments' (from EXT-X-MEDIA-SEQUENCE).
	for _, ps := range mp.PartialSegments {
		if ps == nil || len(p.segs) == 0 {
			continue
		}
		if !(ps.Duration > 0) {
			return nil, fmt.Errorf("part %s: DURATION %v", ps.URI, ps.Duration)
		}
		u, err := resolve(base, ps.URI)
		if err != nil {
			return nil, fmt.Errorf("part URI: %w", err)
		}
		msn := p.segs[0].Seq + int64(ps.SeqID) - int64(firstID)
		part := llPart{URL: u.String(), Dur: sec(ps.Duration), Independent: ps.Independent}
		if s := p.seg(msn); s != nil {
			s.Parts = append(s.Parts, part)
			continue
		}
		l := p.last()
		if msn != l.Seq+1 {
			return nil, fmt.Errorf("part %s of segment %d after segment %d", ps.URI, msn, l.Seq)
		}
		open := llSeg{Seq: msn, Open: true, Parts: []llPart{part}}
		if !l.Wall.IsZero() {
			open.Wall = l.Wall.Add(l.Dur)
		}
		p.segs = append(p.segs, open)
	}
	if h := mp.PreloadHints; h != nil && h.Type == "PART" && h.URI != "" {
		u, err := resolve(base, h.URI)
		if err != nil {
			return nil, fmt.Errorf("preload hint URI: %w", err)
		}
		p.hint = u.String()
	}
	return p, nil
}

// stripLeadingParts removes the EXT-X-PART lines before the first EXTINF.
func stripLeadingParts(data []byte) []byte {
	i := bytes.Index(data, []byte("#EXTINF"))
	if i < 0 || !bytes.Contains(data[:i], []byte("#EXT-X-PART:")) {
		return data
	}
	var out bytes.Buffer
	out.Grow(len(data))
	head := data[:i]
	for len(head) > 0 {
		line, rest, _ := bytes.Cut(head, []byte("\n"))
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#EXT-X-PART:")) {
			out.Write(line)
			out.WriteByte('\n')
		}
		head = rest
	}
	out.Write(data[i:])
	return out.Bytes()
}

// errDeltaGap is a delta update whose skipped segments the player does not
// have: it must reload the whole playlist.
var errDeltaGap = errors.New("delta update skips segments the previous playlist does not hold")

// mergeDelta completes a delta update (EXT-X-SKIP) with the skipped
// segments from the previous playlist, matched by media sequence number
// (with their program date times); a full playlist comes back as it is.
// A delta update is only as good as the previous playlist: a skipped
// segment that it lacks is errDeltaGap.
func mergeDelta(prev, delta *llPlaylist) (*llPlaylist, error) {
	if delta.skipped == 0 {
		return delta, nil
	}
	if prev == nil {
		return nil, errDeltaGap
	}
	out := *delta
	out.segs = make([]llSeg, 0, int(delta.skipped)+len(delta.segs))
	for msn := delta.seq; msn < delta.seq+delta.skipped; msn++ {
		s := prev.seg(msn)
		if s == nil || s.Open {
			return nil, fmt.Errorf("%w (segment %d)", errDeltaGap, msn)
		}
		out.segs = append(out.segs, *s)
	}
	out.segs = append(out.segs, delta.segs...)
	out.skipped = 0
	return &out, nil
}

// llPos is a position in a low-latency playlist: segment msn, after its
// first part parts (0: at the segment's start).
type llPos struct {
	msn  int64
	part int
}

// startPosition is where a low-latency session starts (RFC 8216bis 6.3.3:
// at least PART-HOLD-BACK from the end of the playlist): the newest
// independent part (or segment start) at or before holdBack from the end,
// and how much of the media from there lies before that point (played
// through without being shown: the decoder needs it). A playlist shorter
// than holdBack starts at its first segment.
func startPosition(p *llPlaylist, holdBack time.Duration) (pos llPos, skip time.Duration) {
	if len(p.segs) == 0 {
		return llPos{msn: p.seq}, 0
	}
	var total time.Duration
	for _, s := range p.segs {
		total += s.end()
	}
	at := total - holdBack
	if at <= 0 {
		return llPos{msn: p.segs[0].Seq}, 0
	}
	// Any part flagged INDEPENDENT? Without any, only segment starts are
	// places to begin decoding.
	flags := false
	for _, s := range p.segs {
		for _, pt := range s.Parts {
			flags = flags || pt.Independent
		}
	}
	var t time.Duration
	best, bestAt := llPos{msn: p.segs[0].Seq}, time.Duration(0)
	for _, s := range p.segs {
		if t > at {
			break
		}
		best, bestAt = llPos{msn: s.Seq}, t
		pt := t
		for i, part := range s.Parts {
			if pt > at {
				break
			}
			if i > 0 && flags && part.Independent {
				best, bestAt = llPos{msn: s.Seq, part: i}, pt
			}
			pt += part.Dur
		}
		t += s.end()
	}
	return best, at - bestAt
}
