package httpx

import (
	"io"
	"net/http"
	"time"
)

// Chunk bounds of WriteProgress.
const (
	minChunk = 4 << 10
	maxChunk = 256 << 10
	// floorRate stands for the slowest rate of a response when the caller
	// names none (bytes/s): 512 kbit/s.
	floorRate = 64 << 10
)

// WriteProgress closes the responses of next that make no progress: every
// write goes out in chunks, each with a write deadline of timeout from its
// start, so a response whose client stops reading is cut (and its
// connection closed) once the socket buffers are full and timeout has
// passed, while a long response that keeps moving — a paced fragment, a pull
// that follows a live stream, a large download — never is, however long it
// lasts. A handler that waits without writing is not judged.
//
// A chunk is what the slowest legitimate client receives in a quarter of
// timeout — minRate bytes/s (the lowest pacing rate; 0: 512 kbit/s) —
// between 4 KiB and 256 KiB, so sendfile still sends files in large
// pieces. timeout <= 0 returns next unchanged.
func WriteProgress(next http.Handler, timeout time.Duration, minRate int64) http.Handler {
	if timeout <= 0 {
		return next
	}
	chunk := ChunkSize(timeout, minRate)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pt, ok := w.(progressTimer); ok {
			// The server bounds each wait for room itself
			// (internal/evhttp): no chunks needed.
			pt.SetWriteProgressTimeout(timeout)
			next.ServeHTTP(w, r)
			return
		}
		pw := &progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout, chunk: chunk}
		pw.extend()
		// net/http flushes what is buffered after the handler returns.
		defer pw.extend()
		next.ServeHTTP(pw, r)
	})
}

// progressTimer is a ResponseWriter that can end a response whose socket
// takes nothing for a while by itself.
type progressTimer interface {
	SetWriteProgressTimeout(time.Duration)
}

// ChunkSize is the chunk of WriteProgress for timeout and minRate.
func ChunkSize(timeout time.Duration, minRate int64) int {
	if minRate <= 0 {
		minRate = floorRate
	}
	return int(min(max(int64(float64(minRate)*timeout.Seconds()/4), minChunk), maxChunk))
}

// progressWriter is the ResponseWriter of WriteProgress.
type progressWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	chunk   int
}

// extend gives the next write timeout from now.
func (p *progressWriter) extend() {
	// An error means the connection cannot take deadlines (a test
	// recorder): nothing to bound.
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.timeout))
}

// Write sends b in chunks, each with a fresh deadline.
func (p *progressWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), p.chunk)
		p.extend()
		m, err := p.ResponseWriter.Write(b[:c])
		n += m
		if err != nil {
			return n, err
		}
		b = b[c:]
	}
	return n, nil
}

// ReadFrom sends r in chunks, each with a fresh deadline, through the
// wrapped writer's ReadFrom: a file (or an io.LimitedReader of one, as
// http.ServeContent passes) still goes out with sendfile.
func (p *progressWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := p.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{p}, r)
	}
	src, limit := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, limit = lr.R, lr.N
		defer func() { lr.N = limit }()
	}
	var total int64
	for limit != 0 {
		c := int64(p.chunk)
		if limit >= 0 {
			c = min(c, limit)
		}
		p.extend()
		n, err := rf.ReadFrom(&io.LimitedReader{R: src, N: c})
		total += n
		if limit >= 0 {
			limit -= n
		}
		if err != nil || n < c {
			return total, err // n < c: the source ended
		}
	}
	return total, nil
}

// FlushError flushes with a fresh deadline.
func (p *progressWriter) FlushError() error {
	p.extend()
	return p.rc.Flush()
}

// Flush implements http.Flusher.
func (p *progressWriter) Flush() { _ = p.FlushError() }

// Unwrap returns the wrapped writer (for http.ResponseController).
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }
