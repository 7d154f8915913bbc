package scheduler

import (
	"bytes"
	"strconv"
	"strings"
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
	size  int
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
	return t
}

// expand fills in the placeholders.
func (t *template) expand(vals map[string]string) []byte {
	var b bytes.Buffer
	b.Grow(t.size + 128*(len(t.parts)/2))
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		b.WriteString(vals[p])
	}
	return b.Bytes()
}

// templateKey names a shared rendering: the format and track, the listed
// pathways, and what the view lists of every track. (The direct pathway's
// segment URLs are fixed when a block is first listed, so a rendering of
// the same view is the same whatever happened to the senders since.)
func templateKey(format, track, pathways string, v store.View) string {
	b := make([]byte, 0, 64+len(pathways)+48*len(v.Tracks))
	b = append(b, format...)
	b = append(b, '|')
	b = append(b, track...)
	b = append(b, '|')
	b = append(b, pathways...)
	if v.Ended {
		b = append(b, "|E"...)
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
		if t.Ended {
			b = append(b, 'e')
		}
	}
	return string(b)
}
