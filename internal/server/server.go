// Package server is the composition root of a Sluice process: it builds
// every role (ingest, origin, distribution, scheduler, sender, and the
// single-node cluster of `sluice serve`) from a config.Config, routes the
// whole URL space of the process in one table (routes.go), and serves it
// with metrics, health checks, request logging and archive retention.
package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/sluice-media/sluice/internal/certfile"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/archive"
	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/distribution"
	"github.com/sluice-media/sluice/internal/evhttp"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/origin"
	"github.com/sluice-media/sluice/internal/pacing"
	"github.com/sluice-media/sluice/internal/puller"
	"github.com/sluice-media/sluice/internal/store"
)

// Roles selects what a process serves. Each is assembled from the
// configuration by Open (New for the roles that need no listener):
//
//   - Ingest takes encoder pushes into the store (cfg.Data);
//   - Origin serves Smooth, DASH and HLS from the store, pulling from
//     cfg.Ingests when set;
//   - Distribution serves clients from cfg.Distribution.Origins through a
//     cache (internal/distribution); it needs no data directory;
//   - Scheduler opens player sessions over the senders of cfg.Cluster and
//     the timeline of cfg.Scheduler.Origins (internal/scheduler);
//   - Sender holds blocks in cfg.Data and RAM and sends them to players
//     (internal/sender), registered in etcd when cfg.Cluster names it;
//   - Local is the single-node cluster of `sluice serve`: one sender over
//     the store and one scheduler over both, on this server's address;
//   - StatusPage serves the status page at / (internal/webui), with the
//     publishing points of the store; without it a scheduler or a sender
//     has a status page of its own, the cluster panel alone, served
//     beside /metrics (routes.go);
//   - Demo pushes the bundled sample in a loop into the point DemoChannel
//     through this server's own ingest URL and imports it as DemoAsset,
//     unless cfg.Serve.NoDemo.
type Roles struct {
	Ingest       bool
	Origin       bool
	Distribution bool
	Scheduler    bool
	Sender       bool
	Local        bool
	StatusPage   bool
	Demo         bool
}

// needsListener reports whether the roles need the bound address while
// they are assembled (Open, not New).
func (r Roles) needsListener() bool { return r.Scheduler || r.Sender || r.Local || r.Demo }

// Server is one Sluice process: the HTTP server of its roles, with
// metrics, health checks, request logging and archive retention.
type Server struct {
	Store   *store.Store
	Metrics *metrics.Metrics
	cfg     config.Config
	roles   Roles
	log     *slog.Logger
	ln      net.Listener // bound by Open; Serve listens when nil
	handler http.Handler
	ready   func() bool
	pacer   *pacing.Pacer // paces media responses (internal/pacing)
	dist    *distribution.Proxy

	// ingest, puller and checks belong to peers.go: the push proxy, the
	// pull from ingests and the per-role readiness checks.
	ingest *ingest.Handler
	puller *puller.Puller
	checks []func() error

	// The handlers of the roles, routed by routes.go.
	h handlers
	// start, stop and closers run in Serve: when it starts serving, when
	// ctx ends (before the HTTP server shuts down), and last.
	start   []func(context.Context) error
	stop    []func()
	closers []func()
}

// New builds a server for roles that need no listener while they are
// assembled (ingest, origin, distribution, status page): it opens the
// data directory and builds the handler. Serve listens.
func New(cfg config.Config, roles Roles, log *slog.Logger) (*Server, error) {
	if roles.needsListener() {
		return nil, errors.New("server: the scheduler and sender roles need Open")
	}
	return assemble(context.Background(), cfg, roles, nil, log)
}

