// Package mpdschema checks a DASH MPD against the element order, the
// occurrence limits and the required attributes of the MPD schema (ISO/IEC
// 23009-1, DASH-MPD.xsd, 5th and 6th editions) for the elements Sluice
// emits, and parses it with github.com/Eyevinn/dash-mpd as a cross-check.
// It is a test helper: strict demuxers (ffmpeg's, GPAC's, validators such
// as the DASH-IF conformance tool) rely on the schema's order, while the
// browser players forgive it.
//
// The table lists, per element, its children in schema sequence order
// (xs:sequence of the element's type, base types first). An element that
// is not in the table is reported: a new element needs its row first.
//
// One element is placed outside 23009-1: MPD/ContentSteering, which ETSI TS
// 103 998 (DASH-IF content steering) and the players that implement it
// (dash.js, Shaka Player) read as a child of MPD; it is checked to come
// after every 23009-1 child of MPD.
package mpdschema

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// Namespace is the MPD namespace.
const Namespace = "urn:mpeg:dash:schema:mpd:2011"

// child is an allowed child element; many means maxOccurs > 1.
type child struct {
	name string
	many bool
}

// rule is what the schema says about one element.
type rule struct {
	children []child
	required []string // attributes with use="required"
	text     bool     // simple content (xs:anyURI, xs:string): no element children
	minOne   []string // children with minOccurs 1
}

func seq(cs ...string) []child {
	out := make([]child, len(cs))
	for i, c := range cs {
		name, one := strings.CutSuffix(c, "?")
		out[i] = child{name: name, many: !one}
	}
	return out
}

// representationBase is the sequence of RepresentationBaseType, the first
// children of AdaptationSet and Representation.
var representationBase = seq("FramePacking", "AudioChannelConfiguration", "ContentProtection", "OutputProtection?",
	"EssentialProperty", "SupplementalProperty", "InbandEventStream", "Switching", "RandomAccess", "GroupLabel", "Label",
	"ProducerReferenceTime", "ContentPopularityRate", "Resync", "SegmentSequenceProperties?")

// segmentBase is the sequence of SegmentBaseType; multipleSegmentBase
// extends it.
var (
	segmentBase         = seq("Initialization?", "RepresentationIndex?", "FailoverContent?")
	multipleSegmentBase = append(append([]child(nil), segmentBase...), seq("SegmentTimeline?", "BitstreamSwitching?")...)
)

var descriptor = rule{required: []string{"schemeIdUri"}}

// table is the order table.
var table = map[string]rule{
	"MPD": {
		children: seq("ProgramInformation", "BaseURL", "Location", "PatchLocation", "ServiceDescription", "InitializationSet",
			"InitializationGroup", "InitializationPresentation", "ContentProtection", "Period", "Metrics", "EssentialProperty",
			"SupplementalProperty", "UTCTiming", "LeapSecondInformation?", "ContentSteering?"),
		required: []string{"profiles", "minBufferTime"},
		minOne:   []string{"Period"},
	},
	"ProgramInformation": {children: seq("Title?", "Source?", "Copyright?")},
	"Title":              {text: true},
	"Source":             {text: true},
	"Copyright":          {text: true},
	"BaseURL":            {text: true},
	"Location":           {text: true},
	"ContentSteering":    {text: true},
	"Period": {
		children: seq("ImportedMPD?", "BaseURL", "SegmentBase?", "SegmentList?", "SegmentTemplate?", "AssetIdentifier?",
			"EventStream", "ServiceDescription", "ContentProtection", "AdaptationSet", "Subset", "SupplementalProperty",
			"EmptyAdaptationSet", "GroupLabel", "Preselection"),
	},
	"AdaptationSet": {
		children: append(append([]child(nil), representationBase...), seq("Accessibility", "Role", "Rating", "Viewpoint",
			"ContentComponent", "BaseURL", "SegmentBase?", "SegmentList?", "SegmentTemplate?", "Representation")...),
	},
	"Representation": {
		children: append(append([]child(nil), representationBase...), seq("BaseURL", "ExtendedBandwidth",
			"SubRepresentation", "SegmentBase?", "SegmentList?", "SegmentTemplate?")...),
		required: []string{"id", "bandwidth"},
	},
	"SegmentBase":     {children: segmentBase},
	"SegmentList":     {children: append(append([]child(nil), multipleSegmentBase...), seq("SegmentURL")...)},
	"SegmentTemplate": {children: append(append([]child(nil), multipleSegmentBase...), seq("Pattern")...)},
	"SegmentTimeline": {children: seq("S")},
	// S@d is optional only in the 6th edition (with duration patterns);
	// earlier editions, and every S Sluice writes, have it.
	"S":                         {required: []string{"d"}},
	"Initialization":            {},
	"RepresentationIndex":       {},
	"BitstreamSwitching":        {},
	"SegmentURL":                {},
	"AudioChannelConfiguration": descriptor,
	"EssentialProperty":         descriptor,
	"SupplementalProperty":      descriptor,
	"UTCTiming":                 descriptor,
	"Role":                      descriptor,
	"Accessibility":             descriptor,
	"InbandEventStream":         {required: []string{"schemeIdUri"}},
	// EventStreamType: Event elements, then xs:any of other namespaces;
	// an Event has mixed content (its children, e.g. SCTE-35's Signal,
	// are of other namespaces).
	"EventStream": {children: seq("Event"), required: []string{"schemeIdUri"}},
	"Event":       {},
	// Low-latency DASH (23009-1 Annex K): the service description and
	// the producer reference time.
	"ServiceDescription": {children: seq("Scope", "Latency", "PlaybackRate", "OperatingQuality", "OperatingBandwidth",
		"ContentSteering", "ClientDataReporting", "PlaybackRestrictions")},
	"Latency":               {},
	"PlaybackRate":          {},
	"ProducerReferenceTime": {children: seq("UTCTiming?"), required: []string{"id", "wallClockTime", "presentationTime"}},
}

