// Package sfv reads and writes RFC 8941 Structured Field Values, as far as
// CMCD (CTA-5004), CMSD (CTA-5006) and Sluice-Pacing need them: the one
// parser of the module, used by the origin's pacer (internal/pacing) and by
// the player (internal/player).
//
// Parsing walks a field value and calls a function per member instead of
// building a tree: keys, numbers, tokens, byte sequences and strings without
// escapes are substrings of the input, so reading a typical CMCD request
// allocates nothing. Parameters and inner lists stay raw text inside an
// Item (validated while parsing) and are walked on demand with
// [ParseParams] and [ParseInner]. Members before a syntax error have been
// delivered when the error is returned, so callers can keep what parsed.
//
// It was kept over github.com/dunglas/httpsfv because that library costs
// about 2–14 µs and 22–89 allocations more per media request on the inputs
// the pacer reads (BenchmarkSFParse in internal/pacing; docs/pacing.md
// §1.4).
package sfv

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a bare item (RFC 8941 §3.3) or an inner list.
type Kind uint8

// Kinds.
const (
	Integer Kind = iota + 1
	Decimal
	String
	Token
	Bytes
	Boolean
	InnerList
)

// String names the kind for error messages.
func (k Kind) String() string {
	switch k {
	case Integer:
		return "integer"
	case Decimal:
		return "decimal"
	case String:
		return "string"
	case Token:
		return "token"
	case Bytes:
		return "byte sequence"
	case Boolean:
		return "boolean"
	case InnerList:
		return "inner list"
	}
	return "nothing"
}

// Item is one dictionary member value, list member, inner-list member or
// parameter value.
type Item struct {
	Kind Kind
	Int  int64   // Integer
	Dec  float64 // Decimal
	// Str is the value of a String or Token, the base64 text of Bytes, and
	// the raw contents of an InnerList (walk them with ParseInner).
	Str  string
	Bool bool // Boolean
	// Params is the raw, validated parameter text ";k=v;k2" (empty: none);
	// walk it with ParseParams.
	Params string
}

// Number returns an Integer or Decimal item as a float64; ok is false for
// every other kind.
func (it Item) Number() (f float64, ok bool) {
	switch it.Kind {
	case Integer:
		return float64(it.Int), true
	case Decimal:
		return it.Dec, true
	}
	return 0, false
}

// Text returns the value as text: a number as it serializes, a boolean as
// "1" or "0", and Str for every other kind (no quotes, escapes removed).
func (it Item) Text() string {
	switch it.Kind {
	case Integer:
		return string(AppendInt(nil, it.Int))
	case Decimal:
		return string(AppendDecimal(nil, it.Dec))
	case Boolean:
		if it.Bool {
			return "1"
		}
		return "0"
	}
	return it.Str
}

// ErrSyntax is the class of every parse failure (errors.Is); the message
// says what was expected at which offset.
var ErrSyntax = errors.New("structured field")

func sfErr(s string, i int, what string) error {
	return fmt.Errorf("%w: %s at offset %d of %q", ErrSyntax, what, i, clip(s, 80))
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

// ParseDictionary parses an sf-dictionary and calls fn for every member in
// order (a later duplicate key simply comes later; a key without a value is
// the Boolean true, with its parameters). It stops at the first error, of
// fn or of the syntax; the members before it have been delivered.
func ParseDictionary(s string, fn func(key string, it Item) error) error {
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
		var it Item
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if it, err = p.member(); err != nil {
				return err
			}
		} else {
			it = Item{Kind: Boolean, Bool: true}
			if it.Params, err = p.paramsRaw(); err != nil {
				return err
			}
		}
		if err := fn(key, it); err != nil {
			return err
		}
		if done, err := p.nextMember(); done || err != nil {
			return err
		}
	}
}

// nextMember consumes what follows a member of a list or dictionary: the
// end (done), or a comma with optional white space around it before the
// next member.
func (p *sfParser) nextMember() (done bool, err error) {
	p.skipOWS()
	if p.eof() {
		return true, nil
	}
	if p.s[p.i] != ',' {
		return false, sfErr(p.s, p.i, "expected ','")
	}
	p.i++
	p.skipOWS()
	if p.eof() {
		return false, sfErr(p.s, p.i, "trailing ','")
	}
	return false, nil
}

