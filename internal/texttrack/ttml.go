package texttrack

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxTTMLDepth bounds the element nesting of a TTML document.
const maxTTMLDepth = 64

// ttmlTiming is what resolving a TTML document's time expressions needs
// (ttp:frameRate, ttp:tickRate, ttp:subFrameRate are enough for the
// expressions IMSC1 allows).
type ttmlTiming struct {
	frameRate float64
	tickRate  float64
}

// ParseTTML reads the paragraphs of a TTML document (IMSC1 text profile,
// a side-car .ttml/.dfxp file or one stpp sample) as cues: every p element
// with its begin and end (or dur) resolved against its ancestors' begin
// (TTML time containment, par semantics), its text with br as a line
// break and spans flattened. Times are the document's (media times for an
// stpp sample, whose documents are on the track's timeline). Styling,
// regions and images are not kept. A p without a resolvable end is
// dropped. Input beyond MaxInput bytes, MaxCues paragraphs or
// maxTTMLDepth nested elements is refused (ErrTooLarge); a document that
// is not XML or whose root is not tt gives ErrSyntax.
func ParseTTML(doc []byte) ([]Cue, error) {
	if len(doc) > MaxInput {
		return nil, fmt.Errorf("ttml: %d bytes (at most %d): %w", len(doc), MaxInput, ErrTooLarge)
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	tm := ttmlTiming{frameRate: 30, tickRate: 0}
	type frame struct {
		begin, end time.Duration
		hasEnd     bool
		p          bool
	}
	var stack []frame
	var cues []Cue
	var text strings.Builder
	inP := false
	root := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ttml: %w: %w", ErrSyntax, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root {
				if t.Name.Local != "tt" {
					return nil, fmt.Errorf("ttml: root element %q, not tt: %w", t.Name.Local, ErrSyntax)
				}
				root = false
				tm = rootTiming(t.Attr)
			}
			if len(stack) == maxTTMLDepth {
				return nil, fmt.Errorf("ttml: more than %d nested elements: %w", maxTTMLDepth, ErrTooLarge)
			}
			var parent frame
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			f := frame{begin: parent.begin, end: parent.end, hasEnd: parent.hasEnd}
			var begin, end, dur *time.Duration
			for _, a := range t.Attr {
				var target **time.Duration
				switch a.Name.Local {
				case "begin":
					target = &begin
				case "end":
					target = &end
				case "dur":
					target = &dur
				default:
					continue
				}
				d, err := tm.parse(a.Value)
				if err != nil {
					return nil, fmt.Errorf("ttml: %s=%q: %w", a.Name.Local, a.Value, err)
				}
				*target = &d
			}
			if begin != nil {
				f.begin = parent.begin + *begin
			}
			switch {
			case end != nil:
				f.end, f.hasEnd = parent.begin+*end, true
			case dur != nil:
				f.end, f.hasEnd = f.begin+*dur, true
			}
			if parent.hasEnd && (!f.hasEnd || f.end > parent.end) {
				f.end, f.hasEnd = parent.end, true
			}
			switch t.Name.Local {
			case "p":
				f.p = true
				inP = true
				text.Reset()
			case "br":
				if inP {
					text.WriteByte(0) // a line break; source white space is not one
				}
			}
			stack = append(stack, f)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, fmt.Errorf("ttml: unbalanced %q: %w", t.Name.Local, ErrSyntax)
			}
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if f.p {
				inP = false
				txt := strings.TrimSpace(collapse(text.String()))
				if txt != "" && f.hasEnd && f.end > f.begin {
					if len(cues) == MaxCues {
						return nil, fmt.Errorf("ttml: more than %d paragraphs: %w", MaxCues, ErrTooLarge)
					}
					cues = append(cues, Cue{Start: f.begin, End: f.end, Text: txt})
				}
			}
		case xml.CharData:
			if inP {
				text.Write(t)
			}
		}
	}
	if root {
		return nil, fmt.Errorf("ttml: no tt element: %w", ErrSyntax)
	}
	return cues, nil
}

// collapse turns runs of XML white space (newlines of the source
// included) into one space, and the line breaks br made (NUL, which XML
// text cannot hold) into newlines; empty lines are dropped.
func collapse(s string) string {
	lines := strings.Split(s, "\x00")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// parse reads a TTML time expression: a clock time (hh:mm:ss, with
// .fraction or :frames) or an offset time (<n>h, m, s, ms, f, t).
func (tm ttmlTiming) parse(s string) (time.Duration, error) {
	bad := fmt.Errorf("time expression %q: %w", s, ErrSyntax)
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 32 {
		return 0, bad
	}
	const maxSeconds = 1 << 33
	sec := func(v float64) (time.Duration, error) {
		if v < 0 || v > maxSeconds || v != v {
			return 0, bad
		}
		return time.Duration(v * float64(time.Second)).Round(time.Microsecond), nil
	}
	if strings.Count(s, ":") >= 2 {
		parts := strings.Split(s, ":")
		if len(parts) > 4 {
			return 0, bad
		}
		h, err1 := strconv.ParseUint(parts[0], 10, 32)
		m, err2 := strconv.ParseUint(parts[1], 10, 8)
		secs, err3 := strconv.ParseFloat(parts[2], 64)
		if err1 != nil || err2 != nil || err3 != nil || m > 59 || secs >= 61 || secs < 0 || strings.ContainsAny(parts[2], "eE+-") {
			return 0, bad
		}
		v := float64(h)*3600 + float64(m)*60 + secs
		if len(parts) == 4 {
			fr, err := strconv.ParseFloat(parts[3], 64)
			if err != nil || fr < 0 || strings.ContainsAny(parts[3], "eE+-") {
				return 0, bad
			}
			v += fr / tm.frameRate
		}
		return sec(v)
	}
	units := []struct {
		suffix string
		scale  float64
	}{{"ms", 0.001}, {"h", 3600}, {"m", 60}, {"s", 1}, {"f", 1 / tm.frameRate}, {"t", 1 / tm.tickRate}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || strings.ContainsAny(n, "eE+-xXpP_") {
				return 0, bad
			}
			return sec(v * u.scale)
		}
	}
	return 0, bad
}
