package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// A session ID names one player session of a scheduler. It is lower-case
// hex of
//
//	8 random bytes | 4 bytes: the opening time (unix seconds, big endian) |
//	3 bytes per pathway: PathwayLabel of each sender of the session's
//	pathways, in order | 6 bytes: HMAC-SHA256 under the cluster secret
//
// so that any scheduler can check it and recover the session's pathways
// (the senders its manifests name, fixed when it opened) when it adopts a
// session it has never seen, and a sender can tell a session that opened a
// moment ago (its grant may still be on the way) from an old one.
const (
	sessionRandLen  = 8
	sessionTimeLen  = 4
	sessionLabelLen = 3
	sessionMACLen   = 6
	// MaxPathways bounds the pathways one session ID can name.
	MaxPathways = 16
)

// ErrSession is returned for session IDs that are malformed or not signed
// with the cluster secret.
var ErrSession = errors.New("invalid session ID")

// SessionInfo is what a session ID says.
type SessionInfo struct {
	// Opened is when the session opened (to the second).
	Opened time.Time
	// Pathways are the PathwayLabels of its pathways' senders, in order.
	Pathways []string
}

// PathwayLabel is the 6-hex-digit label a session ID and the manifests
// use for a sender's pathway: the first 3 bytes of SHA-256 of its ID.
func PathwayLabel(senderID string) string {
	h := sha256.Sum256([]byte("sluice-pathway\x00" + senderID))
	return hex.EncodeToString(h[:sessionLabelLen])
}

func sessionMAC(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sluice-session\x00"))
	m.Write(body)
	return m.Sum(nil)[:sessionMACLen]
}

// NewSessionID makes a session ID opened at opened whose pathways are
// labels (PathwayLabel values; at most MaxPathways).
func NewSessionID(secret []byte, opened time.Time, labels []string) (string, error) {
	if len(labels) > MaxPathways {
		return "", fmt.Errorf("%d pathways: at most %d", len(labels), MaxPathways)
	}
	body := make([]byte, sessionRandLen+sessionTimeLen, sessionRandLen+sessionTimeLen+sessionLabelLen*len(labels)+sessionMACLen)
	rand.Read(body[:sessionRandLen])
	binary.BigEndian.PutUint32(body[sessionRandLen:], uint32(opened.Unix()))
	for _, l := range labels {
		b, err := hex.DecodeString(l)
		if err != nil || len(b) != sessionLabelLen {
			return "", fmt.Errorf("pathway label %q: want %d hex digits", l, 2*sessionLabelLen)
		}
		body = append(body, b...)
	}
	body = append(body, sessionMAC(secret, body)...)
	return hex.EncodeToString(body), nil
}

// ParseSessionID checks a session ID's MAC and returns what it says.
func ParseSessionID(secret []byte, id string) (SessionInfo, error) {
	min := 2 * (sessionRandLen + sessionTimeLen + sessionMACLen)
	if len(id) < min || len(id) > min+2*sessionLabelLen*MaxPathways || (len(id)-min)%(2*sessionLabelLen) != 0 {
		return SessionInfo{}, fmt.Errorf("%w: bad length", ErrSession)
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return SessionInfo{}, fmt.Errorf("%w: not lower-case hex", ErrSession)
		}
	}
	raw, _ := hex.DecodeString(id)
	body, mac := raw[:len(raw)-sessionMACLen], raw[len(raw)-sessionMACLen:]
	if len(secret) == 0 || !hmac.Equal(mac, sessionMAC(secret, body)) {
		return SessionInfo{}, fmt.Errorf("%w: bad MAC", ErrSession)
	}
	info := SessionInfo{Opened: time.Unix(int64(binary.BigEndian.Uint32(body[sessionRandLen:])), 0)}
	for p := body[sessionRandLen+sessionTimeLen:]; len(p) > 0; p = p[sessionLabelLen:] {
		info.Pathways = append(info.Pathways, hex.EncodeToString(p[:sessionLabelLen]))
	}
	return info, nil
}
