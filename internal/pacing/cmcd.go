package pacing

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-media/sluice/internal/sfv"
)

// CMCD request headers (CTA-5004 header mode), in canonical form so that a
// lookup is a plain map access.
var cmcdHeaders = [...]string{"Cmcd-Object", "Cmcd-Request", "Cmcd-Session", "Cmcd-Status"}

// Via says where the side-channel input of a request came from.
type Via uint8

// Via bits.
const (
	ViaHeader Via = 1 << iota // CMCD-* request headers
	ViaQuery                  // the CMCD= query argument
	ViaSluice                 // the Sluice-Pacing header
)

// String names the set bits: "header", "query", "sluice", joined by '+'.
func (v Via) String() string {
	switch v {
	case 0:
		return "none"
	case ViaHeader:
		return "header"
	case ViaQuery:
		return "query"
	case ViaSluice:
		return "sluice"
	}
	var parts []string
	for _, p := range []struct {
		bit  Via
		name string
	}{{ViaHeader, "header"}, {ViaQuery, "query"}, {ViaSluice, "sluice"}} {
		if v&p.bit != 0 {
			parts = append(parts, p.name)
		}
	}
	return strings.Join(parts, "+")
}

// CMCD holds the CMCD (CTA-5004) keys Sluice reads from one request.
// Numeric keys are -1 when absent. CMCD v2 inner lists (one value per
// object type) are reduced: bl to its smallest member, the others to their
// first member.
type CMCD struct {
	RTP int64 // requested maximum throughput, kbit/s
	BL  int64 // buffer length, ms
	BR  int64 // encoded bitrate of the object, kbit/s
	D   int64 // object duration, ms
	MTP int64 // measured throughput, kbit/s
	DL  int64 // deadline, ms
	TB  int64 // top bitrate, kbit/s
	V   int64 // CMCD version (1 when absent)

	SU bool // startup: the object is needed urgently
	BS bool // buffer starved since the previous request

	OT, SF, ST    string // object type, streaming format, stream type (tokens)
	SID, CID, NOR string // session id, content id, next object request

	// Custom keys carrying a Sluice pacing specification (com.sluice-rate,
	// com.sluice-burst, com.sluice-gap): CMCD query mode needs no CORS
	// preflight, unlike the Sluice-Pacing header.
	Spec Spec

	// Via records whether header mode, query mode or both were used.
	Via Via
}

// newCMCD returns an empty CMCD with every numeric key absent.
func newCMCD() CMCD {
	return CMCD{RTP: -1, BL: -1, BR: -1, D: -1, MTP: -1, DL: -1, TB: -1, V: -1}
}

// hasCMCD is the cheap test of the hot path: does the request carry CMCD at
// all?
func hasCMCD(r *http.Request) bool {
	for _, h := range cmcdHeaders {
		if len(r.Header[h]) > 0 {
			return true
		}
	}
	return strings.Contains(r.URL.RawQuery, "CMCD=")
}

// ParseCMCD reads CMCD from the four request headers and the CMCD= query
// argument. Malformed headers or keys are skipped; the returned error lists
// what was skipped (nil when everything parsed).
func ParseCMCD(r *http.Request) (CMCD, error) {
	c := newCMCD()
	var errs []error
	for _, h := range cmcdHeaders {
		for _, v := range r.Header[h] {
			c.Via |= ViaHeader
			if err := c.parse(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h, err))
			}
		}
	}
	if q := r.URL.RawQuery; strings.Contains(q, "CMCD=") {
		for q != "" {
			var arg string
			arg, q, _ = strings.Cut(q, "&")
			raw, ok := strings.CutPrefix(arg, "CMCD=")
			if !ok {
				continue
			}
			c.Via |= ViaQuery
			v, err := url.QueryUnescape(raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("CMCD query argument: %w", err))
				continue
			}
			if err := c.parse(v); err != nil {
				errs = append(errs, fmt.Errorf("CMCD query argument: %w", err))
			}
		}
	}
	return c, errors.Join(errs...)
}

