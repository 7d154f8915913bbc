package evhttp

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errSockClosed is what a released socket handle answers, and a socket
// whose connection the event loop closed when no descriptor could be kept
// for it.
var errSockClosed = errors.New("evhttp: response socket released")

// connFD is a connection's socket as the request goroutines reach it: by
// the event loop's own descriptor number, without a descriptor of their
// own, as long as the event loop has not closed it.
//
// The invariant: a request goroutine makes a system call on the loop's
// descriptor number only while it holds use for reading and gone is false.
// The event loop sets gone, holding use for writing, in OnClose, which gnet
// calls on the loop goroutine before it closes the descriptor on every path
// that closes it: a read that returns EOF or an error, a write error of its
// own buffer, a Close action (refused requests, hand-off), Conn.Close (the
// request goroutine's after a response that ends the connection) and
// EventLoop.Close (the reaper), and the engine's stop. So the loop's close,
// and with it the kernel's reuse of the number, waits for a system call
// that is in progress, and none starts on the number after it; a stale
// number is never written to, nor its options set.
//
// Such a system call never blocks (the loop's descriptor is non-blocking):
// the loop waits at most for one non-blocking send (the bytes that fit the
// socket buffer) or socket option call. A response waits for room on a
// duplicate of its own (sock.poller), not on this number.
//
// The sockets in use when the loop closes (a response still running, a
// socket held after its response: users) go on with one duplicate the loop
// takes in OnClose, before gnet closes its own (rescue); it is closed with
// the last of them. A client that closes while its request waits therefore
// costs one descriptor until the handler returns, and a client that stays
// costs none.
type connFD struct {
	srv *Server

	use  sync.RWMutex
	fd   int  // the event loop's descriptor (set by OnOpen)
	gone bool // the loop closes fd (written under use for writing)

	mu     sync.Mutex
	users  int // sockets of this connection not yet released
	rescue int // the duplicate for them once gone (-1: none)
}

func (c *connFD) init(srv *Server, fd int) { c.srv, c.fd, c.rescue = srv, fd, -1 }

// join counts a new socket of the connection (event loop, at dispatch).
func (c *connFD) join() {
	c.mu.Lock()
	c.users++
	c.mu.Unlock()
}

// leave uncounts a released socket; the last one closes the rescue.
func (c *connFD) leave() {
	c.mu.Lock()
	c.users--
	fd := -1
	if c.users == 0 {
		fd, c.rescue = c.rescue, -1
	}
	c.mu.Unlock()
	if fd >= 0 {
		unix.Close(fd)
	}
}

// close marks the loop's descriptor gone (event loop, OnClose, before
// gnet closes it): it waits for the system calls in progress on it and
// duplicates it for the sockets still in use.
func (c *connFD) close() {
	c.use.Lock()
	c.mu.Lock()
	if !c.gone {
		c.gone = true
		if c.users > 0 {
			fd, err := c.srv.dupFD(c.fd)
			if err != nil {
				c.srv.noDescriptor(err, "the connection closed while its response is in progress: the response ends")
				fd = -1
			}
			c.rescue = fd
		}
	}
	c.mu.Unlock()
	c.use.Unlock()
}

// do runs fn with the loop's descriptor while it is open, else with the
// rescue (the caller is one of the users, so it stays open).
func (c *connFD) do(fn func(fd int)) error {
	if c.onLoopFD(fn) {
		return nil
	}
	c.mu.Lock()
	fd := c.rescue
	c.mu.Unlock()
	if fd < 0 {
		return errSockClosed
	}
	fn(fd)
	return nil
}

func (c *connFD) onLoopFD(fn func(fd int)) bool {
	c.use.RLock()
	defer c.use.RUnlock()
	if c.gone {
		return false
	}
	fn(c.fd)
	return true
}

// sock is one response's handle on its connection's socket. It holds no
// descriptor of its own until a write has to wait for room: it reaches the
// socket through the connection's connFD (the loop's descriptor, or the
// rescue once the loop closed it). A write that finds the socket buffer
// full duplicates the descriptor once and wraps it in an *os.File, whose
// poller waits for room (with the write deadline); the response uses that
// descriptor from then on. When no descriptor can be had, the write
// retries after short pauses instead, within the same deadlines.
//
// It is reference counted: the response holds one reference, and whoever
// keeps using the socket after the response (the pacing watcher, which
// follows delivery until the last byte is acknowledged) takes another with
// Hold. With the last reference the own descriptor (if any) is closed and
// the connection's count of users drops; Control fails after that, never
// touching a descriptor.
type sock struct {
	c   *connFD
	own atomic.Int64 // the descriptor of f once set (-1: none)

	mu     sync.Mutex
	refs   int
	closed bool
	f      *os.File        // set when a write first waits; owns own
	rc     syscall.RawConn // f's
	dl     time.Time       // write deadline (zero: none)
	// progress bounds each wait for room from its start (0: none).
	progress time.Duration
}

