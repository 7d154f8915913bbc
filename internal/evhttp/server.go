// Package evhttp is the HTTP/1.1 server of Sluice's client-facing port: an
// event loop (gnet) holds every keep-alive connection between requests, so
// that an idle or waiting player costs a few hundred bytes instead of a
// goroutine with its stack and buffers (docs/capacity.md).
//
// A complete request head is parsed on the event loop; a bodiless GET or
// HEAD is then served by the ordinary http.Handler on a worker goroutine
// (a few hundred warm ones wait between requests; see workers). The response
// writes straight to the socket through the event loop's own descriptor
// (sendfile for files, the header ahead of them with MSG_MORE), guarded so
// that it never reaches a number the loop closed (connFD); only a write
// that finds the socket buffer full takes a duplicate, to wait for room
// through the runtime's poller. Everything else —
// requests with bodies (encoder pushes), other methods, Expect and Upgrade —
// hands the whole connection, with the bytes already read, to a fallback
// net/http server, which keeps it for its lifetime.
//
// Contracts a handler relies on: r.Context() is cancelled when the client
// closes the connection or the response ends; http.ResponseController's
// Flush and SetWriteDeadline work (SetReadDeadline and Hijack do not: no
// body is ever read here); a response shorter than its Content-Length, a
// panic, or a write error ends the connection. Requests on one connection
// are served one after the other (pipelined requests wait in the event
// loop's buffer).
package evhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// Socket is a response's handle on its connection's socket, as given to
// ConnContext: Control runs a function with a descriptor of the socket
// (socket options, TCP_INFO) as long as the response, or a Hold taken on
// it, lasts; after that it fails without touching a descriptor. The
// function must not block: it may run on the event loop's own descriptor,
// whose close waits for it. Neither Control nor Hold costs a descriptor
// while the client stays connected.
type Socket interface {
	syscall.RawConn
	// Hold keeps the socket usable after the response ends, until release.
	Hold() (release func())
}

// Server serves HTTP/1.1 on an event loop. The zero value is not usable:
// set Handler. Start it with Serve; stop it with Shutdown.
type Server struct {
	// Handler serves the bodiless GET and HEAD requests.
	Handler http.Handler
	// Fallback serves the connections handed off (see the package doc);
	// nil answers them 501. Serve runs it; Shutdown shuts it down.
	Fallback *http.Server
	// Log receives the server's own log lines (nil: slog.Default).
	Log *slog.Logger
	// MaxHeaderBytes bounds a request head (0: 64 KiB); a longer one is
	// refused with 431.
	MaxHeaderBytes int
	// ReadHeaderTimeout closes a connection whose request head is not
	// complete this long after its first byte (or after the connection
	// opened); IdleTimeout one that sends nothing this long after a
	// response. 0: 10 s and 120 s.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// Loops is the number of event loops (0: GOMAXPROCS).
	Loops int
	// ConnContext, if set, derives the context of each request: slot is
	// the connection's own (nil at its first request; whatever the hook
	// stores there lives as long as the connection) and sock the socket of
	// this response.
	ConnContext func(ctx context.Context, slot *any, sock Socket) context.Context

	mu       sync.Mutex
	conns    map[*conn]struct{}
	ln       net.Listener
	cli      *gnet.Client
	handoff  *handoffListener
	inflight atomic.Int64 // requests being served
	closing  atomic.Bool
	// overloads counts the times a response found no descriptor to wait
	// for room with, or to go on with once its connection closed.
	overloads atomic.Int64
	dup       func(fd int) (int, error) // tests: duplicates a socket (nil: dupFD)
	pool      workers
	dateVal   atomic.Pointer[dateEntry]
	done      chan struct{}
}

// Connection states (conn.state).
const (
	stateHead   int32 = iota // waiting for a request head (ReadHeaderTimeout)
	stateIdle                // between requests (IdleTimeout)
	stateBusy                // a request is being served
	stateClosed              // the event loop closed it
)

