// Package netconn gives HTTP handlers the TCP socket of their connection, so
// that they can set socket options per response (TCP_CORK around a file
// response, SO_MAX_PACING_RATE for pacing) and read TCP_INFO.
package netconn

import (
	"context"
	"net"
	"net/http"
	"syscall"
)

type ctxKey struct{}

// ConnContext is an http.Server.ConnContext that remembers the connection's
// TCP socket (also beneath TLS, or a connection handed over by
// internal/evhttp) in the connection's context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tcp, ok := Unwrap(c).(*net.TCPConn); ok {
		return context.WithValue(ctx, ctxKey{}, tcp)
	}
	return ctx
}

// Unwrap returns the connection beneath wrappers that expose it with a
// NetConn method (*tls.Conn, evhttp's handed-over connections).
func Unwrap(c net.Conn) net.Conn {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = w.NetConn()
	}
}

// TCP returns the TCP connection a request arrived on, if the server was
// set up with ConnContext.
func TCP(r *http.Request) (*net.TCPConn, bool) {
	c, ok := r.Context().Value(ctxKey{}).(*net.TCPConn)
	return c, ok
}

// Control runs f with the socket's file descriptor.
func Control(c *net.TCPConn, f func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Cork sets or clears TCP_CORK: while corked, the kernel holds partial
// segments so that a response header and the start of its body leave in
// full-sized segments (what nginx does with tcp_nopush before sendfile).
func Cork(c *net.TCPConn, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return Control(c, func(fd int) error {
		return syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	})
}
