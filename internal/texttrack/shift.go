package texttrack

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// ShiftTTML returns a TTML document whose timeline is moved by d: every
// time expression that is relative to the document's own timeline gets d
// added — the begin and end of an element none of whose ancestors has a
// begin (what lies below such an element is relative to it, and dur is a
// length, so neither changes); such an element with an end or a dur but
// no begin gets begin="d" when d is positive. A time that would fall
// before zero is zero. The rest of the document is copied byte for byte; new times are
// offset times in seconds. Time containment is par, as ParseTTML reads it.
// Input beyond MaxInput bytes or maxTTMLDepth nested elements is refused
// (ErrTooLarge), a document that is not XML or whose root is not tt gives
// ErrSyntax.
func ShiftTTML(doc []byte, d time.Duration) ([]byte, error) {
	if len(doc) > MaxInput {
		return nil, fmt.Errorf("ttml: %d bytes (at most %d): %w", len(doc), MaxInput, ErrTooLarge)
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	tm := ttmlTiming{frameRate: 30}
	// below[i] says the i-th open element or one of its ancestors has a
	// begin: its times are relative to that, not to the document.
	var below []bool
	var names []xml.Name // of the open elements (RawToken does not match them)
	var out []byte
	copied := 0 // doc[:copied] is in out
	root := true
	for {
		start := dec.InputOffset()
		tok, err := dec.RawToken()
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
			if len(below) == maxTTMLDepth {
				return nil, fmt.Errorf("ttml: more than %d nested elements: %w", maxTTMLDepth, ErrTooLarge)
			}
			inside := len(below) > 0 && below[len(below)-1]
			hasBegin, timed := false, false
			for _, a := range t.Attr {
				if a.Name.Space == "" {
					hasBegin = hasBegin || a.Name.Local == "begin"
					timed = timed || a.Name.Local == "dur" || a.Name.Local == "end"
				}
			}
			if !inside {
				end := int(dec.InputOffset())
				tag, err := shiftTag(doc[start:end], tm, d)
				if err != nil {
					return nil, err
				}
				if !hasBegin && timed && d > 0 {
					// It begins with its parent, at the document's
					// zero: it begins at d now (and what it holds is
					// relative to that).
					if tag == nil {
						tag = doc[start:end]
					}
					tag = insertBegin(tag, d)
					hasBegin = true
				}
				if tag != nil {
					out = append(append(out, doc[copied:start]...), tag...)
					copied = end
				}
			}
			below = append(below, inside || hasBegin)
			names = append(names, t.Name)
		case xml.EndElement:
			if len(below) == 0 || names[len(names)-1] != t.Name {
				return nil, fmt.Errorf("ttml: unbalanced %q: %w", t.Name.Local, ErrSyntax)
			}
			below, names = below[:len(below)-1], names[:len(names)-1]
		}
	}
	if root || len(names) > 0 {
		return nil, fmt.Errorf("ttml: no tt element, or one not closed: %w", ErrSyntax)
	}
	if out == nil {
		return doc, nil
	}
	return append(out, doc[copied:]...), nil
}

// rootTiming is the timing parameters of a tt element's attributes.
func rootTiming(attrs []xml.Attr) ttmlTiming {
	tm := ttmlTiming{frameRate: 30}
	for _, a := range attrs {
		switch a.Name.Local {
		case "frameRate":
			if v, err := strconv.ParseFloat(a.Value, 64); err == nil && v > 0 && v < 1000 {
				tm.frameRate = v
			}
		case "tickRate":
			if v, err := strconv.ParseFloat(a.Value, 64); err == nil && v > 0 && v < 1e12 {
				tm.tickRate = v
			}
		}
	}
	if tm.tickRate == 0 {
		tm.tickRate = tm.frameRate
	}
	return tm
}

