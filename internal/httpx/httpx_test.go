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
