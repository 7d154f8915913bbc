package httpx

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClientMethods: every client route answers one preflight (the
// request headers players send, cached a day), GET and HEAD, and 405
// otherwise, with the CORS headers on each.
func TestClientMethods(t *testing.T) {
	// method -> status; the handler goes on for 200 only.
	statuses := map[string]int{
		http.MethodGet: 200, http.MethodHead: 200, http.MethodOptions: 204, http.MethodPost: 405, http.MethodDelete: 405,
	}
	for method, code := range statuses {
		tc := struct {
			method string
			goOn   bool
			code   int
		}{method, code == 200, code}
		rec := httptest.NewRecorder()
		got := ClientMethods(rec, httptest.NewRequest(tc.method, "/x", nil))
		h := rec.Header()
		if got != tc.goOn || rec.Code != tc.code || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Expose-Headers") != CORSExposeHeaders {
			t.Errorf("%s: goes on %v, %d, headers %v", tc.method, got, rec.Code, h)
		}
		if tc.method == http.MethodOptions {
			for _, want := range []string{"Range", "CMCD-Request", "CMCD-Session", "Sluice-Pacing", "If-None-Match"} {
				if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
					t.Errorf("preflight does not allow %s: %q", want, h.Get("Access-Control-Allow-Headers"))
				}
			}
			if h.Get("Access-Control-Max-Age") != "86400" || h.Get("Access-Control-Allow-Methods") != "GET, HEAD, OPTIONS" {
				t.Errorf("preflight headers %v", h)
			}
		}
		if tc.code == 405 && h.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("%s: Allow %q", tc.method, h.Get("Allow"))
		}
	}
}

func TestHealth(t *testing.T) {
	rec := httptest.NewRecorder()
	Healthz(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("healthz %d %q", rec.Code, rec.Body.String())
	}
	var reason error
	h := Readyz(func() error { return reason })
	rec = httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 || rec.Body.String() != "ready\n" {
		t.Errorf("readyz %d %q", rec.Code, rec.Body.String())
	}
	reason = http.ErrServerClosed
	rec = httptest.NewRecorder()
	h(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "not ready: "+http.ErrServerClosed.Error()) {
		t.Errorf("readyz %d %q", rec.Code, rec.Body.String())
	}
}