// Open listens on cfg.Listen and assembles every role of roles from cfg:
// the one place a Sluice process is built. ctx bounds what the roles open
// before serving (the sender set of a scheduler); Serve runs them.
func Open(ctx context.Context, cfg config.Config, roles Roles, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	s, err := assemble(ctx, cfg, roles, ln, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if roles.Ingest {
		memoryLimit(cfg, log)
	}
	return s, nil
}

// Addr is the bound address (host:port) of a server made by Open.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

func assemble(ctx context.Context, cfg config.Config, roles Roles, ln net.Listener, log *slog.Logger) (*Server, error) {
	var st *store.Store
	if roles.Ingest || roles.Origin {
		var err error
		if st, err = store.Open(cfg.Data, log); err != nil {
			return nil, err
		}
	}
	m := metrics.New()
	s := &Server{Store: st, Metrics: m, cfg: cfg, roles: roles, ln: ln, log: log, ready: func() bool { return true }}
	if roles.Distribution {
		var err error
		if s.dist, err = distribution.New(cfg.Distribution, m.Registry, log); err != nil {
			return nil, err
		}
		s.ready = s.dist.Ready
	}
	if roles.Ingest {
		s.ingest = ingest.New(st, cfg, m, log)
		s.h.ingest = s.pushLimit(s.ingest)
	}
	s.pacer = pacing.New(cfg.Pacing, m, log)
	if roles.Origin {
		// Fragments and init segments go through the pacer.
		s.h.origin = s.pacer.Middleware(origin.New(st, cfg, m, log), isMedia)
	}
	if s.dist != nil {
		// A distribution server sends media to players too: same pacer.
		s.h.dist = s.pacer.Middleware(s.dist, isMedia)
	}
	guard, err := s.signedURLs()
	if err != nil {
		return nil, err
	}
	s.h.origin, s.h.dist = guard(s.h.origin), guard(s.h.dist)
	s.setupPeers(roles)
	if st != nil {
		s.h.api = archive.API(st, cfg.AdminToken, log)
	}
	if err := s.setupCluster(ctx, roles); err != nil {
		s.close()
		return nil, err
	}
	s.routes()
	return s, nil
}

// minPace is the slowest rate (bytes/s) at which the pacing configuration
// p may send a response, 0 when it does not pace: the rate WriteProgress
// must allow.
func minPace(p config.Pacing) int64 {
	if p.Mode == "" || p.Mode == config.PacingOff {
		return 0
	}
	return p.MinRateKbps * 125
}

// Handler is the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves until ctx ends, then shuts down gracefully. started, if
// not nil, receives the bound address.
func (s *Server) Serve(ctx context.Context, started func(addr string)) error {
	defer s.close()
	if err := s.startCluster(ctx); err != nil {
		return err
	}
	ln := s.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return err
		}
	}
	s.ln = nil // Serve owns it now
	go s.pacer.Run(ctx)
	if err := s.serveMetrics(ctx); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout: pushes are long requests; the ingest sets a read
		// deadline per read instead. No WriteTimeout: responses may last
		// long (pulls, paced fragments); a write-progress deadline per
		// chunk (httpx.WriteProgress) closes those whose client stopped
		// reading.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnContext:    pacing.ConnContext, // netconn's socket access plus the pacing state
	}
	if s.Store != nil {
		go s.retention(ctx)
	}
	if s.dist != nil {
		go s.dist.Run(ctx)
	}
	tlsSrv, err := s.serveTLS(srv)
	if err != nil {
		ln.Close()
		return err
	}
	s.startPeers(ctx)
	hs := s.httpServer(srv)
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	if tlsSrv != nil {
		go func() { errc <- tlsSrv.srv.ServeTLS(tlsSrv.ln, "", "") }()
	}
	for _, f := range s.start {
		if err := f(ctx); err != nil {
			hs.Shutdown(expired())
			tlsSrv.shutdown(expired())
			return err
		}
	}
	if started != nil {
		started(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	for _, f := range s.stop {
		f()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tlsSrv.shutdown(sctx)
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	srv.Close()
	return nil
}

// tlsServer serves the TLS listen address: net/http over TLS (HTTP/2 and
// HTTP/1.1 by ALPN) with the handler and limits of the plain listener.
// The event-loop engine serves plain HTTP/1.1 only (docs/capacity.md).
type tlsServer struct {
	srv *http.Server
	ln  net.Listener
}

// serveTLS prepares the HTTPS server of cfg.TLSListen: the certificate is
// loaded and the address bound now, so that a bad file or a busy port is
// an error at start. nil without cfg.TLSListen.
func (s *Server) serveTLS(plain *http.Server) (*tlsServer, error) {
	if s.cfg.TLSListen == "" {
		return nil, nil
	}
	certs, err := certfile.Load(s.cfg.TLSCert, s.cfg.TLSKey, s.log, nil)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.cfg.TLSListen)
	if err != nil {
		return nil, fmt.Errorf("tls listen: %w", err)
	}
	srv := &http.Server{
		Handler:           plain.Handler,
		ReadHeaderTimeout: plain.ReadHeaderTimeout,
		IdleTimeout:       plain.IdleTimeout,
		MaxHeaderBytes:    plain.MaxHeaderBytes,
		ErrorLog:          plain.ErrorLog,
		ConnContext:       plain.ConnContext, // pacing reaches the TCP socket under TLS too
		TLSConfig:         certs.Config(),
	}
	s.log.Info("serving HTTPS (HTTP/2, HTTP/1.1)", "addr", ln.Addr().String(), "cert", s.cfg.TLSCert)
	return &tlsServer{srv: srv, ln: ln}, nil
}

// shutdown stops t (nil: nothing).
func (t *tlsServer) shutdown(ctx context.Context) {
	if t == nil {
		return
	}
	if err := t.srv.Shutdown(ctx); err != nil {
		t.srv.Close()
	}
}

// httpServer is what serves the listen address: with the event-loop
// engine, internal/evhttp serves the bodiless GETs and HEADs (every player
// request) and hands the other connections to srv; with nethttp, srv alone.
func (s *Server) httpServer(srv *http.Server) interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
} {
	if s.cfg.HTTPEngine != config.EngineEventLoop {
		return srv
	}
	return &evhttp.Server{
		Handler:           srv.Handler,
		Fallback:          srv,
		Log:               s.log,
		MaxHeaderBytes:    srv.MaxHeaderBytes,
		ReadHeaderTimeout: srv.ReadHeaderTimeout,
		IdleTimeout:       srv.IdleTimeout,
		ConnContext: func(ctx context.Context, slot *any, sock evhttp.Socket) context.Context {
			return pacing.SocketContext(ctx, slot, sock)
		},
	}
}