// conn is the server's state of one connection: the only per-connection
// memory besides the event loop's own.
type conn struct {
	gc     gnet.Conn                 // set by OnOpen; the event loop and request goroutines
	shared atomic.Pointer[gnet.Conn] // gc, for the reaper
	remote string
	state  atomic.Int32
	since  atomic.Int64 // unix ns: when the current wait began
	// pending: bytes arrived while a request was served (pipelining); the
	// request goroutine then hands the connection back through the event
	// loop. Without them it only marks the connection idle: no event-loop
	// wake-up per response.
	pending atomic.Bool
	// fd reaches the socket from the request goroutines (see connFD).
	fd connFD
	// Event-loop goroutine only.
	cancel context.CancelFunc // of the latest request (cancelled when the connection closes)
	// The request goroutine only (one at a time).
	slot any
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) maxHead() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return 64 << 10
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Serve accepts connections on ln until Shutdown (it then returns
// http.ErrServerClosed) or ln fails.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("evhttp: no handler")
	}
	loops := s.Loops
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	cli, err := gnet.NewClient(&events{s: s},
		gnet.WithNumEventLoop(loops),
		gnet.WithLogger(gnetLog{s.log()}),
		gnet.WithReadBufferCap(64<<10))
	if err != nil {
		return fmt.Errorf("evhttp: event loop: %w", err)
	}
	if err := cli.Start(); err != nil {
		return fmt.Errorf("evhttp: event loop: %w", err)
	}
	s.mu.Lock()
	s.ln, s.cli = ln, cli
	s.conns = make(map[*conn]struct{})
	s.handoff = newHandoffListener(ln.Addr())
	s.pool = workers{max: 256, idleFor: 10 * time.Second}
	s.done = make(chan struct{})
	s.mu.Unlock()
	if s.Fallback != nil {
		go s.Fallback.Serve(s.handoff)
	}
	go s.reap()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: wait for some to be closed, as
				// net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log().Warn("evhttp: accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := &conn{remote: nc.RemoteAddr().String()}
		c.since.Store(time.Now().UnixNano())
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		// Enroll duplicates the descriptor into the event loop and closes
		// nc.
		if _, err := cli.EnrollContext(nc, c); err != nil {
			s.forget(c)
			s.log().Warn("evhttp: cannot take a connection", "remote", c.remote, "err", err)
		}
	}
}

// Shutdown stops accepting, waits (until ctx ends) for the requests in
// progress, then closes every connection and the fallback server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	ln, cli, done := s.ln, s.cli, s.done
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	ln.Close()
	// Requests keep starting on open connections until they close:
	// poll for a moment without any.
	var err error
	t := time.NewTicker(10 * time.Millisecond)
	for s.inflight.Load() > 0 && err == nil {
		select {
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	t.Stop()
	close(done)
	s.pool.trim(time.Now().Add(365 * 24 * time.Hour)) // every idle worker exits
	if s.Fallback != nil {
		if ferr := s.Fallback.Shutdown(ctx); ferr != nil && err == nil {
			err = ferr
		}
	}
	s.handoff.Close()
	cli.Stop()
	return err
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// reap closes the connections past their timeouts, checking a few times
// per the shortest timeout.
func (s *Server) reap() {
	head, idle := orDefault(s.ReadHeaderTimeout, 10*time.Second), orDefault(s.IdleTimeout, 120*time.Second)
	t := time.NewTicker(min(min(head, idle)/4, time.Second))
	defer t.Stop()
	var expired []*conn
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.pool.trim(time.Now())
		now := time.Now().UnixNano()
		expired = expired[:0]
		s.mu.Lock()
		for c := range s.conns {
			if c.expired(now, head, idle) {
				expired = append(expired, c)
			}
		}
		s.mu.Unlock()
		for _, c := range expired {
			gcp := c.shared.Load()
			if gcp == nil {
				continue
			}
			gc := *gcp
			_ = gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				if c.expired(time.Now().UnixNano(), head, idle) {
					c.state.Store(stateClosed)
					return gc.EventLoop().Close(gc)
				}
				return nil
			}))
		}
	}
}

func (c *conn) expired(now int64, head, idle time.Duration) bool {
	since := time.Duration(now - c.since.Load())
	switch c.state.Load() {
	case stateHead:
		return since > head
	case stateIdle:
		return since > idle
	}
	return false
}

