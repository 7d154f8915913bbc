package pacing

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"testing"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/metrics"
)

// nopWriter is a ResponseWriter that drops everything.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware measures what the pacer adds to one media request on
// a real loopback socket (TCP_INFO, setsockopt when the rate changes,
// CMSD-Dynamic, metrics), against calling the handler directly ("bare"):
// a route the middleware does not pace, a media request without side
// channel (mode client, the default), the same in mode server while there is
// no estimate (every response a probe: a watcher timer), CMCD in headers and
// in the query, Sluice-Pacing, and a keep-alive connection alternating
// paced and unpaced (a setsockopt per request).
func BenchmarkMiddleware(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	sc, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	ctx := ConnContext(context.Background(), sc)

	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	all := func(*http.Request) bool { return true }
	pacer := func(mode string, match func(*http.Request) bool) http.Handler {
		cfg := config.PacingDefaults()
		cfg.Mode = mode
		p := New(cfg, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		return p.Middleware(next, match)
	}
	h := pacer(config.PacingClient, all)

	req := func(query string, hdr map[string]string) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://h/live.isml/tracks/v1/0.m4s"+query, nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	b.Run("tcp-info-syscall", func(b *testing.B) {
		cs := ctx.Value(stateKey{}).(*connState)
		cs.init()
		for b.Loop() {
			cs.info()
		}
	})
	for _, c := range []struct {
		name string
		h    http.Handler
		r    []*http.Request
	}{
		{"bare", next, []*http.Request{req("", nil)}},
		{"other-route", pacer(config.PacingClient, func(*http.Request) bool { return false }), []*http.Request{req("", nil)}},
		{"no-cmcd", h, []*http.Request{req("", nil)}},
		{"no-cmcd-server-probe", pacer(config.PacingServer, all), []*http.Request{req("", nil)}},
		{"cmcd-header", h, []*http.Request{req("", map[string]string{
			"CMCD-Object": "br=3200,d=4004,ot=v,tb=6000", "CMCD-Request": "bl=21300,dl=18500,mtp=48100",
			"CMCD-Session": `cid="faec5fc2-ac30-11ea-bb37-0242ac130002",sid="6e2fb550-c457-11e9-bb97-0800200c9a66"`, "CMCD-Status": "rtp=12000"})}},
		{"cmcd-query", h, []*http.Request{req("?CMCD="+url.QueryEscape(`bl=21300,br=3200,d=4004,mtp=48100,ot=v,rtp=12000,sid="6e2fb550-c457-11e9-bb97-0800200c9a66"`), nil)}},
		{"sluice-pacing", h, []*http.Request{req("", map[string]string{HeaderName: "rate=4000, burst=4, gap=1.5"})}},
		{"alternating", h, []*http.Request{req("", map[string]string{HeaderName: "rate=4000"}), req("", nil)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.h.ServeHTTP(w, c.r[i%len(c.r)])
				i++
			}
		})
	}
}
