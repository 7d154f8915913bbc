// Package clusterauth authenticates the internal requests of a Sluice
// cluster without ever sending the cluster secret
// (docs/cluster.md, "Internal authentication").
//
// Every internal request (scheduler -> sender batches, origin -> sender
// block and header uploads, missing/delete/stats queries, scheduler ->
// origin view.json, the owner-set listing) carries a signature header
//
//	Sluice-Signature: v1;t=<unix seconds>;n=<nonce, 32 hex>;h=<target host:port>;d=<body SHA-256, base64url>;s=<HMAC-SHA256, base64url>
//
// over the method, the target (the host:port the client sent the request
// to, so that a request signed for one member is refused by another), the
// escaped path, the raw query, the body digest, the time and the nonce,
// under a key derived from the cluster secret. A server (Verifier) accepts
// a request once: within Window of its clock (30 s), with a nonce it has
// not seen in that window (a bounded cache), for one of its own names, and
// with a body whose digest is the signed one.
//
// The same key material signs membership records (a sender's etcd
// registration: id, URL, time) and answers challenges (Prove): a member
// learned from etcd or a static list is used only after it proved that it
// holds the cluster key for its own URL (internal/membership).
package clusterauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"strings"
)

// Header carries a request's signature.
const Header = "Sluice-Signature"

// Keys are the keys derived from a cluster secret, one per use, so that a
// request signature, a membership record, a challenge answer and a session
// token (internal/cluster, signed with the secret itself) can never stand
// for one another.
type Keys struct {
	request, member, proof []byte
}

// NewKeys derives the keys of a cluster secret. An empty secret gives
// zero Keys (Valid reports false).
func NewKeys(secret []byte) Keys {
	if len(secret) == 0 {
		return Keys{}
	}
	return Keys{
		request: derive(secret, "sluice/request/v1"),
		member:  derive(secret, "sluice/member/v1"),
		proof:   derive(secret, "sluice/proof/v1"),
	}
}

// Valid reports whether k was derived from a secret.
func (k Keys) Valid() bool { return len(k.request) > 0 }

func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{'\n'})
		}
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// Errors of Verify and of the membership checks; the reason label of the
// metrics is the text after "clusterauth: ".
var (
	ErrUnsigned     = errors.New("clusterauth: unsigned")
	ErrMalformed    = errors.New("clusterauth: malformed")
	ErrSkew         = errors.New("clusterauth: skew")
	ErrWrongTarget  = errors.New("clusterauth: wrong_target")
	ErrBadSignature = errors.New("clusterauth: bad_signature")
	ErrReplay       = errors.New("clusterauth: replay")
	ErrBody         = errors.New("clusterauth: body_digest")
	ErrNonceCache   = errors.New("clusterauth: nonce_cache_full")
	ErrNoKey        = errors.New("clusterauth: no_key")
)

// Reason is the short reason of an error of this package (the metric
// label): "unsigned", "bad_signature", ... ("other" for other errors).
func Reason(err error) string {
	for _, e := range []error{ErrUnsigned, ErrMalformed, ErrSkew, ErrWrongTarget, ErrBadSignature,
		ErrReplay, ErrBody, ErrNonceCache, ErrNoKey} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "clusterauth: ")
		}
	}
	return "other"
}

// NormalizeHost returns host:port in lower case, with the scheme's default
// port added when host has none: the form targets are signed and compared
// in.
func NormalizeHost(host string, tls bool) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if tls {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// hexNonce reports whether s is 32 lower-case hex digits.
func hexNonce(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
