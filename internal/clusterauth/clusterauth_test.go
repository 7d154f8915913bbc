package clusterauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var (
	testKeys  = NewKeys([]byte("s3cret"))
	otherKeys = NewKeys([]byte("not-the-secret"))
	t0        = time.Unix(1_800_000_000, 0)
)

// signed returns a request to target with a signature made at t.
func signed(t testing.TB, k Keys, method, url string, body []byte, at time.Time) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := httptest.NewRequest(method, url, rd)
	if err := k.Sign(r, at); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerify(t *testing.T) {
	body := []byte(`{"sched":"a"}`)
	good := func() *http.Request {
		return signed(t, testKeys, "POST", "http://sender-1:9001/internal/v1/batch?x=1", body, t0)
	}
	tests := []struct {
		name    string
		req     func() *http.Request
		targets []string
		want    error
	}{
		{"good", good, nil, nil},
		{"good, one of the server's names", good, []string{"10.0.0.1:9001", "sender-1:9001"}, nil},
		{"good, no body", func() *http.Request {
			return signed(t, testKeys, "GET", "http://sender-1:9001/internal/v1/stats", nil, t0)
		}, nil, nil},
		{"unsigned", func() *http.Request {
			return httptest.NewRequest("POST", "http://sender-1:9001/internal/v1/batch", bytes.NewReader(body))
		}, nil, ErrUnsigned},
		{"the old secret header", func() *http.Request {
			r := httptest.NewRequest("POST", "http://sender-1:9001/internal/v1/batch", bytes.NewReader(body))
			r.Header.Set("Sluice-Cluster-Secret", "s3cret")
			return r
		}, nil, ErrUnsigned},
		{"malformed", func() *http.Request {
			r := good()
			r.Header.Set(Header, "v1;t=1;n=zz")
			return r
		}, nil, ErrMalformed},
		{"another key", func() *http.Request {
			return signed(t, otherKeys, "POST", "http://sender-1:9001/internal/v1/batch?x=1", body, t0)
		}, nil, ErrBadSignature},
		{"too old", func() *http.Request {
			return signed(t, testKeys, "POST", "http://sender-1:9001/internal/v1/batch", body, t0.Add(-31*time.Second))
		}, nil, ErrSkew},
		{"from the future", func() *http.Request {
			return signed(t, testKeys, "POST", "http://sender-1:9001/internal/v1/batch", body, t0.Add(31*time.Second))
		}, nil, ErrSkew},
		{"within the window", func() *http.Request {
			return signed(t, testKeys, "POST", "http://sender-1:9001/internal/v1/batch", body, t0.Add(-29*time.Second))
		}, nil, nil},
		{"wrong body", func() *http.Request {
			r := good()
			r.Body = io.NopCloser(strings.NewReader(`{"sched":"b"}`))
			return r
		}, nil, ErrBody},
		{"other path", func() *http.Request {
			r := good()
			r.URL.Path = "/internal/v1/delete"
			return r
		}, nil, ErrBadSignature},
		{"other query", func() *http.Request {
			r := good()
			r.URL.RawQuery = "x=2"
			return r
		}, nil, ErrBadSignature},
		{"other method", func() *http.Request {
			r := good()
			r.Method = "PUT"
			return r
		}, nil, ErrBadSignature},
		{"replayed to another member (Host rewritten)", func() *http.Request {
			r := good()
			r.Host = "sender-2:9001"
			return r
		}, nil, ErrWrongTarget},
		{"replayed to another member that knows its name", good, []string{"sender-2:9001"}, ErrWrongTarget},
		{"target in the header edited", func() *http.Request {
			r := good()
			r.Header.Set(Header, strings.Replace(r.Header.Get(Header), "h=sender-1:9001", "h=sender-2:9001", 1))
			r.Host = "sender-2:9001"
			return r
		}, nil, ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := &Verifier{Keys: testKeys, Now: func() time.Time { return t0 }}
			if tc.targets != nil {
				v.Targets = func() []string { return tc.targets }
			}
			r := tc.req()
			err := v.Verify(r)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if err == nil && r.Body != nil {
				if got, _ := io.ReadAll(r.Body); r.Method == "POST" && !bytes.Equal(got, body) {
					t.Errorf("body after Verify: %q", got)
				}
			}
		})
	}
}

func TestReplayAndNonceCache(t *testing.T) {
	now := t0
	v := &Verifier{Keys: testKeys, Now: func() time.Time { return now }, MaxNonces: 3}
	r := signed(t, testKeys, "PUT", "http://s:1/internal/v1/blocks/p/t/0", []byte("x"), now)
	hdr := r.Header.Get(Header)
	if err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	replay := func() error {
		r := httptest.NewRequest("PUT", "http://s:1/internal/v1/blocks/p/t/0", strings.NewReader("x"))
		r.Header.Set(Header, hdr)
		return v.Verify(r)
	}
	if err := replay(); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay at once: %v", err)
	}
	// Still refused as a replay after a rotation of the cache (the request
	// is within its window until 30 s after it was signed).
	now = t0.Add(29 * time.Second)
	if err := v.Verify(signed(t, testKeys, "GET", "http://s:1/a", nil, now)); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(61 * time.Second) // rotation: the first generation becomes prev
	if err := v.Verify(signed(t, testKeys, "GET", "http://s:1/b", nil, now)); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(30 * time.Second)
	if err := replay(); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after a rotation: %v", err)
	}
	// Past its window it is refused for its time.
	now = t0.Add(31 * time.Second)
	if err := replay(); !errors.Is(err, ErrSkew) {
		t.Fatalf("replay past the window: %v", err)
	}
	// The cache is bounded: 3 nonces, then 503.
	now = t0.Add(62 * time.Second)
	if err := v.Verify(signed(t, testKeys, "GET", "http://s:1/c", nil, now)); !errors.Is(err, ErrNonceCache) {
		t.Fatalf("fourth nonce with MaxNonces 3: %v", err)
	}
	// An unsigned or forged request never enters the cache.
	f := signed(t, otherKeys, "GET", "http://s:1/d", nil, now)
	if err := v.Verify(f); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
}

