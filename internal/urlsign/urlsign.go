// Package urlsign makes and checks signed player URLs (docs/origin.md,
// "Signed player URLs"): an HMAC token naming a path
// prefix and an expiry, carried in the query (?st=) of the first request
// and then in a cookie, the way Wowza SecureToken and OvenMediaEngine
// SignedPolicy work. An origin, a distribution server or a scheduler that
// requires them answers 403 to a request without a valid token for its
// path, so an operator can keep a channel from being public while players
// stay unmodified: the manifest response sets the cookie (Path = the
// token's prefix), and the player's segment requests on the same host
// carry it.
//
// A token is "<expires, unix seconds>.<prefix, base64url>.<HMAC-SHA256,
// base64url>", the HMAC over "sluice-url-v1", the expiry and the prefix,
// under the signing key.
package urlsign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// Param is the query parameter of a token; Cookie the cookie it is kept
// in after the first request.
const (
	Param  = "st"
	Cookie = "sluice_st"
)

// KeyEnv is the environment variable a key is read from when no key file
// is named.
const KeyEnv = "SLUICE_URL_KEY"

// Errors of Verify (the reason label of the refusals metric is the text
// after "signed URL: ").
var (
	ErrMissing   = errors.New("signed URL: missing")
	ErrMalformed = errors.New("signed URL: malformed")
	ErrSignature = errors.New("signed URL: bad_signature")
	ErrExpired   = errors.New("signed URL: expired")
	ErrPrefix    = errors.New("signed URL: wrong_prefix")
)

// Reason is the short reason of an error of Verify.
func Reason(err error) string {
	for _, e := range []error{ErrMissing, ErrMalformed, ErrSignature, ErrExpired, ErrPrefix} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "signed URL: ")
		}
	}
	return "other"
}

var b64 = base64.RawURLEncoding

// Key signs and checks tokens.
type Key []byte

// LoadKey reads a key from file (its contents, trailing newline trimmed)
// or, when file is empty, from $SLUICE_URL_KEY. A key shorter than 16
// bytes is refused.
func LoadKey(file string) (Key, error) {
	var k string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("signed URL key: %w", err)
		}
		k = strings.TrimRight(string(b), "\r\n")
	} else {
		k = os.Getenv(KeyEnv)
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("signed URL key: want at least 16 bytes (a key file, or $%s)", KeyEnv)
	}
	return Key(k), nil
}

func (k Key) mac(exp int64, prefix string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("sluice-url-v1\n" + strconv.FormatInt(exp, 10) + "\n" + prefix))
	return m.Sum(nil)
}

// Token returns a token for every path under prefix (a path starting with
// "/", e.g. "/live.isml/"), valid until exp.
func (k Key) Token(prefix string, exp time.Time) string {
	e := exp.Unix()
	return strconv.FormatInt(e, 10) + "." + b64.EncodeToString([]byte(prefix)) + "." + b64.EncodeToString(k.mac(e, prefix))
}

// Verify checks that token is signed with k, not expired at now, and
// names a prefix of p (the request's path, cleaned). It returns the
// token's prefix and expiry.
func (k Key) Verify(token, p string, now time.Time) (string, time.Time, error) {
	if token == "" {
		return "", time.Time{}, fmt.Errorf("%w: no token (?%s= or the %s cookie)", ErrMissing, Param, Cookie)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", time.Time{}, fmt.Errorf("%w: want <expires>.<prefix>.<signature>", ErrMalformed)
	}
	e, err1 := strconv.ParseInt(parts[0], 10, 64)
	pb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", time.Time{}, fmt.Errorf("%w: want <expires>.<prefix>.<signature>", ErrMalformed)
	}
	prefix := string(pb)
	if !hmac.Equal(sig, k.mac(e, prefix)) {
		return "", time.Time{}, fmt.Errorf("%w: the token is not signed with this server's key", ErrSignature)
	}
	exp := time.Unix(e, 0)
	if !now.Before(exp) {
		return prefix, exp, fmt.Errorf("%w: the token expired at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if !underPrefix(p, prefix) {
		return prefix, exp, fmt.Errorf("%w: the token is for %q, not %q", ErrPrefix, prefix, p)
	}
	return prefix, exp, nil
}

// underPrefix reports whether the cleaned path p lies under prefix.
func underPrefix(p, prefix string) bool {
	if prefix == "" || prefix[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return strings.HasPrefix(clean, prefix)
}

// SignURL returns raw with a token for prefix (the URL's own path when
// empty) valid until exp in its query.
func (k Key) SignURL(raw, prefix string, exp time.Time) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if prefix == "" {
		prefix = u.EscapedPath()
	}
	if !underPrefix(u.Path, prefix) {
		return "", fmt.Errorf("the URL's path %q is not under the prefix %q", u.Path, prefix)
	}
	q := u.Query()
	q.Set(Param, k.Token(prefix, exp))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// FromRequest returns the token of r: ?st= first, else the cookie, and
// whether it came from the query.
func FromRequest(r *http.Request) (string, bool) {
	if t := r.URL.Query().Get(Param); t != "" {
		return t, true
	}
	if c, err := r.Cookie(Cookie); err == nil {
		return c.Value, false
	}
	return "", false
}
