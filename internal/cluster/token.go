package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Token designates a session and the blocks of one point. Its string form
// (Sign) is short, since it sits in every segment URL of the session (a
// demuxer such as ffmpeg's sizes its URL buffers from the manifest's own
// URL lengths): for a session ID of lower-case hex (every
// cluster.NewSessionID is), URL-safe base64 without padding of
//
//	the session ID's bytes | 2 bytes: a tag of the point (the first bytes
//	of SHA-256 of its name, to tell a token of another point) |
//	16 bytes: mac
//
// 52 characters for a session with one pathway, 80 with eight, whatever the
// point's name. Other session IDs (and tokens made before this form) are
// "<payload>.<mac>", payload being the session ID and the point name. In
// both, mac = HMAC-SHA256(secret, "sluice-token\0" + session + "\0" +
// point) (16 bytes). A token carries no expiry: it is the same for the
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
	mac := tokenMAC(secret, payload)
	if raw, ok := compactSession(t.Session); ok {
		tag := pointTag(t.Point)
		return b64.EncodeToString(append(append(raw, tag[:]...), mac...))
	}
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(mac)
}

// Lengths in the compact form.
const (
	tokenMACLen = 16
	pointTagLen = 2
)

// compactSession returns the bytes of a session ID of lower-case hex
// (even length, not empty), which the compact form carries.
func compactSession(id string) ([]byte, bool) {
	if id == "" || len(id)%2 != 0 {
		return nil, false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, false
		}
	}
	raw, err := hex.DecodeString(id)
	return raw, err == nil
}

// pointTag is the compact form's tag of a point name.
func pointTag(point string) [pointTagLen]byte {
	h := sha256.Sum256([]byte("sluice-point\x00" + point))
	return [pointTagLen]byte(h[:pointTagLen])
}

// Verify checks a token's signature and that it is for block b's point, and
// returns its contents. Whether its session is still valid is the
// sender's to check.
func Verify(secret []byte, s string, b BlockID) (Token, error) {
	if !strings.Contains(s, ".") {
		return verifyCompact(secret, s, b)
	}
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

// verifyCompact is Verify of the compact form.
func verifyCompact(secret []byte, s string, b BlockID) (Token, error) {
	raw, err := b64.DecodeString(s)
	if err != nil || len(raw) <= pointTagLen+tokenMACLen {
		return Token{}, fmt.Errorf("%w: malformed", ErrToken)
	}
	n := len(raw) - pointTagLen - tokenMACLen
	sess, tag, mac := raw[:n], raw[n:n+pointTagLen], raw[n+pointTagLen:]
	t := Token{Session: hex.EncodeToString(sess), Point: b.Point}
	if want := pointTag(b.Point); !hmac.Equal(tag, want[:]) {
		return Token{Session: t.Session}, fmt.Errorf("%w: issued for another publishing point", ErrToken)
	}
	if !hmac.Equal(mac, tokenMAC(secret, []byte(t.Session+"\x00"+t.Point))) {
		return Token{}, fmt.Errorf("%w: bad signature", ErrToken)
	}
	return t, nil
}
