package evhttp

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// bodyBuf is how much of a body is held back so that a small response goes
// out in one write with a Content-Length; a longer body whose length the
// handler did not declare is sent chunked.
const bodyBuf = 4 << 10

// sendfileMax bounds one sendfile call (as nginx's sendfile_max_chunk).
const sendfileMax = 2 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, bodyBuf); return &b }}

// response is the http.ResponseWriter of one request. It also implements
// io.ReaderFrom (a file body goes out with sendfile, the header in front of
// it with MSG_MORE so that both leave in full segments, as nginx's
// tcp_nopush does), http.Flusher, and the FlushError and SetWriteDeadline
// methods http.ResponseController looks for. Read deadlines, hijacking and
// full duplex are not supported: requests with bodies never reach it.
type response struct {
	srv  *Server
	req  *http.Request
	sock *sock

	hdr         http.Header
	status      int
	wroteHeader bool
	sentHeader  bool
	head        bool  // a HEAD request: the body is not sent
	http10      bool  // an HTTP/1.0 request
	cl          int64 // declared Content-Length, -1 when unknown
	n           int64 // body bytes taken from the handler
	chunked     bool
	closeAfter  bool  // the connection ends after this response
	err         error // the first write error: later writes fail with it

	body  *[]byte // held-back body (pooled)
	hbuf  *[]byte // the serialized header (pooled)
	iov   [4][]byte
	chunk [20]byte
}

func newResponse(srv *Server, req *http.Request, sk *sock, closeAfter bool) *response {
	return &response{
		srv: srv, req: req, sock: sk, hdr: make(http.Header, 8), cl: -1,
		head: req.Method == http.MethodHead, http10: req.ProtoMinor == 0, closeAfter: closeAfter,
		body: bufPool.Get().(*[]byte),
	}
}

// Header implements http.ResponseWriter.
func (r *response) Header() http.Header { return r.hdr }

// WriteHeader implements http.ResponseWriter. Informational statuses (1xx)
// are not sent; a second call is logged and ignored, as net/http does.
func (r *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if r.wroteHeader {
		r.srv.log().Warn("evhttp: superfluous WriteHeader", "path", r.req.URL.Path, "status", code)
		return
	}
	if code < 200 {
		return
	}
	r.wroteHeader, r.status = true, code
	if v := r.hdr["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			r.cl = n
		} else {
			delete(r.hdr, "Content-Length")
		}
	}
	if v := r.hdr["Connection"]; len(v) > 0 && hasToken(v[0], "close") {
		r.closeAfter = true
	}
}

// bodyAllowed reports whether the status may carry a body.
func (r *response) bodyAllowed() bool {
	return r.status != http.StatusNoContent && r.status != http.StatusNotModified
}

// Write implements http.ResponseWriter.
func (r *response) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !r.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.cl >= 0 && r.n+int64(len(p)) > r.cl {
		return 0, http.ErrContentLength
	}
	r.n += int64(len(p))
	if r.head {
		return len(p), nil
	}
	if b := *r.body; !r.sentHeader && len(b)+len(p) <= cap(b) {
		*r.body = append(b, p...)
		return len(p), nil
	}
	if err := r.flush(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// fail records a write error: the response is cut and its connection ends.
func (r *response) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	r.closeAfter = true
	return r.err
}

// flush sends the header (when not yet sent), the held-back body and p;
// more holds the last segment back for what follows (MSG_MORE).
func (r *response) flush(p []byte, more bool) error {
	if r.err != nil {
		return r.err
	}
	iov := r.iov[:0]
	if !r.sentHeader {
		if r.cl < 0 && r.bodyAllowed() && !r.head {
			if r.http10 {
				r.closeAfter = true // the body ends with the connection
			} else {
				r.chunked = true
			}
		}
		iov = append(iov, r.header())
		r.sentHeader = true
	}
	body := *r.body
	*r.body = body[:0]
	size := len(body) + len(p)
	if r.chunked && size > 0 {
		c := strconv.AppendInt(r.chunk[:0], int64(size), 16)
		iov = append(iov, append(c, '\r', '\n'))
	}
	iov = append(iov, body, p)
	if r.chunked && size > 0 {
		iov = append(iov, crlf)
	}
	if err := r.writev(iov, more); err != nil {
		return r.fail(err)
	}
	return nil
}