// shiftTag returns a start tag with its begin and end attributes (no
// namespace prefix) moved by d, or nil when it has neither. The tag is
// one the XML decoder read: its attributes are name, =, quoted value.
func shiftTag(tag []byte, tm ttmlTiming, d time.Duration) ([]byte, error) {
	var out []byte
	last := 0
	i := bytes.IndexAny(tag, " \t\r\n/>") // after the element's name
	for i >= 0 && i < len(tag) {
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		eq := bytes.IndexByte(tag[i:], '=')
		if eq < 0 {
			break // the end of the tag
		}
		name := bytes.TrimRight(tag[i:i+eq], " \t\r\n")
		j := i + eq + 1
		for j < len(tag) && isSpace(tag[j]) {
			j++
		}
		if j == len(tag) || tag[j] != '"' && tag[j] != '\'' {
			return nil, fmt.Errorf("ttml: attribute %q unquoted: %w", name, ErrSyntax)
		}
		vs := j + 1
		n := bytes.IndexByte(tag[vs:], tag[j])
		if n < 0 {
			return nil, fmt.Errorf("ttml: attribute %q not closed: %w", name, ErrSyntax)
		}
		ve := vs + n
		if string(name) == "begin" || string(name) == "end" {
			v, err := tm.parse(string(tag[vs:ve]))
			if err != nil {
				return nil, fmt.Errorf("ttml: %s=%q: %w", name, tag[vs:ve], err)
			}
			out = appendSeconds(append(out, tag[last:vs]...), max(v+d, 0))
			last = ve
		}
		i = ve + 1
	}
	if out == nil {
		return nil, nil
	}
	return append(out, tag[last:]...), nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// insertBegin returns a start tag with a begin attribute of d added at
// its end.
func insertBegin(tag []byte, d time.Duration) []byte {
	i := len(tag) - 1 // the '>'
	if i > 0 && tag[i-1] == '/' {
		i--
	}
	out := append([]byte(nil), tag[:i]...)
	out = appendSeconds(append(out, ` begin="`...), d)
	return append(append(out, '"'), tag[i:]...)
}

// appendSeconds appends d as a TTML offset time in seconds ("12.5s").
func appendSeconds(b []byte, d time.Duration) []byte {
	b = strconv.AppendInt(b, int64(d/time.Second), 10)
	if frac := int64(d % time.Second); frac != 0 {
		s := strconv.FormatInt(frac+int64(time.Second), 10)[1:] // nine digits
		b = append(append(b, '.'), bytes.TrimRight([]byte(s), "0")...)
	}
	return append(b, 's')
}

// relative reports whether a document (its cues, as ParseTTML reads
// them) of an stpp sample spanning [from, to) is written relative to the
// sample's start, as Smooth encoders write them: none of its paragraphs
// falls within the sample, and some would once shifted by from.
func relative(doc []Cue, from, to time.Duration) bool {
	within := func(shift time.Duration) bool {
		for _, c := range doc {
			if c.Start+shift < to && c.End+shift > from {
				return true
			}
		}
		return false
	}
	return from > 0 && !within(0) && within(from)
}

// MediaTimeStpp returns a stored stpp fragment whose documents carry
// media times (ISO/IEC 14496-30, DASH-IF), the form DASH and CMAF players
// read: a document written relative to its sample (Smooth encoders) is
// moved by the sample's start (ShiftTTML). A fragment with none of those
// is returned as it is (changed false); otherwise the samples are written
// anew into one moof+mdat with the same times and flags.
func (t Track) MediaTimeStpp(frag []byte) (out []byte, changed bool, err error) {
	return t.rewriteStpp(frag, func(doc []byte, from, to time.Duration) ([]byte, error) {
		cues, err := ParseTTML(doc)
		if err != nil || !relative(cues, from, to) {
			return nil, err
		}
		return ShiftTTML(doc, from)
	})
}

// SampleTimeStpp is the inverse of MediaTimeStpp, for Smooth clients,
// which read an stpp sample's times as relative to the sample: every
// document of a sample that does not start at zero is moved back by the
// sample's start, unless it already reads as relative.
func (t Track) SampleTimeStpp(frag []byte) (out []byte, changed bool, err error) {
	return t.rewriteStpp(frag, func(doc []byte, from, to time.Duration) ([]byte, error) {
		if from == 0 {
			return nil, nil
		}
		cues, err := ParseTTML(doc)
		if err != nil || relative(cues, from, to) {
			return nil, err
		}
		return ShiftTTML(doc, -from)
	})
}

// rewriteStpp passes each sample's document of an stpp fragment, with the
// sample's span, to f, which returns the new document or nil to keep it.
func (t Track) rewriteStpp(frag []byte, f func(doc []byte, from, to time.Duration) ([]byte, error)) ([]byte, bool, error) {
	if t.SampleEntry != "stpp" {
		return frag, false, nil
	}
	ss, err := t.samples(frag)
	if err != nil {
		return nil, false, err
	}
	docs := make([][]byte, len(ss))
	changed := false
	for i, s := range ss {
		doc, err := f(s.data, t.ticks(s.start), t.ticks(s.end))
		if err != nil {
			return nil, false, fmt.Errorf("stpp sample at %d: %w", s.start, err)
		}
		if doc != nil {
			docs[i], changed = doc, true
		}
	}
	if !changed {
		return frag, false, nil
	}
	file, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(frag))
	if err != nil {
		return nil, false, fmt.Errorf("text fragment: %w", err)
	}
	fr := file.Segments[0].Fragments[0]
	trex := t.trex
	id := fr.Moof.Traf.Tfhd.TrackID
	if trex != nil {
		c := *trex
		c.TrackID = id
		trex = &c
	}
	fs, err := fr.GetFullSamples(trex)
	if err != nil {
		return nil, false, fmt.Errorf("text fragment samples: %w", err)
	}
	for i := range fs {
		if docs[i] != nil {
			fs[i].Data = docs[i]
			fs[i].Size = uint32(len(docs[i]))
		}
	}
	out, err := trackFragment(fr.Moof.Mfhd.SequenceNumber, id, fs)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}
