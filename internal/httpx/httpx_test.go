package httpx

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readFromRecorder is a ResponseWriter whose ReadFrom records that it was
// used (as net/http's does for sendfile).
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom bool
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFrom = true
	return io.Copy(r.ResponseRecorder, src)
}

func TestCountingWriter(t *testing.T) {
	for _, c := range []struct {
		name       string
		write      func(w http.ResponseWriter)
		wantStatus int
		wantBytes  int64
		wantRF     bool
	}{
		{"default 200", func(w http.ResponseWriter) { w.Write([]byte("hello")) }, 200, 5, false},
		{"first status wins", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusPartialContent)
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("ab"))
		}, 206, 2, false},
		{"read from forwarded", func(w http.ResponseWriter) {
			w.(io.ReaderFrom).ReadFrom(strings.NewReader("0123456789"))
			w.Write([]byte("x"))
		}, 200, 11, true},
		{"status after body ignored", func(w http.ResponseWriter) {
			w.Write([]byte("abc"))
			w.WriteHeader(http.StatusNotFound)
		}, 200, 3, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
			cw := NewCountingWriter(rec)
			c.write(cw)
			if cw.Status != c.wantStatus || cw.Bytes != c.wantBytes || rec.readFrom != c.wantRF {
				t.Errorf("status %d bytes %d readFrom %v, want %d %d %v", cw.Status, cw.Bytes, rec.readFrom, c.wantStatus, c.wantBytes, c.wantRF)
			}
			if int64(rec.Body.Len()) != c.wantBytes {
				t.Errorf("body %d bytes, counted %d", rec.Body.Len(), cw.Bytes)
			}
			if http.NewResponseController(cw) == nil || cw.Unwrap() != rec {
				t.Error("Unwrap does not return the wrapped writer")
			}
		})
	}
}

func TestBearer(t *testing.T) {
	for _, c := range []struct {
		header      string
		tok         string
		present, ok bool
	}{
		{"", "", false, false},
		{"Bearer s3cret", "s3cret", true, true},
		{"bearer s3cret", "s3cret", true, true},
		{"BEARER  s3cret ", "s3cret", true, true},
		{"s3cret", "", true, false},
		{"Basic czNjcmV0", "", true, false},
		{"Token s3cret", "", true, false},
		{"Bearer", "", true, false},
		{"Bearer ", "", true, false},
		{"Bearer a b", "", true, false},
	} {
		h := http.Header{}
		if c.header != "" {
			h.Set("Authorization", c.header)
		}
		tok, present, ok := Bearer(h)
		if tok != c.tok || present != c.present || ok != c.ok {
			t.Errorf("%q: %q %v %v, want %q %v %v", c.header, tok, present, ok, c.tok, c.present, c.ok)
		}
	}
}