var (
	crlf       = []byte("\r\n")
	lastChunk  = []byte("0\r\n\r\n")
	errNoRoom  = fmt.Errorf("evhttp: write deadline exceeded: %w", os.ErrDeadlineExceeded)
	statusLine = func() (t [600][]byte) {
		for c := 100; c < 600; c++ {
			if txt := http.StatusText(c); txt != "" {
				t[c] = []byte("HTTP/1.1 " + strconv.Itoa(c) + " " + txt + "\r\n")
			}
		}
		return t
	}()
)

// writev writes every byte of bufs, waiting for room as needed.
func (r *response) writev(bufs [][]byte, more bool) error {
	flags := 0
	if more {
		flags = unix.MSG_MORE
	}
	bufs = slices.DeleteFunc(bufs, func(b []byte) bool { return len(b) == 0 })
	if len(bufs) == 0 {
		return nil
	}
	err := r.sock.write(func(fd int) (int, bool, error) {
		for {
			n, err := unix.SendmsgBuffers(fd, bufs, nil, nil, flags|unix.MSG_NOSIGNAL)
			if err == unix.EINTR {
				continue
			}
			if err != nil && !eagain(err) {
				return 0, true, err
			}
			n = max(n, 0)
			for left := n; left > 0; {
				if left >= len(bufs[0]) {
					left -= len(bufs[0])
					bufs = bufs[1:]
				} else {
					bufs[0] = bufs[0][left:]
					left = 0
				}
			}
			return n, len(bufs) == 0, nil
		}
	})
	if os.IsTimeout(err) {
		return errNoRoom
	}
	return err
}

// header serializes the response header (status line and fields, sorted
// by name, with Date, Content-Length, Transfer-Encoding and Connection as
// the response needs them).
func (r *response) header() []byte {
	r.hbuf = bufPool.Get().(*[]byte)
	b := (*r.hbuf)[:0]
	if r.status < len(statusLine) && statusLine[r.status] != nil {
		b = append(b, statusLine[r.status]...)
	} else {
		b = append(b, "HTTP/1.1 "...)
		b = strconv.AppendInt(b, int64(r.status), 10)
		b = append(b, " status code\r\n"...)
	}
	if _, ok := r.hdr["Content-Type"]; !ok && r.bodyAllowed() && len(*r.body) > 0 {
		r.hdr["Content-Type"] = []string{http.DetectContentType(*r.body)}
	}
	var keysArr [24]string
	keys := keysArr[:0]
	for k := range r.hdr {
		switch k {
		case "Content-Length", "Transfer-Encoding":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !validKey(k) {
			continue
		}
		for _, v := range r.hdr[k] {
			b = append(b, k...)
			b = append(b, ':', ' ')
			b = appendValue(b, v)
			b = append(b, '\r', '\n')
		}
	}
	if _, ok := r.hdr["Date"]; !ok {
		b = append(b, "Date: "...)
		b = append(b, r.srv.date()...)
		b = append(b, '\r', '\n')
	}
	if r.cl >= 0 && r.bodyAllowed() {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.cl, 10)
		b = append(b, '\r', '\n')
	}
	if r.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if r.closeAfter {
		if v := r.hdr["Connection"]; len(v) == 0 || !hasToken(v[0], "close") {
			b = append(b, "Connection: close\r\n"...)
		}
	}
	b = append(b, '\r', '\n')
	*r.hbuf = b
	return b
}

func validKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if !tokenChars[k[i]] {
			return false
		}
	}
	return k != ""
}

