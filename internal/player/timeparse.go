package player

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseISODuration parses an xs:duration such as "PT1M30.5S" or "P1DT2H".
// Years and months count as 365 and 30 days, which is good enough for
// manifest attributes.
func parseISODuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	neg := false
	if strings.HasPrefix(s, "-") {
		neg = true
		s = s[1:]
	}
	if !strings.HasPrefix(s, "P") {
		return 0, fmt.Errorf("duration %q does not start with P", s)
	}
	s = s[1:]
	var total float64
	inTime := false
	num := ""
	for _, c := range s {
		switch {
		case c == 'T':
			inTime = true
		case (c >= '0' && c <= '9') || c == '.' || c == ',':
			if c == ',' {
				c = '.'
			}
			num += string(c)
		default:
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			num = ""
			var unit float64
			switch {
			case c == 'Y' && !inTime:
				unit = 365 * 86400
			case c == 'M' && !inTime:
				unit = 30 * 86400
			case c == 'W' && !inTime:
				unit = 7 * 86400
			case c == 'D' && !inTime:
				unit = 86400
			case c == 'H' && inTime:
				unit = 3600
			case c == 'M' && inTime:
				unit = 60
			case c == 'S' && inTime:
				unit = 1
			default:
				return 0, fmt.Errorf("duration %q: unexpected %q", s, c)
			}
			total += v * unit
		}
	}
	if num != "" {
		return 0, fmt.Errorf("duration %q: number without unit", s)
	}
	d := time.Duration(total * float64(time.Second))
	if neg {
		d = -d
	}
	return d, nil
}

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
