// Package ratelimit bounds what one client may ask of a server per unit of
// time (docs/ingest.md, "Authentication and per-client limits"): a token bucket per client address, so that one
// address opening thousands of sessions or pushes is answered 429 with
// Retry-After while every other client is served as before.
package ratelimit

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxClients bounds the buckets a Limiter keeps.
const DefaultMaxClients = 100_000

// Limiter is a token bucket per key (a client address): Rate tokens a
// second, at most Burst saved up; a request takes one. A zero Rate
// disables it (every request passes). Buckets full again are forgotten,
// and at most MaxClients are kept: when that many are in use, a new
// client shares the limit of every other new client until some refill.
type Limiter struct {
	Rate       float64 // tokens a second per client
	Burst      int     // bucket size (at least 1)
	MaxClients int     // DefaultMaxClients when 0
	Now        func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
	logged  map[string]time.Time // key -> last refusal logged
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a limiter of rate requests a second with bursts of burst
// per client; rate 0 disables it.
func New(rate float64, burst int) *Limiter {
	return &Limiter{Rate: rate, Burst: burst}
}

// Enabled reports whether the limiter limits anything.
func (l *Limiter) Enabled() bool { return l != nil && l.Rate > 0 }

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Allow takes a token for key. When none is left it reports false and how
// long until one is.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if !l.Enabled() {
		return true, 0
	}
	burst := float64(max(l.Burst, 1))
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	// Forget full buckets now and then (they equal a new one).
	full := time.Duration(burst / l.Rate * float64(time.Second))
	if now.Sub(l.sweep) > max(full, time.Second) {
		for k, b := range l.buckets {
			if now.Sub(b.at) >= full {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b := l.buckets[key]
	if b == nil {
		maxc := l.MaxClients
		if maxc <= 0 {
			maxc = DefaultMaxClients
		}
		if len(l.buckets) >= maxc {
			key = "\x00overflow"
			b = l.buckets[key]
		}
		if b == nil {
			b = &bucket{tokens: burst, at: now}
			l.buckets[key] = b
		}
	}
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.at).Seconds()*l.Rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.Rate * float64(time.Second))
}

// Clients returns the number of buckets kept.
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// ClientKey is the key of a request's client: the IP address of its
// connection (not a forwarded-for header, which any client can write).
func ClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Refuse answers 429 with Retry-After (whole seconds, at least 1) and the
// reason.
func Refuse(w http.ResponseWriter, retry time.Duration, reason string) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, reason, http.StatusTooManyRequests)
}

// Middleware limits the requests of each client: key returns the bucket
// of a request and whether it counts at all (nil: every request, by
// ClientKey). A refused request gets 429 with Retry-After; onRefuse (may
// be nil) is called with it and its key, and a log line is due when
// logNow is true (once per key per 10 s, so a flood logs little).
func (l *Limiter) Middleware(next http.Handler, key func(*http.Request) (string, bool), what string, onRefuse func(r *http.Request, key string, logNow bool)) http.Handler {
	if !l.Enabled() {
		return next
	}
	if key == nil {
		key = func(r *http.Request) (string, bool) { return ClientKey(r), true }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k, counts := key(r); counts {
			if ok, retry := l.Allow(k); !ok {
				if onRefuse != nil {
					onRefuse(r, k, l.logDue(k))
				}
				Refuse(w, retry, "too many "+what+" from "+ClientKey(r)+": at most "+
					strconv.FormatFloat(l.Rate, 'g', -1, 64)+"/s (bursts of "+strconv.Itoa(max(l.Burst, 1))+"); retry later")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// logDue reports whether a refusal of key should be logged: the first in
// 10 s.
func (l *Limiter) logDue(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logged == nil || len(l.logged) > 10_000 {
		l.logged = map[string]time.Time{}
	}
	if t, ok := l.logged[key]; ok && now.Sub(t) < 10*time.Second {
		return false
	}
	l.logged[key] = now
	return true
}
