package clusterauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// canonical is the signed string of a request.
func canonical(method, target, path, query, digest string, t int64, nonce string) []string {
	return []string{"sluice-request-v1", method, target, path, query, digest, strconv.FormatInt(t, 10), nonce}
}

// Sign adds a signature header to req (the keys of the cluster, the
// current time now) for the host in req.URL (or req.Host when set). The
// body is read to compute its digest: through req.GetBody when set (the
// body itself is left unread), else read into memory and put back.
func (k Keys) Sign(req *http.Request, now time.Time) error {
	if !k.Valid() {
		return ErrNoKey
	}
	digest, err := bodyDigest(req)
	if err != nil {
		return fmt.Errorf("sign %s %s: %w", req.Method, req.URL, err)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	target := NormalizeHost(host, req.URL.Scheme == "https")
	var nb [16]byte
	rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	t := now.Unix()
	sig := mac(k.request, canonical(req.Method, target, req.URL.EscapedPath(), req.URL.RawQuery, digest, t, nonce)...)
	req.Header.Set(Header, "v1;t="+strconv.FormatInt(t, 10)+";n="+nonce+";h="+target+";d="+digest+";s="+b64.EncodeToString(sig))
	return nil
}

var emptyDigest = func() string { s := sha256.Sum256(nil); return b64.EncodeToString(s[:]) }()

func bodyDigest(req *http.Request) (string, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return emptyDigest, nil
	}
	h := sha256.New()
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return "", err
		}
		defer rc.Close()
		if _, err := io.Copy(h, rc); err != nil {
			return "", err
		}
		return sum(h), nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return "", err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	h.Write(b)
	return sum(h), nil
}

func sum(h hash.Hash) string { return b64.EncodeToString(h.Sum(nil)) }

// Transport is an http.RoundTripper that signs every request with Keys
// before Base sends it. Use it for every client of internal APIs.
type Transport struct {
	Keys Keys
	Base http.RoundTripper // http.DefaultTransport when nil
	Now  func() time.Time  // time.Now when nil
}

// NewTransport returns a signing transport over base (may be nil).
func NewTransport(k Keys, base http.RoundTripper) *Transport {
	return &Transport{Keys: k, Base: base}
}

// RoundTrip implements http.RoundTripper: it signs a copy of req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	r := req.Clone(req.Context())
	if err := t.Keys.Sign(r, now()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// signature is a parsed signature header.
type signature struct {
	t      int64
	nonce  string
	target string
	digest string
	sig    []byte
}

func parseSignature(v string) (signature, error) {
	var s signature
	rest, ok := strings.CutPrefix(v, "v1;")
	if !ok {
		return s, fmt.Errorf("%w: want v1;t=…;n=…;h=…;d=…;s=…", ErrMalformed)
	}
	seen := 0
	for _, f := range strings.Split(rest, ";") {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return s, fmt.Errorf("%w: field %q", ErrMalformed, f)
		}
		var err error
		switch k {
		case "t":
			s.t, err = strconv.ParseInt(val, 10, 64)
		case "n":
			if !hexNonce(val) {
				err = fmt.Errorf("nonce")
			}
			s.nonce = val
		case "h":
			s.target = val
		case "d":
			if b, e := b64.DecodeString(val); e != nil || len(b) != sha256.Size {
				err = fmt.Errorf("digest")
			}
			s.digest = val
		case "s":
			s.sig, err = b64.DecodeString(val)
		default:
			err = fmt.Errorf("unknown field")
		}
		if err != nil {
			return s, fmt.Errorf("%w: field %s: %v", ErrMalformed, k, err)
		}
		seen++
	}
	if seen != 5 || s.nonce == "" || s.target == "" || s.digest == "" || len(s.sig) == 0 {
		return s, fmt.Errorf("%w: want the fields t, n, h, d and s once each", ErrMalformed)
	}
	return s, nil
}

func (k Keys) checkMAC(method, path, query string, s signature) bool {
	want := mac(k.request, canonical(method, s.target, path, query, s.digest, s.t, s.nonce)...)
	return hmac.Equal(want, s.sig)
}
