package pacing

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file is a small RFC 8941 (Structured Field Values) parser and
// serializer: enough for CMCD (CTA-5004), CMSD (CTA-5006) and Sluice-Pacing.
// Parsing does not allocate for keys, numbers, tokens and strings without
// escapes: they are substrings of the input.

// itemKind is the type of a bare item (RFC 8941 §3.3) or an inner list.
type itemKind uint8

const (
	kindInt itemKind = iota + 1
	kindDec
	kindString
	kindToken
	kindBytes
	kindBool
	kindInnerList
)

func (k itemKind) String() string {
	switch k {
	case kindInt:
		return "integer"
	case kindDec:
		return "decimal"
	case kindString:
		return "string"
	case kindToken:
		return "token"
	case kindBytes:
		return "byte sequence"
	case kindBool:
		return "boolean"
	case kindInnerList:
		return "inner list"
	}
	return "nothing"
}

// item is one dictionary member value, inner-list member or parameter value.
type item struct {
	kind   itemKind
	i      int64   // kindInt
	f      float64 // kindDec
	s      string  // kindString, kindToken, kindBytes (base64), kindInnerList (raw contents)
	b      bool    // kindBool
	params string  // raw parameters, ";k=v;k2" (empty: none)
}

// number returns an integer or decimal item as a float64.
func (it item) number() (float64, bool) {
	switch it.kind {
	case kindInt:
		return float64(it.i), true
	case kindDec:
		return it.f, true
	}
	return 0, false
}

// errSF is the error class of every parse failure.
var errSF = errors.New("structured field")

func sfErr(s string, i int, what string) error {
	return fmt.Errorf("%w: %s at offset %d of %q", errSF, what, i, clip(s, 80))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// sfParser walks one field value.
type sfParser struct {
	s string
	i int
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool   { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }

// isTChar reports the RFC 9110 tchar set.
func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) eof() bool { return p.i >= len(p.s) }

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// parseDict parses an sf-dictionary and calls fn for every member in order
// (a later duplicate key simply comes later). It stops at the first error.
func parseDict(s string, fn func(key string, it item) error) error {
	p := sfParser{s: s}
	p.skipSP()
	if p.eof() {
		return nil
	}
	for {
		key, err := p.key()
		if err != nil {
			return err
		}
		var it item
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if it, err = p.member(); err != nil {
				return err
			}
		} else {
			it = item{kind: kindBool, b: true}
			if it.params, err = p.paramsRaw(); err != nil {
				return err
			}
		}
		if err := fn(key, it); err != nil {
			return err
		}
		p.skipOWS()
		if p.eof() {
			return nil
		}
		if p.s[p.i] != ',' {
			return sfErr(s, p.i, "expected ','")
		}
		p.i++
		p.skipOWS()
		if p.eof() {
			return sfErr(s, p.i, "trailing ','")
		}
	}
}

// parseList parses an sf-list (items and inner lists with parameters).
func parseList(s string, fn func(it item) error) error {
	p := sfParser{s: s}
	p.skipSP()
	if p.eof() {
		return nil
	}
	for {
		it, err := p.member()
		if err != nil {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
		p.skipOWS()
		if p.eof() {
			return nil
		}
		if p.s[p.i] != ',' {
			return sfErr(s, p.i, "expected ','")
		}
		p.i++
		p.skipOWS()
		if p.eof() {
			return sfErr(s, p.i, "trailing ','")
		}
	}
}

// parseParams walks raw parameters as kept in item.params.
func parseParams(raw string, fn func(key string, it item) error) error {
	p := sfParser{s: raw}
	for !p.eof() {
		if p.s[p.i] != ';' {
			return sfErr(raw, p.i, "expected ';'")
		}
		p.i++
		p.skipSP()
		key, err := p.key()
		if err != nil {
			return err
		}
		it := item{kind: kindBool, b: true}
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if it, err = p.bare(); err != nil {
				return err
			}
		}
		if err := fn(key, it); err != nil {
			return err
		}
	}
	return nil
}

// parseInner walks the items of an inner list (item.s of a kindInnerList).
func parseInner(raw string, fn func(it item) error) error {
	p := sfParser{s: raw}
	p.skipSP()
	for !p.eof() {
		it, err := p.bare()
		if err != nil {
			return err
		}
		if it.params, err = p.paramsRaw(); err != nil {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
		if !p.eof() && p.s[p.i] != ' ' {
			return sfErr(raw, p.i, "expected ' ' between inner-list items")
		}
		p.skipSP()
	}
	return nil
}

// key parses a key: (lcalpha / "*") *(lcalpha / DIGIT / "_" / "-" / "." / "*").
func (p *sfParser) key() (string, error) {
	start := p.i
	if p.eof() || !(isLCAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", sfErr(p.s, p.i, "expected a key")
	}
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], nil
}

