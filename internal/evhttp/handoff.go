package evhttp

import (
	"net"
	"sync"
)

// handoffListener is the net.Listener of the fallback server: it "accepts"
// the connections the event loop hands off.
type handoffListener struct {
	addr   net.Addr
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push delivers a connection to Accept, or closes it once the listener is
// closed.
func (l *handoffListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

// Accept implements net.Listener.
func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener: the real listener's address.
func (l *handoffListener) Addr() net.Addr { return l.addr }

// prefixConn is a handed-off connection: the bytes the event loop already
// read come first.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the TCP connection beneath (for socket options, as with
// tls.Conn).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }
