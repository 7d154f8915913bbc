package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Token designates a session and the blocks of one point: it is
// "<payload>.<mac>" in URL-safe base64, where payload is the session ID
// and the point name and mac = HMAC-SHA256(secret, "sluice-token\0" +
// payload) (16 bytes). A token carries no expiry: it is the same for the
// whole life of its session, so the URLs that carry it never change, and a
// sender accepts it while the session is valid there (a session grant
// from a scheduler, renewed while the session lives; see Batch.Grants and
// docs/cluster.md, "Sessions and tokens"). The block's track and start
// come from the URL.
type Token struct {
	Session string
	Point   string
}

var b64 = base64.RawURLEncoding

// tokenMAC is the MAC of a token payload.
func tokenMAC(secret, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sluice-token\x00"))
	m.Write(payload)
	return m.Sum(nil)[:16]
}

// Sign encodes and signs a token. The same token always gives the same
// string.
func Sign(secret []byte, t Token) string {
	payload := []byte(t.Session + "\x00" + t.Point)
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(tokenMAC(secret, payload))
}

// Verify checks a token's signature and that it is for block b's point, and
// returns its contents. Whether its session is still valid is the
// sender's to check.
func Verify(secret []byte, s string, b BlockID) (Token, error) {
	enc, macEnc, ok := strings.Cut(s, ".")
	if !ok || strings.Contains(macEnc, ".") {
		return Token{}, fmt.Errorf("%w: malformed", ErrToken)
	}
	payload, err1 := b64.DecodeString(enc)
	mac, err2 := b64.DecodeString(macEnc)
	if err1 != nil || err2 != nil {
		return Token{}, fmt.Errorf("%w: malformed", ErrToken)
	}
	if !hmac.Equal(mac, tokenMAC(secret, payload)) {
		return Token{}, fmt.Errorf("%w: bad signature", ErrToken)
	}
	sess, point, ok := strings.Cut(string(payload), "\x00")
	if !ok || sess == "" {
		return Token{}, fmt.Errorf("%w: malformed", ErrToken)
	}
	t := Token{Session: sess, Point: point}
	if t.Point != b.Point {
		return t, fmt.Errorf("%w: issued for another publishing point", ErrToken)
	}
	return t, nil
}