// member parses an item or an inner list, each with its parameters.
func (p *sfParser) member() (item, error) {
	var it item
	var err error
	if !p.eof() && p.s[p.i] == '(' {
		p.i++
		start := p.i
		depthOK := false
		for p.i < len(p.s) {
			c := p.s[p.i]
			if c == '"' { // skip a string: it may hold ')'
				if _, err := p.str(); err != nil {
					return it, err
				}
				continue
			}
			if c == ')' {
				depthOK = true
				break
			}
			p.i++
		}
		if !depthOK {
			return it, sfErr(p.s, p.i, "unterminated inner list")
		}
		it = item{kind: kindInnerList, s: p.s[start:p.i]}
		p.i++
	} else if it, err = p.bare(); err != nil {
		return it, err
	}
	it.params, err = p.paramsRaw()
	return it, err
}

// paramsRaw consumes parameters and returns their raw text (validated).
func (p *sfParser) paramsRaw() (string, error) {
	start := p.i
	for !p.eof() && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		if _, err := p.key(); err != nil {
			return "", err
		}
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if _, err := p.bare(); err != nil {
				return "", err
			}
		}
	}
	return p.s[start:p.i], nil
}

// bare parses a bare item.
func (p *sfParser) bare() (item, error) {
	if p.eof() {
		return item{}, sfErr(p.s, p.i, "expected a value")
	}
	c := p.s[p.i]
	switch {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		s, err := p.str()
		return item{kind: kindString, s: s}, err
	case c == '*' || isAlpha(c):
		start := p.i
		p.i++
		for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return item{kind: kindToken, s: p.s[start:p.i]}, nil
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return item{}, sfErr(p.s, p.i, "unterminated byte sequence")
		}
		b := p.s[p.i+1 : p.i+1+end]
		for j := 0; j < len(b); j++ {
			if !(isAlpha(b[j]) || isDigit(b[j]) || b[j] == '+' || b[j] == '/' || b[j] == '=') {
				return item{}, sfErr(p.s, p.i+1+j, "bad base64 character")
			}
		}
		p.i += end + 2
		return item{kind: kindBytes, s: b}, nil
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := p.s[p.i+1] == '1'
			p.i += 2
			return item{kind: kindBool, b: v}, nil
		}
		return item{}, sfErr(p.s, p.i, "bad boolean")
	}
	return item{}, sfErr(p.s, p.i, "unexpected character")
}

// number parses an sf-integer (at most 15 digits) or sf-decimal (at most
// 12 integer and 3 fractional digits).
func (p *sfParser) number() (item, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits, dot := 0, -1
	for p.i < len(p.s) {
		c := p.s[p.i]
		if isDigit(c) {
			digits++
		} else if c == '.' && dot < 0 {
			dot = p.i
		} else {
			break
		}
		p.i++
	}
	txt := p.s[start:p.i]
	if digits == 0 {
		return item{}, sfErr(p.s, start, "bad number")
	}
	if dot < 0 {
		if digits > 15 {
			return item{}, sfErr(p.s, start, "integer longer than 15 digits")
		}
		v, err := strconv.ParseInt(txt, 10, 64)
		if err != nil {
			return item{}, sfErr(p.s, start, "bad integer")
		}
		return item{kind: kindInt, i: v}, nil
	}
	frac := p.i - dot - 1
	if frac < 1 || frac > 3 || digits-frac > 12 {
		return item{}, sfErr(p.s, start, "bad decimal")
	}
	v, err := strconv.ParseFloat(txt, 64)
	if err != nil {
		return item{}, sfErr(p.s, start, "bad decimal")
	}
	return item{kind: kindDec, f: v}, nil
}

// str parses an sf-string; it allocates only when the string has escapes.
func (p *sfParser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	escaped := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '\\':
			if p.i+1 >= len(p.s) || (p.s[p.i+1] != '"' && p.s[p.i+1] != '\\') {
				return "", sfErr(p.s, p.i, "bad escape in string")
			}
			escaped = true
			p.i += 2
			continue
		case c == '"':
			raw := p.s[start:p.i]
			p.i++
			if !escaped {
				return raw, nil
			}
			var b strings.Builder
			for j := 0; j < len(raw); j++ {
				if raw[j] == '\\' {
					j++
				}
				b.WriteByte(raw[j])
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", sfErr(p.s, p.i, "bad character in string")
		}
		p.i++
	}
	return "", sfErr(p.s, start-1, "unterminated string")
}

// Serialization: append helpers used to build CMSD headers without fmt.

// appendSFInt appends an sf-integer, clamped to the 15-digit range.
func appendSFInt(b []byte, v int64) []byte {
	const lim = 999_999_999_999_999
	v = min(max(v, -lim), lim)
	return strconv.AppendInt(b, v, 10)
}

// appendSFDec appends an sf-decimal rounded to three fractional digits.
func appendSFDec(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	v = math.Round(v*1000) / 1000
	v = min(max(v, -999_999_999_999), 999_999_999_999)
	n := len(b)
	b = strconv.AppendFloat(b, v, 'f', 3, 64)
	// Trim trailing zeros but keep one fractional digit.
	for len(b) > n+1 && b[len(b)-1] == '0' && b[len(b)-2] != '.' {
		b = b[:len(b)-1]
	}
	return b
}

// appendSFString appends an sf-string; characters outside printable ASCII
// are replaced by '?'.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
