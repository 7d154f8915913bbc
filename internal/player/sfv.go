package player

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// sfItem is one RFC 8941 structured-field bare item with its parameters, as
// far as the player needs them to read CMSD (CTA-5006): integers and
// decimals (Num), strings and tokens (Str), booleans (Bool). Byte sequences
// and inner lists are accepted and kept as IsInner / Str (base64 text).
type sfItem struct {
	Kind    sfKind
	Num     float64
	Str     string
	Bool    bool
	IsInner bool
	Inner   []sfItem
	Params  map[string]sfItem
}

type sfKind uint8

const (
	sfNumber sfKind = iota + 1
	sfString
	sfToken
	sfBool
	sfBytes
	sfInnerList
)

// number returns the item as a number when it is an integer or a decimal.
func (it sfItem) number() (float64, bool) {
	return it.Num, it.Kind == sfNumber
}

// sfParser reads one structured-field value.
type sfParser struct {
	s string
	i int
}

// parseSFList parses an RFC 8941 List (CMSD-Dynamic: one item per hop).
func parseSFList(s string) ([]sfItem, error) {
	p := &sfParser{s: s}
	p.skipSP()
	var out []sfItem
	for p.i < len(p.s) {
		it, err := p.itemOrInner()
		if err != nil {
			return out, err
		}
		out = append(out, it)
		if err := p.nextMember(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// sfMember is one member of a Dictionary, in order.
type sfMember struct {
	Key  string
	Item sfItem
}

// parseSFDict parses an RFC 8941 Dictionary (CMSD-Static, Sluice-Pacing,
// CMCD). A key without a value is the boolean true.
func parseSFDict(s string) ([]sfMember, error) {
	p := &sfParser{s: s}
	p.skipSP()
	var out []sfMember
	for p.i < len(p.s) {
		key, err := p.key()
		if err != nil {
			return out, err
		}
		var it sfItem
		if p.peek() == '=' {
			p.i++
			if it, err = p.itemOrInner(); err != nil {
				return out, err
			}
		} else {
			it = sfItem{Kind: sfBool, Bool: true}
			if it.Params, err = p.params(); err != nil {
				return out, err
			}
		}
		out = append(out, sfMember{Key: key, Item: it})
		if err := p.nextMember(); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (p *sfParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// nextMember consumes the comma between members (OWS around it).
func (p *sfParser) nextMember() error {
	p.skipSP()
	if p.i >= len(p.s) {
		return nil
	}
	if p.s[p.i] != ',' {
		return p.errf("want ',' between members")
	}
	p.i++
	p.skipSP()
	if p.i >= len(p.s) {
		return p.errf("trailing comma")
	}
	return nil
}

func (p *sfParser) errf(msg string) error {
	return fmt.Errorf("structured field at %d of %q: %s", p.i, p.s, msg)
}

func (p *sfParser) itemOrInner() (sfItem, error) {
	if p.peek() == '(' {
		p.i++
		it := sfItem{Kind: sfInnerList, IsInner: true}
		for {
			p.skipSP()
			if p.peek() == ')' {
				p.i++
				break
			}
			if p.i >= len(p.s) {
				return it, p.errf("unterminated inner list")
			}
			x, err := p.bare()
			if err != nil {
				return it, err
			}
			if x.Params, err = p.params(); err != nil {
				return it, err
			}
			it.Inner = append(it.Inner, x)
			if c := p.peek(); c != ' ' && c != ')' {
				return it, p.errf("want ' ' or ')' in inner list")
			}
		}
		var err error
		it.Params, err = p.params()
		return it, err
	}
	it, err := p.bare()
	if err != nil {
		return it, err
	}
	it.Params, err = p.params()
	return it, err
}

func (p *sfParser) params() (map[string]sfItem, error) {
	var m map[string]sfItem
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		k, err := p.key()
		if err != nil {
			return m, err
		}
		v := sfItem{Kind: sfBool, Bool: true}
		if p.peek() == '=' {
			p.i++
			if v, err = p.bare(); err != nil {
				return m, err
			}
		}
		if m == nil {
			m = map[string]sfItem{}
		}
		m[k] = v
	}
	return m, nil
}

// key reads a key: lowercase letter or '*', then lowercase letters,
// digits, '_', '-', '.', '*'.
func (p *sfParser) key() (string, error) {
	start := p.i
	if c := p.peek(); !(c >= 'a' && c <= 'z' || c == '*') {
		return "", p.errf("want a key")
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("_-.*", c) >= 0 {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) bare() (sfItem, error) {
	c := p.peek()
	switch {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return p.str()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := p.s[p.i+1] == '1'
			p.i += 2
			return sfItem{Kind: sfBool, Bool: v}, nil
		}
		return sfItem{}, p.errf("bad boolean")
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return sfItem{}, p.errf("unterminated byte sequence")
		}
		it := sfItem{Kind: sfBytes, Str: p.s[p.i+1 : p.i+1+end]}
		p.i += end + 2
		return it, nil
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		start := p.i
		for p.i < len(p.s) {
			c := p.s[p.i]
			if c > ' ' && c < 0x7f && strings.IndexByte(`"(),;<=>?@[\]{}`, c) < 0 || c == ':' || c == '/' {
				p.i++
				continue
			}
			break
		}
		return sfItem{Kind: sfToken, Str: p.s[start:p.i]}, nil
	}
	return sfItem{}, p.errf("want an item")
}

func (p *sfParser) number() (sfItem, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	digits, dot := 0, false
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c >= '0' && c <= '9' {
			digits++
			p.i++
			continue
		}
		if c == '.' && !dot {
			dot = true
			p.i++
			continue
		}
		break
	}
	if digits == 0 || digits > 15+4 {
		return sfItem{}, p.errf("bad number")
	}
	f, err := strconv.ParseFloat(p.s[start:p.i], 64)
	if err != nil {
		return sfItem{}, p.errf("bad number")
	}
	return sfItem{Kind: sfNumber, Num: f}, nil
}

func (p *sfParser) str() (sfItem, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if p.i >= len(p.s) || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return sfItem{}, p.errf("bad escape")
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case '"':
			return sfItem{Kind: sfString, Str: b.String()}, nil
		default:
			if c < ' ' || c >= 0x7f {
				return sfItem{}, p.errf("bad character in string")
			}
			b.WriteByte(c)
		}
	}
	return sfItem{}, errors.New("unterminated string")
}
