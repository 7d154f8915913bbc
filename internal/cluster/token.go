package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Token designates a session and a set of blocks and expires. It is
// "<session>.<expiry unix seconds>.<scope>.<mac>" in URL-safe base64, where
// scope is a point and track (the block's start time comes from the URL) and
// mac = HMAC-SHA256(secret, session|expiry|scope).
type Token struct {
	Session string
	Point   string
	Track   string
	Expires time.Time
}

var b64 = base64.RawURLEncoding

// Sign encodes and signs a token.
func Sign(secret []byte, t Token) string {
	payload := t.Session + "\x00" + t.Point + "\x00" + t.Track
	var exp [8]byte
	binary.BigEndian.PutUint64(exp[:], uint64(t.Expires.Unix()))
	m := hmac.New(sha256.New, secret)
	m.Write(exp[:])
	m.Write([]byte(payload))
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(exp[:]) + "." + b64.EncodeToString(m.Sum(nil)[:16])
}

// Verify checks a token for a block at time now and returns its contents.
func Verify(secret []byte, s string, b BlockID, now time.Time) (Token, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("%w: malformed", ErrToken)
	}
	payload, err1 := b64.DecodeString(parts[0])
	exp, err2 := b64.DecodeString(parts[1])
	mac, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(exp) != 8 {
		return Token{}, fmt.Errorf("%w: malformed", ErrToken)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(exp)
	m.Write(payload)
	if !hmac.Equal(mac, m.Sum(nil)[:16]) {
		return Token{}, fmt.Errorf("%w: bad signature", ErrToken)
	}
	f := strings.Split(string(payload), "\x00")
	if len(f) != 3 {
		return Token{}, fmt.Errorf("%w: malformed", ErrToken)
	}
	t := Token{Session: f[0], Point: f[1], Track: f[2], Expires: time.Unix(int64(binary.BigEndian.Uint64(exp)), 0)}
	if now.After(t.Expires) {
		return t, fmt.Errorf("%w: expired", ErrToken)
	}
	if t.Point != b.Point || t.Track != b.Track {
		return t, fmt.Errorf("%w: issued for another track", ErrToken)
	}
	return t, nil
}