func TestTransportAndMiddleware(t *testing.T) {
	var got []string
	var refused []string
	v := &Verifier{Keys: testKeys, Refused: func(r string) { refused = append(refused, r) }}
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+" "+string(b))
		w.Write([]byte("ok"))
	})))
	defer srv.Close()
	c := &http.Client{Transport: NewTransport(testKeys, nil)}
	for _, body := range []string{"", "hello", strings.Repeat("x", 100_000)} {
		resp, err := c.Post(srv.URL+"/internal/v1/x?q=1", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("signed POST of %d bytes: %s", len(body), resp.Status)
		}
	}
	// A body that is not a bytes/strings reader (no GetBody) is read once
	// for the digest and sent whole.
	resp, err := c.Post(srv.URL+"/internal/v1/y", "text/plain", io.MultiReader(strings.NewReader("a"), strings.NewReader("b")))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("streamed body: %v %v", resp, err)
	}
	resp.Body.Close()
	if len(got) != 4 || got[3] != "POST /internal/v1/y ab" {
		t.Fatalf("handler saw %q", got)
	}
	resp, err = http.Get(srv.URL + "/internal/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(msg), "unsigned") || len(refused) != 1 || refused[0] != "unsigned" {
		t.Fatalf("unsigned GET: %d %q, refused %v", resp.StatusCode, msg, refused)
	}
	resp, err = (&http.Client{Transport: NewTransport(otherKeys, nil)}).Get(srv.URL + "/internal/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || refused[1] != "bad_signature" {
		t.Fatalf("GET signed with another key: %d, refused %v", resp.StatusCode, refused)
	}
}

func TestMemberRecord(t *testing.T) {
	sig := testKeys.SignMember("s1", "http://10.0.0.1:9001", t0.Unix())
	if err := testKeys.VerifyMember("s1", "http://10.0.0.1:9001", t0.Unix(), sig, t0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id, url string
		at            int64
		sig           string
		want          error
	}{
		{"unsigned", "s1", "http://10.0.0.1:9001", t0.Unix(), "", ErrUnsigned},
		{"other URL", "s1", "http://10.6.6.6:9001", t0.Unix(), sig, ErrBadSignature},
		{"other ID", "s2", "http://10.0.0.1:9001", t0.Unix(), sig, ErrBadSignature},
		{"other time", "s1", "http://10.0.0.1:9001", t0.Unix() + 1, sig, ErrBadSignature},
		{"another key", "s1", "http://10.0.0.1:9001", t0.Unix(), otherKeys.SignMember("s1", "http://10.0.0.1:9001", t0.Unix()), ErrBadSignature},
		{"garbage", "s1", "http://10.0.0.1:9001", t0.Unix(), "!!", ErrBadSignature},
		{"future", "s1", "http://10.0.0.1:9001", t0.Unix() + 3600, testKeys.SignMember("s1", "http://10.0.0.1:9001", t0.Unix()+3600), ErrSkew},
	} {
		if err := testKeys.VerifyMember(tc.id, tc.url, tc.at, tc.sig, t0); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestProve(t *testing.T) {
	member := func(k Keys, claim func(string) string) *httptest.Server {
		var srv *httptest.Server
		srv = httptest.NewServer(k.ProofHandler(func() (string, string) { return "m", claim(srv.URL) }))
		return srv
	}
	self := func(u string) string { return u }
	ctx := context.Background()

	good := member(testKeys, self)
	defer good.Close()
	if err := testKeys.Prove(ctx, nil, good.URL); err != nil {
		t.Fatalf("a member with the key: %v", err)
	}
	// The member's URL as the cluster names it may differ in case and in
	// a trailing slash.
	if err := testKeys.Prove(ctx, nil, strings.ToUpper(strings.Replace(good.URL, "http", "HTTP", 1))+"/"); err != nil {
		t.Fatalf("same URL, other spelling: %v", err)
	}
	wrong := member(otherKeys, self)
	defer wrong.Close()
	if err := testKeys.Prove(ctx, nil, wrong.URL); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a member with another key: %v", err)
	}
	// A relay: an impostor that passes the challenge on to a real member
	// and returns its answer. The real member proves its own URL, not the
	// impostor's.
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(good.URL + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	}))
	defer relay.Close()
	if err := testKeys.Prove(ctx, nil, relay.URL); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a relay to a real member: %v", err)
	}
	// A member that claims the relay's URL but holds another key.
	liar := member(otherKeys, func(string) string { return relay.URL })
	defer liar.Close()
	if err := testKeys.Prove(ctx, nil, liar.URL); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a liar: %v", err)
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"Sender-1:9001": "sender-1:9001",
		"sender-1":      "sender-1:80",
		"[::1]:9001":    "[::1]:9001",
		"[::1]":         "[::1]:80",
		"example.com.":  "example.com:80",
	} {
		if got := NormalizeHost(in, false); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
	if got := NormalizeHost("a", true); got != "a:443" {
		t.Errorf("https default port: %q", got)
	}
}
