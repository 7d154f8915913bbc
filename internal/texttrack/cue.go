package texttrack

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bounds of every parser in this package.
const (
	// MaxInput is the largest WebVTT or TTML document or sample accepted.
	MaxInput = 16 << 20
	// MaxCues is the largest number of cues one document may hold.
	MaxCues = 200_000
)

// Errors, wrapped with context; test with errors.Is.
var (
	// ErrTooLarge means the input exceeds MaxInput or MaxCues.
	ErrTooLarge = errors.New("timed text too large")
	// ErrSyntax means the input is not the format it claims to be.
	ErrSyntax = errors.New("malformed timed text")
)

// Cue is one timed text cue. Times are media times (a side-car file's
// times are those of the media it comes with).
type Cue struct {
	ID       string
	Start    time.Duration
	End      time.Duration
	Settings string // WebVTT cue settings ("line:90% align:center"), may be empty
	Text     string // WebVTT cue text; lines separated by "\n"
}

// formatTime writes a WebVTT timestamp (hh:mm:ss.ttt; the hours grow past
// two digits as needed). Negative times are written as 0.
func formatTime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	ms := int64(d / time.Millisecond)
	return fmt.Sprintf("%02d:%02d:%02d.%03d", ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000)
}

// cleanText makes cue text safe to write into a WebVTT cue block: no blank
// line (which would end the cue) and no "-->" (which would start another).
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "-->", "--&gt;")
	lines := strings.Split(s, "\n")
	out := lines[:0]
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// oneLine keeps a cue identifier or settings on one line.
func oneLine(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	return strings.ReplaceAll(s, "-->", "--")
}