// node is an element of the document.
type node struct {
	name  xml.Name
	attrs []xml.Attr
	kids  []*node
	path  string
}

// Check validates an MPD and parses it with dash-mpd; it returns every
// violation found, joined.
func Check(doc []byte) error {
	root, err := parse(doc)
	if err != nil {
		return err
	}
	var errs []error
	if root.name.Local != "MPD" || root.name.Space != Namespace {
		errs = append(errs, fmt.Errorf("root element {%s}%s, want {%s}MPD", root.name.Space, root.name.Local, Namespace))
	}
	walk(root, &errs)
	if _, err := mpd.ReadFromString(string(doc)); err != nil {
		errs = append(errs, fmt.Errorf("dash-mpd cannot parse it: %w", err))
	}
	return errors.Join(errs...)
}

func parse(doc []byte) (*node, error) {
	dec := xml.NewDecoder(strings.NewReader(string(doc)))
	var stack []*node
	var root *node
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name, attrs: t.Attr, path: t.Name.Local}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				n.path = p.path + "/" + t.Name.Local
				p.kids = append(p.kids, n)
			} else if root == nil {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

func walk(n *node, errs *[]error) {
	if n.name.Space != Namespace {
		return // other namespaces: xs:any, not checked
	}
	r, ok := table[n.name.Local]
	if !ok {
		*errs = append(*errs, fmt.Errorf("%s: element not in the order table", n.path))
		return
	}
	for _, a := range r.required {
		if !hasAttr(n, a) {
			*errs = append(*errs, fmt.Errorf("%s: required attribute %s missing", n.path, a))
		}
	}
	last, lastName := -1, ""
	counts := map[string]int{}
	for _, k := range n.kids {
		if k.name.Space != Namespace {
			continue
		}
		if r.text {
			*errs = append(*errs, fmt.Errorf("%s: element %s in simple content", n.path, k.name.Local))
			continue
		}
		i := index(r.children, k.name.Local)
		switch {
		case i < 0:
			*errs = append(*errs, fmt.Errorf("%s: %s is not a child of %s", n.path, k.name.Local, n.name.Local))
		case i < last:
			*errs = append(*errs, fmt.Errorf("%s: %s after %s (schema order: %s first)", n.path, k.name.Local, lastName, k.name.Local))
		default:
			last, lastName = i, k.name.Local
		}
		counts[k.name.Local]++
		if i >= 0 && !r.children[i].many && counts[k.name.Local] == 2 {
			*errs = append(*errs, fmt.Errorf("%s: more than one %s", n.path, k.name.Local))
		}
		walk(k, errs)
	}
	for _, c := range r.minOne {
		if counts[c] == 0 {
			*errs = append(*errs, fmt.Errorf("%s: no %s", n.path, c))
		}
	}
}

func index(cs []child, name string) int {
	for i, c := range cs {
		if c.name == name {
			return i
		}
	}
	return -1
}

func hasAttr(n *node, name string) bool {
	for _, a := range n.attrs {
		if a.Name.Local == name && (a.Name.Space == "" || a.Name.Space == Namespace) {
			return true
		}
	}
	return false
}
