package scheduler

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/store"
)

// Placeholders of a shared rendering: "{%" name "%}". No point name, track
// ID, token or URL Sluice writes contains "{%".
const (
	phOpen    = "{%"
	phClose   = "%}"
	phSession = "S" // the session ID
	phToken   = "T" // its token
	phPathway = "P" // its default pathway
	phHost    = "H" // scheme://host of the request
	phNow     = "N" // the time of the request
)

// dashDateTime is the xs:dateTime layout of the MPD (as internal/manifest
// writes it).
const dashDateTime = "2006-01-02T15:04:05.000Z07:00"

// templateNow is the time a shared rendering is made with: its text (the
// DASH UTCTiming, and the times that fall back to the request time) is
// replaced by the request's.
var templateNow = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)

// template is a shared rendering split at its placeholders: parts[even]
// are text, parts[odd] placeholder names.
type template struct {
	parts []string
	size  int  // of the text parts
	host  bool // it names the request's host
}

// newTemplate splits a rendering made with placeholder URLs and
// templateNow.
func newTemplate(body []byte) *template {
	s := strings.ReplaceAll(string(body), templateNow.Format(dashDateTime), phOpen+phNow+phClose)
	t := &template{}
	for {
		i := strings.Index(s, phOpen)
		if i < 0 {
			t.parts = append(t.parts, s)
			break
		}
		j := strings.Index(s[i:], phClose)
		if j < 0 {
			t.parts = append(t.parts, s)
			break
		}
		t.parts = append(t.parts, s[:i], s[i+len(phOpen):i+j])
		s = s[i+j+len(phClose):]
	}
	for i := 0; i < len(t.parts); i += 2 {
		t.size += len(t.parts[i])
	}
	for i := 1; i < len(t.parts); i += 2 {
		t.host = t.host || t.parts[i] == phHost
	}
	return t
}

// sessionValues are what a rendering names of one session: its ID, token
// and default pathway, the scheme and host its player asked, and the time
// of the request.
type sessionValues struct {
	sid, tok, def, host string
	now                 time.Time
	nowText             string // now as the MPD writes it, made when first needed
}

// value is the text of a placeholder.
func (sv *sessionValues) value(name string) string {
	switch name {
	case phSession:
		return sv.sid
	case phToken:
		return sv.tok
	case phPathway:
		return sv.def
	case phHost:
		return sv.host
	case phNow:
		if sv.nowText == "" {
			sv.nowText = sv.now.UTC().Format(dashDateTime)
		}
		return sv.nowText
	}
	return ""
}

// length is the size of the expansion for sv.
func (t *template) length(sv *sessionValues) int {
	n := t.size
	for i := 1; i < len(t.parts); i += 2 {
		n += len(sv.value(t.parts[i]))
	}
	return n
}

// expand fills in the placeholders.
func (t *template) expand(sv *sessionValues) []byte {
	return t.appendTo(make([]byte, 0, t.length(sv)), sv)
}

// appendTo appends the expansion for sv to b.
func (t *template) appendTo(b []byte, sv *sessionValues) []byte {
	for i, p := range t.parts {
		if i%2 == 0 {
			b = append(b, p...)
			continue
		}
		b = append(b, sv.value(p)...)
	}
	return b
}

// bodyPool holds the buffers responses are expanded into: one write of the
// whole body (a part at a time, a long playlist would leave net/http's
// buffers in several writes).
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// tplKey names a shared rendering: the format and track, the listed
// pathways (pathwaysKey) and what the view lists of every track
// (viewKey). (The direct pathway's segment URLs are fixed when a block is
// first listed, so a rendering of the same view is the same whatever
// happened to the senders since.)
type tplKey struct {
	format, track, pathways, view string
	skip                          bool // an LL-HLS delta update (_HLS_skip)
}

// viewKey names what a view lists of every track.
func viewKey(v store.View) string {
	b := make([]byte, 0, 8+48*len(v.Tracks))
	if v.Ended {
		b = append(b, "E"...)
	}
	for _, t := range v.Tracks {
		b = append(b, '|')
		b = append(b, t.ID...)
		b = append(b, ':')
		b = strconv.AppendInt(b, t.First, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(len(t.Frags)), 10)
		if n := len(t.Frags); n > 0 {
			b = append(b, ':')
			b = strconv.AppendInt(b, t.Frags[0].Start, 10)
			b = append(b, ':')
			b = strconv.AppendInt(b, t.Frags[n-1].Start, 10)
		}
		if n := len(t.Parts); n > 0 {
			// Low latency: the kept parts change without the fragments.
			last := t.Parts[n-1]
			b = append(b, 'p')
			b = strconv.AppendInt(b, t.Parts[0].Start, 10)
			b = append(b, ':')
			b = strconv.AppendInt(b, last.Start, 10)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(len(last.Parts)), 10)
			b = append(b, ':')
			b = strconv.AppendUint(b, t.PartTarget, 10)
			if last.Complete {
				b = append(b, 'c')
			}
		}
		if t.Ended {
			b = append(b, 'e')
		}
	}
	return string(b)
}