// newSock is the socket of a response on c (event loop, at dispatch).
func newSock(c *connFD) *sock {
	c.join()
	s := &sock{c: c, refs: 1}
	s.own.Store(-1)
	return s
}

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

// release drops a reference; the last one gives the socket up.
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
	}
	s.c.leave()
}

// do runs fn with a descriptor of the socket: the response's own once it
// has one, else the connection's (connFD.do). The caller holds a
// reference.
func (s *sock) do(fn func(fd int)) error {
	if fd := s.own.Load(); fd >= 0 {
		fn(int(fd))
		return nil
	}
	return s.c.do(fn)
}

// Control implements syscall.RawConn: f runs with a descriptor of the
// socket, unless every reference is gone or the connection closed with no
// descriptor left for it. f must not block (it may run while the event
// loop waits to close the connection).
func (s *sock) Control(f func(fd uintptr)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errSockClosed
	}
	return s.do(func(fd int) { f(uintptr(fd)) })
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

// write runs op until it reports done or fails. op makes one system call
// (on the connection's descriptor it runs while the event loop cannot
// close it: see connFD) and returns what it wrote, done when nothing is
// left, and n == 0 with done=false when the socket has no room (EAGAIN):
// write then waits for room through the runtime's poller (on the
// response's own descriptor, taken on the first wait) and calls op again.
// A wait fails with os.ErrDeadlineExceeded past the write deadline, or,
// with a progress timeout, when no byte went out for that long (the bound
// is renewed whenever op wrote something).
func (s *sock) write(op func(fd int) (n int, done bool, err error)) error {
	for {
		var (
			n     int
			done  bool
			opErr error
		)
		if err := s.do(func(fd int) { n, done, opErr = op(fd) }); err != nil {
			return err
		}
		if done || opErr != nil {
			return opErr
		}
		if n == 0 {
			return s.wait(op) // no room
		}
	}
}

// wait is write once the socket has no room.
func (s *sock) wait(op func(fd int) (n int, done bool, err error)) error {
	var (
		n     int
		done  bool
		opErr error
	)
	run := func(fd int) { n, done, opErr = op(fd) }
	progressed := func() bool { return done || opErr != nil || n > 0 }
	acked := s.acked()
	for {
		rc, perr := s.poller()
		if errors.Is(perr, errSockClosed) {
			return perr
		}
		byProgress, dl, err := s.arm()
		if err != nil {
			return err
		}
		n = 0
		if rc != nil {
			// Progress returns, so that the bound is renewed.
			err = rc.Write(func(fd uintptr) bool { run(int(fd)); return progressed() })
		} else {
			s.c.srv.noDescriptor(perr, "a response waits for room without one (retrying)")
			err = s.retry(run, progressed, dl)
		}
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
		case done:
			return nil
		}
	}
}

// retry waits for room without a descriptor to wait on (none could be
// had): it runs op again after short pauses until progressed or dl passes
// (os.ErrDeadlineExceeded).
func (s *sock) retry(run func(fd int), progressed func() bool, dl time.Time) error {
	pause := time.Millisecond
	for {
		if !dl.IsZero() {
			left := time.Until(dl)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			pause = min(pause, left)
		}
		time.Sleep(pause)
		if err := s.do(run); err != nil || progressed() {
			return err
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// arm computes the bound of the next wait: the write deadline, or now +
// the progress timeout if that is earlier (byProgress); it sets it on the
// response's file, if any.
func (s *sock) arm() (byProgress bool, dl time.Time, err error) {
	s.mu.Lock()
	dl, f := s.dl, s.f
	if s.progress > 0 {
		if p := time.Now().Add(s.progress); dl.IsZero() || p.Before(dl) {
			dl, byProgress = p, true
		}
	}
	s.mu.Unlock()
	if f == nil {
		return byProgress, dl, nil
	}
	return byProgress, dl, f.SetWriteDeadline(dl)
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

// poller gives the response a descriptor of its own, wrapped in an
// *os.File for waits (once): a duplicate of the connection's, taken while
// the loop cannot close it (connFD.do). It fails with errSockClosed when
// the socket is gone, with another error when no descriptor can be had.
func (s *sock) poller() (syscall.RawConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errSockClosed
	}
	if s.rc != nil {
		return s.rc, nil
	}
	nfd, derr := -1, error(nil)
	if err := s.c.do(func(fd int) { nfd, derr = s.c.srv.dupFD(fd) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("evhttp: duplicate a response's socket: %w", derr)
	}
	// The descriptor is non-blocking (the event loop's, duplicated), so
	// the file is pollable.
	f := os.NewFile(uintptr(nfd), "evhttp-response")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !s.dl.IsZero() {
		if err := f.SetWriteDeadline(s.dl); err != nil {
			f.Close()
			return nil, err
		}
	}
	s.f, s.rc = f, rc
	s.own.Store(int64(nfd))
	return rc, nil
}

// dupFD duplicates a descriptor (close-on-exec).
func dupFD(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }

// eagain reports whether err means "no room now".
func eagain(err error) bool { return err == unix.EAGAIN || err == unix.EWOULDBLOCK }
