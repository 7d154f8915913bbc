package evhttp

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errSockClosed is what a released socket handle answers.
var errSockClosed = errors.New("evhttp: response socket released")

// sock is one response's handle on its connection's socket: a duplicate of
// the event loop's descriptor, so that the event loop may close its own
// (the client went away) while the response is still being written, without
// the response ever writing to a descriptor number the process has reused.
//
// It is reference counted: the response holds one reference, and whoever
// keeps using the socket after the response (the pacing watcher, which
// follows delivery until the last byte is acknowledged) takes another with
// Hold. The descriptor is closed when the last reference goes; Control
// fails after that, never touching a closed descriptor.
//
// Writes try the socket directly; only a write that would block wraps the
// descriptor in an *os.File, whose poller waits for room (with the write
// deadline). A response that fits the socket buffer costs no poller
// registration.
type sock struct {
	fd int

	mu     sync.Mutex
	refs   int
	closed bool
	f      *os.File        // set when a write first waits; owns fd then
	rc     syscall.RawConn // f's
	dl     time.Time       // write deadline (zero: none)
	// progress bounds each wait for room from its start (0: none).
	progress time.Duration
}

func newSock(fd int) *sock { return &sock{fd: fd, refs: 1} }

// Hold takes a reference on the socket; release gives it back (once).
func (s *sock) Hold() (release func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return func() {}
	}
	s.refs++
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(s.release) }
}

// release drops a reference and closes the descriptor with the last one.
func (s *sock) release() {
	s.mu.Lock()
	s.refs--
	if s.refs > 0 || s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	f := s.f
	s.mu.Unlock()
	if f != nil {
		f.Close()
	} else {
		unix.Close(s.fd)
	}
}

// Control implements syscall.RawConn: f runs with the descriptor, unless
// every reference is gone.
func (s *sock) Control(f func(fd uintptr)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSockClosed
	}
	f(uintptr(s.fd))
	return nil
}

// Read implements syscall.RawConn; a response socket is written only.
func (s *sock) Read(func(fd uintptr) bool) error { return errors.ErrUnsupported }

// Write implements syscall.RawConn: f runs until it reports done, waiting
// for room in between (see write).
func (s *sock) Write(f func(fd uintptr) bool) error {
	return s.write(func(fd int) (int, bool, error) { return 0, f(uintptr(fd)), nil })
}

// setProgressTimeout bounds every later wait for room by d from its start.
func (s *sock) setProgressTimeout(d time.Duration) {
	s.mu.Lock()
	s.progress = d
	s.mu.Unlock()
}

// setWriteDeadline bounds every later wait for room (zero: none).
func (s *sock) setWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.dl = t
	f := s.f
	s.mu.Unlock()
	if f != nil {
		return f.SetWriteDeadline(t)
	}
	return nil
}

// write runs op until it reports done or fails. op returns what it wrote
// and done=false when the socket has no room (EAGAIN): write then waits
// for room through the runtime's poller (registering the descriptor on
// the first wait) and calls op again. A wait fails with
// os.ErrDeadlineExceeded past the write deadline, or, with a progress
// timeout, when no byte went out for that long (the bound is renewed
// whenever op wrote something).
func (s *sock) write(op func(fd int) (n int, done bool, err error)) error {
	_, done, err := op(s.fd)
	if done || err != nil {
		return err
	}
	rc, err := s.poller()
	if err != nil {
		return err
	}
	acked := s.acked()
	for {
		byProgress, err := s.arm()
		if err != nil {
			return err
		}
		var opErr error
		var d bool
		err = rc.Write(func(fd uintptr) bool {
			var n int
			n, d, opErr = op(int(fd))
			// Progress returns, so that the bound is renewed.
			return d || opErr != nil || n > 0
		})
		switch {
		case opErr != nil:
			return opErr
		case err != nil:
			// The kernel reports room only once a good part of a large
			// send buffer is free; a client that keeps acknowledging
			// bytes is reading, however slowly.
			if a := s.acked(); byProgress && os.IsTimeout(err) && a > acked {
				acked = a
				continue
			}
			return err
		case d:
			return nil
		}
	}
}

// arm sets the file's deadline for the next wait: the write deadline, or
// now + the progress timeout if that is earlier (byProgress).
func (s *sock) arm() (byProgress bool, err error) {
	s.mu.Lock()
	dl, f := s.dl, s.f
	if s.progress > 0 {
		if p := time.Now().Add(s.progress); dl.IsZero() || p.Before(dl) {
			dl, byProgress = p, true
		}
	}
	s.mu.Unlock()
	if f == nil || dl.IsZero() {
		return byProgress, nil
	}
	return byProgress, f.SetWriteDeadline(dl)
}

// acked is the bytes the client has acknowledged on the connection
// (tcpi_bytes_acked; 0 when unknown).
func (s *sock) acked() uint64 {
	var a uint64
	s.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			a = ti.Bytes_acked
		}
	})
	return a
}

// poller wraps the descriptor in an *os.File (once) for waits.
func (s *sock) poller() (syscall.RawConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSockClosed
	}
	if s.rc != nil {
		return s.rc, nil
	}
	// The descriptor is non-blocking (the event loop's, duplicated), so
	// the file is pollable.
	f := os.NewFile(uintptr(s.fd), "evhttp-response")
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	if !s.dl.IsZero() {
		if err := f.SetWriteDeadline(s.dl); err != nil {
			return nil, err
		}
	}
	s.f, s.rc = f, rc
	return rc, nil
}

// eagain reports whether err means "no room now".
func eagain(err error) bool { return err == unix.EAGAIN || err == unix.EWOULDBLOCK }