// events is the event loop's handler.
type events struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c := gc.Context().(*conn)
	c.gc = gc
	c.fd.init(e.s, gc.Fd())
	c.shared.Store(&gc)
	return nil, gnet.None
}

func (e *events) OnTraffic(gc gnet.Conn) gnet.Action { return e.s.traffic(gc.Context().(*conn)) }

func (e *events) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok {
		return gnet.None
	}
	// Before gnet closes the descriptor: no request goroutine uses its
	// number after this.
	c.fd.close()
	c.state.Store(stateClosed)
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	e.s.forget(c)
	return gnet.None
}

// traffic handles what arrived on a connection (event loop): the next
// complete request head is served, a malformed one refused, a partial one
// left for more.
func (s *Server) traffic(c *conn) gnet.Action {
	gc := c.gc
	switch c.state.Load() {
	case stateBusy:
		// Pipelined requests wait; a flood does not.
		n := gc.InboundBuffered()
		if n > s.maxHead() {
			return gnet.Close
		}
		if n == 0 {
			return gnet.None
		}
		c.pending.Store(true)
		if c.state.Load() == stateBusy {
			return gnet.None // the request goroutine will hand it back
		}
		// It finished meanwhile: go on here (a second pass from the
		// goroutine's hand-back finds nothing to do, or a busy state).
	case stateClosed:
		return gnet.Close
	}
	c.pending.Store(false)
	buf, _ := gc.Peek(-1)
	if len(buf) == 0 {
		return gnet.None
	}
	n := headEnd(buf)
	if n < 0 {
		if len(buf) > s.maxHead() {
			return s.refuse(c, &headError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"})
		}
		if c.state.Load() == stateIdle {
			c.state.Store(stateHead)
			c.since.Store(time.Now().UnixNano())
		}
		return gnet.None
	}
	if n > s.maxHead() {
		return s.refuse(c, &headError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"})
	}
	h, err := parseHead(buf[:n])
	if err != nil {
		var he *headError
		errors.As(err, &he)
		return s.refuse(c, he)
	}
	if h.handoff {
		return s.handOff(c)
	}
	gc.Discard(n)
	if gc.InboundBuffered() > 0 {
		c.pending.Store(true) // pipelined: the next request is here already
	}
	return s.dispatch(c, h)
}

// refuse answers a malformed request and closes the connection.
func (s *Server) refuse(c *conn, he *headError) gnet.Action {
	s.log().Info("evhttp: bad request", "remote", c.remote, "status", he.status, "reason", he.reason)
	msg := fmt.Sprintf("%d %s: %s", he.status, http.StatusText(he.status), he.reason)
	resp := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		he.status, http.StatusText(he.status), len(msg), msg)
	c.gc.Write([]byte(resp))
	c.state.Store(stateClosed)
	return gnet.Close // gnet sends what is buffered before closing
}

// dispatch starts serving a request on its own goroutine (event loop). The
// request takes no descriptor: its socket reaches the loop's (see connFD).
func (s *Server) dispatch(c *conn, h *head) gnet.Action {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.state.Store(stateBusy)
	s.inflight.Add(1)
	sk := newSock(&c.fd)
	s.pool.run(func() { s.serve(c, h, sk, ctx, cancel) })
	return gnet.None
}

// serve runs the handler for one request and hands the connection back to
// the event loop.
func (s *Server) serve(c *conn, h *head, sk *sock, ctx context.Context, cancel context.CancelFunc) {
	defer s.inflight.Add(-1)
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, &c.slot, sk)
	}
	proto := "HTTP/1.1"
	if h.minor == 0 {
		proto = "HTTP/1.0"
	}
	r0 := http.Request{
		Method: h.method, URL: h.url, Proto: proto, ProtoMajor: 1, ProtoMinor: h.minor,
		Header: h.header, Body: http.NoBody, Host: h.host, RemoteAddr: c.remote,
		RequestURI: h.target, Close: h.close,
	}
	req := r0.WithContext(ctx)
	w := newResponse(s, req, sk, h.close)
	keep := s.run(w, req)
	sk.release()
	cancel()
	if !keep {
		c.state.Store(stateClosed)
		c.gc.Close() // safe on a connection the event loop closed already
		return
	}
	c.since.Store(time.Now().UnixNano())
	if !c.state.CompareAndSwap(stateBusy, stateIdle) || !c.pending.Load() {
		return // closed meanwhile, or the event loop reads the next request itself
	}
	err := c.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		s.served(c)
		return nil
	}))
	if err != nil && !s.closing.Load() {
		s.log().Warn("evhttp: event loop refused a connection back", "err", err)
	}
}

