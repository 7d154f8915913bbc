package player

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The subset of a Smooth Streaming client manifest (MS-SSTR 2.2.2) that a
// fragment-fetching player needs.
type smoothXML struct {
	TimeScale uint64           `xml:"TimeScale,attr"`
	Duration  uint64           `xml:"Duration,attr"`
	IsLive    string           `xml:"IsLive,attr"`
	Streams   []streamIndexXML `xml:"StreamIndex"`
}

type streamIndexXML struct {
	Type          string            `xml:"Type,attr"`
	Name          string            `xml:"Name,attr"`
	URL           string            `xml:"Url,attr"`
	TimeScale     uint64            `xml:"TimeScale,attr"`
	QualityLevels []qualityLevelXML `xml:"QualityLevel"`
	Chunks        []chunkXML        `xml:"c"`
}

type qualityLevelXML struct {
	Bitrate   int64  `xml:"Bitrate,attr"`
	FourCC    string `xml:"FourCC,attr"`
	MaxWidth  int    `xml:"MaxWidth,attr"`
	MaxHeight int    `xml:"MaxHeight,attr"`
}

type chunkXML struct {
	T *uint64 `xml:"t,attr"`
	D *uint64 `xml:"d,attr"`
	R *int64  `xml:"r,attr"`
}

// parseSmooth builds a Presentation from a Smooth client manifest. c@r is
// the total number of fragments the element stands for (MS-SSTR
// FragmentRepeat), 1 when absent.
func parseSmooth(data []byte, manifestURL *url.URL) (*Presentation, error) {
	var m smoothXML
	if err := xml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse Smooth manifest: %w", err)
	}
	if m.TimeScale == 0 {
		m.TimeScale = 10_000_000
	}
	p := &Presentation{Format: FormatSmooth, byTime: true, Live: strings.EqualFold(m.IsLive, "true")}
	for _, si := range m.Streams {
		var kind Kind
		switch strings.ToLower(si.Type) {
		case "video":
			kind = KindVideo
		case "audio":
			kind = KindAudio
		default:
			continue
		}
		if p.Stream(kind) != nil {
			continue
		}
		if si.URL == "" {
			return nil, fmt.Errorf("StreamIndex %q has no Url", si.Name)
		}
		ts := si.TimeScale
		if ts == 0 {
			ts = m.TimeScale
		}
		type tick struct{ t, d uint64 }
		var times []tick
		var t uint64
		for i, c := range si.Chunks {
			if c.T != nil {
				t = *c.T
			}
			var d uint64
			switch {
			case c.D != nil:
				d = *c.D
			case i+1 < len(si.Chunks) && si.Chunks[i+1].T != nil && *si.Chunks[i+1].T > t:
				d = *si.Chunks[i+1].T - t
			default:
				return nil, fmt.Errorf("StreamIndex %q: c[%d] has no duration", si.Name, i)
			}
			if d == 0 {
				return nil, fmt.Errorf("StreamIndex %q: c[%d] has d=0", si.Name, i)
			}
			n := int64(1)
			if c.R != nil && *c.R > 1 {
				n = *c.R
			}
			for range min(n, maxGenerated) {
				times = append(times, tick{t, d})
				t += d
			}
		}
		if len(times) > maxGenerated {
			times = times[len(times)-maxGenerated:]
		}
		st := &Stream{Kind: kind}
		for _, ql := range si.QualityLevels {
			r := &Rendition{
				ID: strconv.FormatInt(ql.Bitrate, 10), Bitrate: ql.Bitrate, Codecs: strings.ToLower(ql.FourCC),
				Width: ql.MaxWidth, Height: ql.MaxHeight, Loaded: true, Ended: !p.Live,
			}
			for i, tk := range times {
				u, err := resolve(manifestURL, expandSmoothURL(si.URL, ql.Bitrate, tk.t))
				if err != nil {
					return nil, fmt.Errorf("StreamIndex %q: %w", si.Name, err)
				}
				r.segments = append(r.segments, Segment{
					URL: u.String(), Seq: int64(i), Start: ticks(int64(tk.t), ts), Dur: ticks(int64(tk.d), ts),
				})
			}
			st.Renditions = append(st.Renditions, r)
		}
		p.setStream(st)
	}
	if p.Video == nil && p.Audio == nil {
		return nil, errors.New("Smooth manifest has no video or audio StreamIndex")
	}
	if p.Live {
		p.UpdatePeriod = p.lastSegmentDuration(time.Time{})
	}
	return p, nil
}

// expandSmoothURL fills the {bitrate} and {start time} placeholders of a
// StreamIndex Url template (any case, "start time" or "start_time").
func expandSmoothURL(tmpl string, bitrate int64, t uint64) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		j := strings.IndexByte(tmpl, '}')
		if i < 0 || j < i {
			b.WriteString(tmpl)
			return b.String()
		}
		b.WriteString(tmpl[:i])
		switch strings.ToLower(tmpl[i+1 : j]) {
		case "bitrate":
			b.WriteString(strconv.FormatInt(bitrate, 10))
		case "start time", "start_time", "starttime":
			b.WriteString(strconv.FormatUint(t, 10))
		default:
			b.WriteString(tmpl[i : j+1])
		}
		tmpl = tmpl[j+1:]
	}
}
