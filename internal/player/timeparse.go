package player

import (
	"fmt"
	"strings"
	"time"
)

// parseXSDateTime parses an xs:dateTime; a missing zone means UTC.
func parseXSDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", time.RFC1123, time.RFC1123Z} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("date-time %q is not xs:dateTime", s)
}

// ticks converts a time in units of 1/timescale seconds to a Duration
// without losing precision on large epoch-based times.
func ticks(t int64, timescale uint64) time.Duration {
	if timescale == 0 {
		timescale = 1
	}
	ts := int64(timescale)
	sec := t / ts
	rem := t % ts
	return time.Duration(sec)*time.Second + time.Duration(rem*int64(time.Second)/ts)
}
