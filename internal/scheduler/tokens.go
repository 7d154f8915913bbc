package scheduler

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

func randRead(b []byte) { rand.Read(b) }

func hexString(b []byte) string { return hex.EncodeToString(b) }

// sessionMAC is the MAC part of a session ID (8 hex digits).
func sessionMAC(secret []byte, r string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sluice-session\x00"))
	m.Write([]byte(r))
	return hex.EncodeToString(m.Sum(nil)[:4])
}

// token returns the session's token for a track, valid until at least
// now+ttl; the expiry is rounded up to half a TTL so that the URLs of a
// session stay the same from one manifest reload to the next. s.mu must be
// held.
func (s *Scheduler) token(sess *session, track string, now time.Time, ttl time.Duration) string {
	if e, ok := sess.tokens[track]; ok && e.exp.Sub(now) >= ttl {
		return e.tok
	}
	step := max(ttl/2, time.Second)
	exp := now.Add(ttl).Truncate(step).Add(step)
	tok := cluster.Sign(s.cfg.Secret, cluster.Token{Session: sess.id, Point: sess.point.name, Track: track, Expires: exp})
	sess.tokens[track] = tokenEntry{tok, exp}
	return tok
}