// appendValue appends a field value with CR and LF replaced by spaces (no
// header injection through a value).
func appendValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\r\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// ReadFrom implements io.ReaderFrom: a file (or an io.LimitedReader of
// one, as http.ServeContent passes) goes out with sendfile when the
// response's length is declared; anything else is copied through Write.
func (r *response) ReadFrom(src io.Reader) (int64, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	lr, _ := src.(*io.LimitedReader)
	var f *os.File
	limit := int64(-1)
	if lr != nil {
		f, _ = lr.R.(*os.File)
		limit = lr.N
	} else {
		f, _ = src.(*os.File)
	}
	_, typed := r.hdr["Content-Type"]
	if f == nil || r.head || !r.bodyAllowed() || r.cl < 0 || !typed || r.err != nil {
		return r.copy(src)
	}
	left := r.cl - r.n
	if limit >= 0 {
		left = min(left, limit)
	}
	if left <= 0 {
		return 0, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return r.copy(src)
	}
	infd := -1
	rc.Control(func(fd uintptr) { infd = int(fd) })
	// The header and the held-back body go first, held for the file's
	// first segment.
	if err := r.flush(nil, true); err != nil {
		return 0, err
	}
	var sent int64
	var unsupported bool
	err = r.sock.write(func(fd int) (int, bool, error) {
		for {
			// At most sendfileMax a call: the event loop may wait for
			// the call to close the connection (connFD).
			n, err := unix.Sendfile(fd, infd, nil, int(min(left, sendfileMax)))
			if n > 0 {
				sent += int64(n)
				left -= int64(n)
			}
			n = max(n, 0)
			switch {
			case err == nil && n == 0: // the file ended early: finish closes the connection
				return 0, true, nil
			case err == nil || eagain(err):
				return n, left == 0, nil
			case err == unix.EINTR:
				if n > 0 {
					return n, left == 0, nil
				}
			case (err == unix.EINVAL || err == unix.ENOSYS) && sent == 0:
				unsupported = true
				return 0, true, nil
			default:
				return n, true, err
			}
		}
	})
	r.n += sent
	if lr != nil {
		lr.N -= sent
	}
	if err != nil {
		if os.IsTimeout(err) {
			err = errNoRoom
		}
		return sent, r.fail(err)
	}
	if unsupported {
		n, err := r.copy(src)
		return sent + n, err
	}
	return sent, nil
}

// copyPool holds the buffers of copy.
var copyPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copy sends src through Write with a pooled buffer (io.Copy would
// allocate 32 KB per response).
func (r *response) copy(src io.Reader) (int64, error) {
	if wt, ok := src.(io.WriterTo); ok {
		return wt.WriteTo(writerOnly{r})
	}
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	return io.CopyBuffer(writerOnly{r}, src, *bp)
}

// writerOnly hides ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// Flush implements http.Flusher.
func (r *response) Flush() { _ = r.FlushError() }

// FlushError sends what is held back (for http.ResponseController).
func (r *response) FlushError() error {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if r.sentHeader && len(*r.body) == 0 {
		return r.err
	}
	return r.flush(nil, false)
}

// SetWriteDeadline bounds the waits for room of later writes (for
// http.ResponseController).
func (r *response) SetWriteDeadline(t time.Time) error { return r.sock.setWriteDeadline(t) }

// SetWriteProgressTimeout ends the response when the socket takes no byte
// of it for d (0: no such bound): every wait for room is bounded by d from
// its start, however long the whole response lasts. httpx.WriteProgress
// uses it instead of cutting the body into chunks with a deadline each (a
// 2 MB fragment in one sendfile loop rather than 22).
func (r *response) SetWriteProgressTimeout(d time.Duration) { r.sock.setProgressTimeout(d) }

// finish completes the response after the handler returned: a body whose
// length was not declared gets one (when it was held back whole) or the
// last chunk; a body shorter than declared ends the connection. It reports
// whether the connection may carry another request.
func (r *response) finish() bool {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	switch {
	case r.err != nil:
	case !r.sentHeader:
		if r.cl < 0 && r.bodyAllowed() && (!r.head || r.n > 0) {
			r.cl = r.n
		}
		_ = r.flush(nil, false)
	case r.chunked:
		if err := r.writev([][]byte{lastChunk}, false); err != nil {
			r.fail(err)
		}
	}
	if r.cl >= 0 && r.n < r.cl && r.bodyAllowed() && !r.head {
		r.closeAfter = true
	}
	r.release()
	return !r.closeAfter && r.err == nil
}

// release returns the buffers; the response must not be used after.
func (r *response) release() {
	*r.body = (*r.body)[:0]
	bufPool.Put(r.body)
	if r.hbuf != nil {
		*r.hbuf = (*r.hbuf)[:0]
		bufPool.Put(r.hbuf)
		r.hbuf = nil
	}
	r.body = &[]byte{} // a write after the handler returned must not reach the pool's buffer
}