// parse merges one CMCD dictionary into c. Members before a syntax error
// are kept; a member of the wrong type is skipped.
func (c *CMCD) parse(v string) error {
	var bad []error
	err := sfv.ParseDictionary(v, func(key string, it sfv.Item) error {
		if err := c.set(key, it); err != nil {
			bad = append(bad, err)
		}
		return nil
	})
	if err != nil {
		bad = append(bad, err)
	}
	return errors.Join(bad...)
}

// set stores one CMCD key.
func (c *CMCD) set(key string, it sfv.Item) error {
	switch key {
	case "rtp":
		return setNum(&c.RTP, key, it, false)
	case "bl":
		return setNum(&c.BL, key, it, true)
	case "br":
		return setNum(&c.BR, key, it, false)
	case "d":
		return setNum(&c.D, key, it, false)
	case "mtp":
		return setNum(&c.MTP, key, it, false)
	case "dl":
		return setNum(&c.DL, key, it, true)
	case "tb":
		return setNum(&c.TB, key, it, false)
	case "v":
		return setNum(&c.V, key, it, false)
	case "su":
		return setBool(&c.SU, key, it)
	case "bs":
		return setBool(&c.BS, key, it)
	case "ot":
		return setToken(&c.OT, key, it)
	case "sf":
		return setToken(&c.SF, key, it)
	case "st":
		return setToken(&c.ST, key, it)
	case "sid":
		return setString(&c.SID, key, it)
	case "cid":
		return setString(&c.CID, key, it)
	case "nor":
		return setString(&c.NOR, key, it)
	case "com.sluice-rate":
		return c.Spec.setMember("rate", it)
	case "com.sluice-burst":
		return c.Spec.setMember("burst", it)
	case "com.sluice-gap":
		return c.Spec.setMember("gap", it)
	case "com.sluice-off":
		return c.Spec.setMember("off", it)
	}
	return nil // other keys (and other custom keys) are not ours
}

func typeErr(key string, it sfv.Item, want string) error {
	return fmt.Errorf("%s: %s, want %s", key, it.Kind, want)
}

// setNum stores a non-negative number (integer or decimal, rounded). An
// inner list is reduced to its smallest member (useMin) or its first.
func setNum(dst *int64, key string, it sfv.Item, useMin bool) error {
	if it.Kind == sfv.InnerList {
		found := false
		var out int64
		err := sfv.ParseInner(it.Str, func(m sfv.Item) error {
			f, ok := m.Number()
			if !ok || f < 0 {
				return typeErr(key, m, "a non-negative number")
			}
			v := int64(f + 0.5)
			if !found || (useMin && v < out) {
				out = v
			}
			found = true
			return nil
		})
		if err != nil {
			return err
		}
		if found {
			*dst = out
		}
		return nil
	}
	f, ok := it.Number()
	if !ok || f < 0 {
		return typeErr(key, it, "a non-negative number")
	}
	*dst = int64(f + 0.5)
	return nil
}

func setBool(dst *bool, key string, it sfv.Item) error {
	if it.Kind != sfv.Boolean {
		return typeErr(key, it, "a boolean")
	}
	*dst = it.Bool
	return nil
}

func setToken(dst *string, key string, it sfv.Item) error {
	if it.Kind != sfv.Token && it.Kind != sfv.String {
		return typeErr(key, it, "a token")
	}
	*dst = it.Str
	return nil
}

// setString accepts a string, a token, or (CMCD v2 nor) an inner list of
// strings, of which the first is kept.
func setString(dst *string, key string, it sfv.Item) error {
	switch it.Kind {
	case sfv.String, sfv.Token:
		*dst = it.Str
		return nil
	case sfv.InnerList:
		first := true
		return sfv.ParseInner(it.Str, func(m sfv.Item) error {
			if m.Kind != sfv.String && m.Kind != sfv.Token {
				return typeErr(key, m, "a string")
			}
			if first {
				*dst, first = m.Str, false
			}
			return nil
		})
	}
	return typeErr(key, it, "a string")
}
