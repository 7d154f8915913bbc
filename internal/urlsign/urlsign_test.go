package urlsign

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var (
	key = Key("0123456789abcdef-key")
	now = time.Unix(1_800_000_000, 0)
)

func TestVerify(t *testing.T) {
	good := key.Token("/live.isml/", now.Add(time.Hour))
	for _, c := range []struct {
		name, token, path string
		want              error
	}{
		{"good", good, "/live.isml/manifest.mpd", nil},
		{"good, segment", good, "/live.isml/dash/video_1/123.m4s", nil},
		{"missing", "", "/live.isml/manifest.mpd", ErrMissing},
		{"malformed", "abc", "/live.isml/manifest.mpd", ErrMalformed},
		{"expired", key.Token("/live.isml/", now.Add(-time.Second)), "/live.isml/manifest.mpd", ErrExpired},
		{"other point", good, "/other.isml/manifest.mpd", ErrPrefix},
		{"a prefix of the name only", key.Token("/live", now.Add(time.Hour)), "/live2.isml/manifest.mpd", nil},
		{"dot-dot out of the prefix", good, "/live.isml/../other.isml/manifest.mpd", ErrPrefix},
		{"another key", Key("another key, 16+ bytes").Token("/live.isml/", now.Add(time.Hour)), "/live.isml/manifest.mpd", ErrSignature},
		{"prefix swapped", strings.Replace(good, good[strings.Index(good, ".")+1:strings.LastIndex(good, ".")], b64.EncodeToString([]byte("/")), 1), "/live.isml/manifest.mpd", ErrSignature},
		{"expiry moved", "1900000000" + good[strings.Index(good, "."):], "/live.isml/manifest.mpd", ErrSignature},
	} {
		_, _, err := key.Verify(c.token, c.path, now)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestGuard(t *testing.T) {
	var seen []string
	var refused []string
	g := &Guard{Key: key, Now: func() time.Time { return now }, Refused: func(r string) { refused = append(refused, r) },
		Scope: func(r *http.Request) bool { return !strings.HasSuffix(r.URL.Path, "/view.json") }}
	h := g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RequestURI())
	}))
	do := func(target string, cookie *http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	signed, err := key.SignURL("http://h/live.isml/manifest.mpd?x=1", "/live.isml/", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	w := do(strings.TrimPrefix(signed, "http://h"), nil)
	if w.Code != 200 {
		t.Fatalf("signed manifest: %d %s", w.Code, w.Body.String())
	}
	if seen[0] != "/live.isml/manifest.mpd?x=1" {
		t.Errorf("the handler saw %q: the token must be stripped", seen[0])
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != Cookie || cookies[0].Path != "/live.isml/" || !cookies[0].HttpOnly || cookies[0].MaxAge < 60 {
		t.Fatalf("cookie %+v", cookies)
	}
	// The player's segment requests carry the cookie only.
	if w := do("/live.isml/dash/v/1.m4s", cookies[0]); w.Code != 200 {
		t.Errorf("segment with the cookie: %d", w.Code)
	}
	for _, c := range []struct {
		name, target string
		cookie       *http.Cookie
		reason       string
	}{
		{"unsigned", "/live.isml/manifest.mpd", nil, "missing"},
		{"cookie on another point", "/other.isml/manifest.mpd", cookies[0], "wrong_prefix"},
		{"expired", "/live.isml/manifest.mpd?st=" + key.Token("/live.isml/", now.Add(-time.Minute)), nil, "expired"},
		{"forged", "/live.isml/manifest.mpd?st=" + Key("not the key at all!").Token("/", now.Add(time.Hour)), nil, "bad_signature"},
	} {
		w := do(c.target, c.cookie)
		if w.Code != 403 || !strings.Contains(w.Body.String(), c.reason) || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %q", c.name, w.Code, w.Body.String())
		}
	}
	if len(refused) != 4 {
		t.Errorf("refusals counted: %v", refused)
	}
	// Out of scope: served without a token.
	if w := do("/live.isml/view.json", nil); w.Code != 200 {
		t.Errorf("out of scope: %d", w.Code)
	}
}
