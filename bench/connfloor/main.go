// Command connfloor is a prototype measurement, not part of Sluice: the
// smallest HTTP/1.1 keep-alive server that answers every GET with one
// in-memory body, built two ways, so that bench/viewers can measure what a
// connection costs the Go runtime and the server library alone:
//
//	connfloor -impl nethttp -listen 127.0.0.1:9000   # net/http, goroutine per connection
//	connfloor -impl gnet    -listen 127.0.0.1:9000   # gnet v2 event loop (one loop: -loops 1)
//
// Both answer "HTTP/1.1 200 OK" with Content-Length and the same -body
// bytes (no file, no sendfile: the floor of each model, not a media
// server). It is its own module (bench/connfloor/go.mod), so the gnet
// dependency stays out of Sluice's go.mod. docs/capacity.md has the
// numbers.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

func main() {
	impl := flag.String("impl", "nethttp", "nethttp or gnet")
	listen := flag.String("listen", "127.0.0.1:9000", "address")
	size := flag.Int("body", 200_000, "body bytes of every response")
	loops := flag.Int("loops", 1, "gnet: event loops")
	flag.Parse()
	body := bytes.Repeat([]byte{'x'}, *size)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch *impl {
	case "nethttp":
		err = serveNetHTTP(ctx, *listen, body)
	case "gnet":
		err = serveGnet(ctx, *listen, body, *loops)
	default:
		err = fmt.Errorf("-impl %q: want nethttp or gnet", *impl)
	}
	if err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

func serveNetHTTP(ctx context.Context, addr string, body []byte) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	cl := []string{strconv.Itoa(len(body))}
	ct := []string{"video/mp4"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Length"] = cl
		h["Content-Type"] = ct
		w.Write(body)
	})}
	go func() { <-ctx.Done(); srv.Close() }()
	return srv.Serve(ln)
}

// server is the gnet handler: one response per complete request header.
type server struct {
	gnet.BuiltinEventEngine
	addr string
	resp []byte
}

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	for {
		buf, _ := c.Peek(-1)
		i := bytes.Index(buf, []byte("\r\n\r\n"))
		if i < 0 {
			if len(buf) > 64<<10 {
				return gnet.Close
			}
			return gnet.None
		}
		c.Discard(i + 4)
		if _, err := c.Write(s.resp); err != nil {
			return gnet.Close
		}
	}
}

func serveGnet(ctx context.Context, addr string, body []byte, loops int) error {
	hdr := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\n\r\n", len(body))
	s := &server{addr: "tcp://" + addr, resp: append([]byte(hdr), body...)}
	go func() { <-ctx.Done(); gnet.Stop(context.Background(), s.addr) }()
	return gnet.Run(s, s.addr, gnet.WithNumEventLoop(loops), gnet.WithReusePort(false), gnet.WithTCPKeepAlive(0))
}
