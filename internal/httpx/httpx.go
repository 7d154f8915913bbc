// Package httpx holds small HTTP helpers shared by the roles that serve
// media (server, sender, pacing).
package httpx

import (
	"io"
	"net/http"
)

// CountingWriter records the status and the body bytes of a response. It
// forwards ReadFrom, so that file bodies still go out with sendfile, and
// Unwrap, so that http.ResponseController reaches flushes and deadlines.
// Status is http.StatusOK until WriteHeader says otherwise.
type CountingWriter struct {
	http.ResponseWriter
	Status int   // the first status written (200 when none was)
	Bytes  int64 // body bytes written
	wrote  bool
}

// NewCountingWriter wraps w.
func NewCountingWriter(w http.ResponseWriter) *CountingWriter {
	return &CountingWriter{ResponseWriter: w, Status: http.StatusOK}
}

// WriteHeader records the first status and forwards it.
func (w *CountingWriter) WriteHeader(code int) {
	if !w.wrote {
		w.Status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts and forwards body bytes.
func (w *CountingWriter) Write(p []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(p)
	w.Bytes += int64(n)
	return n, err
}

// ReadFrom forwards to the wrapped writer's ReadFrom (sendfile for files)
// and counts what it sent.
func (w *CountingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.Bytes += n
	return n, err
}

// Unwrap returns the wrapped writer (for http.ResponseController).
func (w *CountingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
