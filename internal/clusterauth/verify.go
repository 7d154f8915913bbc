package clusterauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Defaults of a Verifier.
const (
	// DefaultWindow is how far a request's time may be from the server's
	// clock either way.
	DefaultWindow = 30 * time.Second
	// DefaultMaxNonces bounds the nonces remembered (16 bytes each, about
	// 40 with the map's overhead):
	// more signed requests than this within two windows are refused
	// (503) rather than remembered less long.
	DefaultMaxNonces = 1 << 18
	// DefaultMaxBody bounds the body read to check its digest.
	DefaultMaxBody = 256 << 20
)

// Verifier checks signed requests on a server.
type Verifier struct {
	Keys Keys
	// Targets returns the names (host:port, see NormalizeHost) requests
	// must be signed for: a sender's advertised host:port and its listen
	// address. When it is nil or returns none, the signed target must be
	// the request's Host header (a server that does not know its own
	// name, e.g. an origin behind a load balancer).
	Targets func() []string
	// Window is the replay window (DefaultWindow when 0).
	Window time.Duration
	// MaxNonces bounds the nonce cache (DefaultMaxNonces when 0).
	MaxNonces int
	// MaxBody bounds a body (DefaultMaxBody when 0); more is 413.
	MaxBody int64
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives a line per refused request (nothing when nil).
	Log *slog.Logger
	// Refused, when set, is called with the reason of every refusal (a
	// metric).
	Refused func(reason string)

	mu      sync.Mutex
	cur     map[[16]byte]struct{}
	prev    map[[16]byte]struct{}
	rotated time.Time
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) window() time.Duration {
	if v.Window > 0 {
		return v.Window
	}
	return DefaultWindow
}

// Verify checks the signature of r and, when it holds, reads the body,
// checks its digest and replaces r.Body with the bytes read. The error
// wraps one of the package's errors (Reason names it).
func (v *Verifier) Verify(r *http.Request) error {
	if !v.Keys.Valid() {
		return ErrNoKey
	}
	h := r.Header.Get(Header)
	if h == "" {
		return fmt.Errorf("%w: no %s header", ErrUnsigned, Header)
	}
	s, err := parseSignature(h)
	if err != nil {
		return err
	}
	now := v.now()
	if d := now.Sub(time.Unix(s.t, 0)); d > v.window() || d < -v.window() {
		return fmt.Errorf("%w: signed at %s, %v from this server's clock (window ±%v)", ErrSkew,
			time.Unix(s.t, 0).UTC().Format(time.RFC3339), d.Round(time.Second), v.window())
	}
	if err := v.checkTarget(r, s.target); err != nil {
		return err
	}
	if !v.Keys.checkMAC(r.Method, r.URL.EscapedPath(), r.URL.RawQuery, s) {
		return fmt.Errorf("%w: the signature does not match the cluster key", ErrBadSignature)
	}
	if err := v.remember(s.nonce, now); err != nil {
		return err
	}
	return v.checkBody(r, s.digest)
}

func (v *Verifier) checkTarget(r *http.Request, target string) error {
	var names []string
	if v.Targets != nil {
		names = v.Targets()
	}
	if len(names) == 0 {
		if got := NormalizeHost(r.Host, r.TLS != nil); got != target {
			return fmt.Errorf("%w: signed for %s, sent to %s", ErrWrongTarget, target, got)
		}
		return nil
	}
	for _, n := range names {
		if n == target {
			return nil
		}
	}
	return fmt.Errorf("%w: signed for %s, this server is %v", ErrWrongTarget, target, names)
}

// remember records a nonce; a nonce seen within the last two to four
// windows is a replay. The cache has two generations, each rotated out
// after two windows, so that a nonce is kept at least as long as its
// request could pass the time check.
func (v *Verifier) remember(hexNonce string, now time.Time) error {
	var nonce [16]byte
	hex.Decode(nonce[:], []byte(hexNonce)) // checked by parseSignature
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur == nil || now.Sub(v.rotated) > 2*v.window() {
		if v.cur != nil && now.Sub(v.rotated) <= 4*v.window() {
			v.prev = v.cur
		} else {
			v.prev = nil
		}
		v.cur = map[[16]byte]struct{}{}
		v.rotated = now
	}
	if _, ok := v.cur[nonce]; ok {
		return fmt.Errorf("%w: nonce %s was used already", ErrReplay, hexNonce)
	}
	if _, ok := v.prev[nonce]; ok {
		return fmt.Errorf("%w: nonce %s was used already", ErrReplay, hexNonce)
	}
	max := v.MaxNonces
	if max <= 0 {
		max = DefaultMaxNonces
	}
	if len(v.cur)+len(v.prev) >= max {
		return fmt.Errorf("%w: %d signed requests within %v", ErrNonceCache, max, 4*v.window())
	}
	v.cur[nonce] = struct{}{}
	return nil
}

// errTooLarge marks a body over MaxBody.
var errTooLarge = errors.New("body too large")

func (v *Verifier) checkBody(r *http.Request, digest string) error {
	max := v.MaxBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	var b []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		b, err = io.ReadAll(io.LimitReader(r.Body, max+1))
		r.Body.Close()
		if err != nil {
			return fmt.Errorf("%w: read body: %v", ErrBody, err)
		}
		if int64(len(b)) > max {
			return fmt.Errorf("%w: over %d bytes", errTooLarge, max)
		}
	}
	got := sha256.Sum256(b)
	if b64.EncodeToString(got[:]) != digest {
		return fmt.Errorf("%w: the body's SHA-256 is not the signed one", ErrBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return nil
}

// Middleware answers requests that fail Verify with 401 (503 when the
// nonce cache is full, 413 for a body over MaxBody) and the reason, logs
// them and calls Refused; the others go to next with their body checked.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := v.Verify(r); err != nil {
			v.Refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Refuse answers a request that failed Verify.
func (v *Verifier) Refuse(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusUnauthorized
	switch {
	case errors.Is(err, ErrNonceCache):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, errTooLarge):
		status = http.StatusRequestEntityTooLarge
	}
	reason := Reason(err)
	if v.Log != nil {
		v.Log.Warn("internal request refused", "reason", reason, "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "err", err)
	}
	if v.Refused != nil {
		v.Refused(reason)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "internal request refused: "+err.Error(), status)
}