// run calls the handler; a panic ends the connection (logged unless it is
// http.ErrAbortHandler), as with net/http.
func (s *Server) run(w *response, req *http.Request) (keep bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				s.log().Error("evhttp: panic serving", "remote", req.RemoteAddr, "path", req.URL.Path, "panic", v, "stack", string(buf))
			}
			w.closeAfter = true
			w.err = errors.New("evhttp: handler panicked")
			w.finish()
			keep = false
		}
	}()
	s.Handler.ServeHTTP(w, req)
	return w.finish()
}

// served serves what a client sent while its previous request was served
// (event loop).
func (s *Server) served(c *conn) {
	if c.state.Load() == stateClosed {
		return
	}
	if s.traffic(c) == gnet.Close {
		c.state.Store(stateClosed)
		c.gc.EventLoop().Close(c.gc)
	}
}

// handOff gives the connection, with what it sent so far, to the
// fallback server (event loop).
func (s *Server) handOff(c *conn) gnet.Action {
	if s.Fallback == nil {
		return s.refuse(c, &headError{http.StatusNotImplemented, "only GET and HEAD without a body are served here"})
	}
	buf, _ := c.gc.Peek(-1)
	pre := bytes.Clone(buf)
	c.gc.Discard(len(buf))
	fd, err := c.gc.Dup()
	if err != nil {
		return s.refuse(c, &headError{http.StatusServiceUnavailable, "out of descriptors"})
	}
	f := os.NewFile(uintptr(fd), "evhttp-handoff")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.log().Warn("evhttp: cannot hand a connection off", "remote", c.remote, "err", err)
		return gnet.Close
	}
	c.state.Store(stateClosed)
	s.forget(c)
	go s.handoff.push(&prefixConn{Conn: nc, pre: pre})
	return gnet.Close // the event loop's descriptor; nc keeps the socket
}

// dupFD duplicates a connection's descriptor for a response (s.dup in
// tests).
func (s *Server) dupFD(fd int) (int, error) {
	if s.dup != nil {
		return s.dup(fd)
	}
	return dupFD(fd)
}

// noDescriptor counts (and logs, now and then) a response that needed a
// descriptor of its own and could not have one.
func (s *Server) noDescriptor(err error, what string) {
	if n := s.overloads.Add(1); n%1000 == 1 {
		s.log().Warn("evhttp: out of descriptors: "+what, "err", err, "times", n)
	}
}

// dateEntry caches the Date header value for one second.
type dateEntry struct {
	sec int64
	val []byte
}

func (s *Server) date() []byte {
	now := time.Now()
	if d := s.dateVal.Load(); d != nil && d.sec == now.Unix() {
		return d.val
	}
	d := &dateEntry{sec: now.Unix(), val: now.UTC().AppendFormat(nil, http.TimeFormat)}
	s.dateVal.Store(d)
	return d.val
}

// gnetLog sends gnet's log lines to slog (its info lines at debug).
type gnetLog struct{ l *slog.Logger }

func (g gnetLog) Debugf(f string, a ...any) { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLog) Infof(f string, a ...any)  { g.l.Debug("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLog) Warnf(f string, a ...any)  { g.l.Warn("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLog) Errorf(f string, a ...any) { g.l.Error("gnet: " + fmt.Sprintf(f, a...)) }
func (g gnetLog) Fatalf(f string, a ...any) { g.l.Error("gnet: fatal: " + fmt.Sprintf(f, a...)) }