// expired is a context that has ended: Shutdown without waiting.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// close releases what the roles opened (last first) and a listener Serve
// did not take.
func (s *Server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// retention prunes archives older than each point's configured retention,
// and expires the streams that never received a fragment.
func (s *Server) retention(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, pc := range s.cfg.Points {
			p, err := s.Store.Point(pc.Name)
			if err != nil {
				continue
			}
			s.expireStreams(p)
			if pc.Archive <= 0 {
				continue
			}
			n, err := p.Prune(pc.Archive)
			if err != nil {
				s.log.Error("retention", "point", pc.Name, "err", err)
			}
			if n > 0 {
				s.Metrics.FragmentsPruned.Add(float64(n))
				s.log.Info("retention pruned fragments", "point", pc.Name, "fragments", n)
			}
		}
	}
}

// expireStreams removes the records of the point's streams that never
// received a fragment (refused pushes with junk ids) once they expire.
func (s *Server) expireStreams(p *store.Point) {
	gone, err := p.ExpireStreams(time.Now(), s.cfg.StreamExpiry)
	if err != nil {
		s.log.Error("stream expiry", "point", p.Name, "err", err)
	}
	if len(gone) > 0 {
		s.log.Info("removed streams that never received a fragment", "point", p.Name, "streams", len(gone),
			"expiry", s.cfg.StreamExpiry)
	}
}

// instrument counts requests and bytes by kind and status, and logs errors.
// The counters are looked up once per (kind, status) and kept (reqMetrics):
// no label hashing per request.
func (s *Server) instrument(next http.Handler) http.Handler {
	rm := &reqMetrics{m: s.Metrics}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := httpx.NewCountingWriter(w)
		next.ServeHTTP(sw, r)
		k := kindOf(r)
		rm.requests(k, sw.Status).Inc()
		rm.bytesOut(k).Add(float64(sw.Bytes))
		if sw.Status >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", sw.Status)
		}
	})
}

// The request kinds of sluice_requests_total and sluice_bytes_out_total.
type kind uint8

const (
	kindIngest kind = iota
	kindManifest
	kindInit
	kindFragment
	kindPull
	kindOther
	kindPart // an LL-HLS part (part-<start>.m4s)
	numKinds
)

var kindNames = [numKinds]string{"ingest", "manifest", "init", "fragment", "pull", "other", "part"}

// reqMetrics caches the labelled counters of instrument. A series is
// created on first use, as WithLabelValues would; statuses outside
// 100-599 are looked up each time.
type reqMetrics struct {
	m     *metrics.Metrics
	reqs  [numKinds][500]atomic.Pointer[prometheus.Counter]
	bytes [numKinds]atomic.Pointer[prometheus.Counter]
}

func (rm *reqMetrics) requests(k kind, status int) prometheus.Counter {
	if status < 100 || status > 599 {
		return rm.m.Requests.WithLabelValues(kindNames[k], strconv.Itoa(status))
	}
	slot := &rm.reqs[k][status-100]
	if c := slot.Load(); c != nil {
		return *c
	}
	c := rm.m.Requests.WithLabelValues(kindNames[k], strconv.Itoa(status))
	slot.Store(&c)
	return c
}

func (rm *reqMetrics) bytesOut(k kind) prometheus.Counter {
	slot := &rm.bytes[k]
	if c := slot.Load(); c != nil {
		return *c
	}
	c := rm.m.BytesOut.WithLabelValues(kindNames[k])
	slot.Store(&c)
	return c
}

// isMedia selects the responses the pacer paces: GETs of fragments and
// init segments (not manifests, not ingest).
func isMedia(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	k := kindOf(r)
	return k == kindFragment || k == kindInit || k == kindPart
}

func kindOf(r *http.Request) kind {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		return kindIngest
	case strings.HasSuffix(p, "/Manifest") || strings.HasSuffix(p, ".mpd") || strings.HasSuffix(p, ".m3u8"):
		return kindManifest
	case strings.HasSuffix(p, "/init.mp4"):
		return kindInit
	case strings.HasSuffix(p, ".m4s") && strings.Contains(p, "/part-"):
		return kindPart
	case strings.HasSuffix(p, ".m4s") || strings.HasSuffix(p, ".vtt") || strings.Contains(p, "/Fragments("):
		return kindFragment
	case strings.Contains(p, "/Streams(") || strings.HasSuffix(p, "/StreamManifest"):
		return kindPull
	}
	return kindOther
}