// ParseList parses an sf-list (items and inner lists with parameters) and
// calls fn for every member in order, like ParseDictionary.
func ParseList(s string, fn func(it Item) error) error {
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
		if done, err := p.nextMember(); done || err != nil {
			return err
		}
	}
}

// ParseParams walks raw parameters as kept in Item.Params.
func ParseParams(raw string, fn func(key string, it Item) error) error {
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
		it := Item{Kind: Boolean, Bool: true}
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

// ParseInner walks the items of an inner list (Item.Str of an InnerList).
func ParseInner(raw string, fn func(it Item) error) error {
	p := sfParser{s: raw}
	p.skipSP()
	for !p.eof() {
		it, err := p.bare()
		if err != nil {
			return err
		}
		if it.Params, err = p.paramsRaw(); err != nil {
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

// member parses an Item or an inner list, each with its parameters.
func (p *sfParser) member() (Item, error) {
	var it Item
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
		it = Item{Kind: InnerList, Str: p.s[start:p.i]}
		if err := ParseInner(it.Str, func(Item) error { return nil }); err != nil {
			return it, fmt.Errorf("inner list at offset %d of %q: %w", start-1, clip(p.s, 80), err)
		}
		p.i++
	} else if it, err = p.bare(); err != nil {
		return it, err
	}
	it.Params, err = p.paramsRaw()
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

// bare parses a bare Item.
func (p *sfParser) bare() (Item, error) {
	if p.eof() {
		return Item{}, sfErr(p.s, p.i, "expected a value")
	}
	c := p.s[p.i]
	switch {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		s, err := p.str()
		return Item{Kind: String, Str: s}, err
	case c == '*' || isAlpha(c):
		start := p.i
		p.i++
		for p.i < len(p.s) && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return Item{Kind: Token, Str: p.s[start:p.i]}, nil
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return Item{}, sfErr(p.s, p.i, "unterminated byte sequence")
		}
		b := p.s[p.i+1 : p.i+1+end]
		for j := 0; j < len(b); j++ {
			if !(isAlpha(b[j]) || isDigit(b[j]) || b[j] == '+' || b[j] == '/' || b[j] == '=') {
				return Item{}, sfErr(p.s, p.i+1+j, "bad base64 character")
			}
		}
		p.i += end + 2
		return Item{Kind: Bytes, Str: b}, nil
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := p.s[p.i+1] == '1'
			p.i += 2
			return Item{Kind: Boolean, Bool: v}, nil
		}
		return Item{}, sfErr(p.s, p.i, "bad boolean")
	}
	return Item{}, sfErr(p.s, p.i, "unexpected character")
}

// number parses an sf-integer (at most 15 digits) or sf-decimal (at most
// 12 integer and 3 fractional digits).
func (p *sfParser) number() (Item, error) {
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
		return Item{}, sfErr(p.s, start, "bad number")
	}
	if dot < 0 {
		if digits > 15 {
			return Item{}, sfErr(p.s, start, "integer longer than 15 digits")
		}
		v, err := strconv.ParseInt(txt, 10, 64)
		if err != nil {
			return Item{}, sfErr(p.s, start, "bad integer")
		}
		return Item{Kind: Integer, Int: v}, nil
	}
	frac := p.i - dot - 1
	if frac < 1 || frac > 3 || digits-frac > 12 {
		return Item{}, sfErr(p.s, start, "bad decimal")
	}
	v, err := strconv.ParseFloat(txt, 64)
	if err != nil {
		return Item{}, sfErr(p.s, start, "bad decimal")
	}
	return Item{Kind: Decimal, Dec: v}, nil
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

// Serialization: append helpers that build headers without fmt.

// AppendInt appends an sf-integer, clamped to the 15-digit range.
func AppendInt(b []byte, v int64) []byte {
	const lim = 999_999_999_999_999
	v = min(max(v, -lim), lim)
	return strconv.AppendInt(b, v, 10)
}

// AppendDecimal appends an sf-decimal rounded to three fractional digits.
func AppendDecimal(b []byte, v float64) []byte {
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

// AppendString appends an sf-string; characters outside printable ASCII
// are replaced by '?'.
func AppendString(b []byte, s string) []byte {
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
