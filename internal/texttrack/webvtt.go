package texttrack

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// mpegTSWrap is where the 33-bit MPEG-2 TS clock (90 kHz) wraps.
const mpegTSWrap = 1 << 33

// ParseWebVTT reads a WebVTT document (a side-car .vtt file): its cues in
// document order, with their identifiers, settings and text. STYLE,
// REGION and NOTE blocks are skipped; a cue whose end is not after its
// start is dropped. Input beyond MaxInput bytes or MaxCues cues is refused
// (ErrTooLarge), a document without the WEBVTT signature or with a
// malformed timing line gives ErrSyntax.
func ParseWebVTT(doc []byte) ([]Cue, error) {
	if len(doc) > MaxInput {
		return nil, fmt.Errorf("webvtt: %d bytes (at most %d): %w", len(doc), MaxInput, ErrTooLarge)
	}
	s := strings.TrimPrefix(string(doc), "\ufeff")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\x00", "\ufffd")
	if !strings.HasPrefix(s, "WEBVTT") || (len(s) > 6 && s[6] != ' ' && s[6] != '\t' && s[6] != '\n') {
		return nil, fmt.Errorf("webvtt: no WEBVTT signature: %w", ErrSyntax)
	}
	blocks := strings.Split(s, "\n\n")
	var cues []Cue
	for bi, b := range blocks {
		if bi == 0 {
			continue // the header block
		}
		b = strings.Trim(b, "\n")
		if b == "" {
			continue
		}
		lines := strings.Split(b, "\n")
		if strings.HasPrefix(lines[0], "NOTE") || strings.HasPrefix(lines[0], "STYLE") || strings.HasPrefix(lines[0], "REGION") {
			if !strings.Contains(lines[0], "-->") {
				continue
			}
		}
		var c Cue
		timing := 0
		if !strings.Contains(lines[0], "-->") {
			c.ID = lines[0]
			timing = 1
		}
		if timing >= len(lines) || !strings.Contains(lines[timing], "-->") {
			return nil, fmt.Errorf("webvtt: block %d has no timing line: %w", bi, ErrSyntax)
		}
		var err error
		c.Start, c.End, c.Settings, err = parseTiming(lines[timing])
		if err != nil {
			return nil, fmt.Errorf("webvtt: block %d: %w", bi, err)
		}
		c.Text = strings.Join(lines[timing+1:], "\n")
		if c.End <= c.Start {
			continue
		}
		if len(cues) == MaxCues {
			return nil, fmt.Errorf("webvtt: more than %d cues: %w", MaxCues, ErrTooLarge)
		}
		cues = append(cues, c)
	}
	return cues, nil
}

// parseTiming reads "start --> end [settings]".
func parseTiming(line string) (start, end time.Duration, settings string, err error) {
	a, rest, _ := strings.Cut(line, "-->")
	start, err = parseTimestamp(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, "", err
	}
	rest = strings.TrimLeft(rest, " \t")
	e, settings, _ := strings.Cut(rest, " ")
	if i := strings.IndexByte(e, '\t'); i >= 0 {
		e, settings = e[:i], e[i+1:]
	}
	end, err = parseTimestamp(e)
	return start, end, strings.TrimSpace(settings), err
}

// parseTimestamp reads a WebVTT timestamp: [hh:]mm:ss.ttt.
func parseTimestamp(s string) (time.Duration, error) {
	bad := fmt.Errorf("timestamp %q: %w", s, ErrSyntax)
	sec, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 3 {
		return 0, bad
	}
	parts := strings.Split(sec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var h int64
	if len(parts) == 3 {
		if len(parts[0]) < 2 || len(parts[0]) > 9 {
			return 0, bad
		}
		v, err := strconv.ParseUint(parts[0], 10, 32)
		if err != nil {
			return 0, bad
		}
		h = int64(v)
		parts = parts[1:]
	}
	two := func(x string) (int64, bool) {
		if len(x) != 2 || x[0] < '0' || x[0] > '5' || x[1] < '0' || x[1] > '9' {
			return 0, false
		}
		return int64(x[0]-'0')*10 + int64(x[1]-'0'), true
	}
	m, ok1 := two(parts[0])
	sc, ok2 := two(parts[1])
	ms, err := strconv.ParseUint(frac, 10, 16)
	if !ok1 || !ok2 || err != nil {
		return 0, bad
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sc)*time.Second +
		time.Duration(ms)*time.Millisecond, nil
}

// WriteSegment renders cues as one HLS WebVTT segment whose
// X-TIMESTAMP-MAP maps the cue time local (the segment's start, truncated
// to the millisecond) to the same media time on the 90 kHz clock, modulo
// 2^33: cue times are media times, the same timeline the fMP4 video's
// tfdt (in its own timescale) is on, so hls.js, Shaka Player and Safari
// place each cue at the media time it carries. Cues are written in the
// order given, without their identifiers: a cue that goes on in the next
// fragment is written again there, and players that key cues by
// identifier (hls.js) would drop the second part.
func WriteSegment(cues []Cue, local time.Duration) []byte {
	if local < 0 {
		local = 0
	}
	local = local.Truncate(time.Millisecond)
	ticks := uint64(local/time.Millisecond) * 90 % mpegTSWrap
	var b bytes.Buffer
	fmt.Fprintf(&b, "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:%d,LOCAL:%s\n", ticks, formatTime(local))
	for _, c := range cues {
		text := cleanText(c.Text)
		if text == "" {
			continue
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "%s --> %s", formatTime(c.Start), formatTime(c.End))
		if st := oneLine(c.Settings); st != "" {
			b.WriteString(" " + st)
		}
		b.WriteString("\n" + text + "\n")
	}
	return b.Bytes()
}
