// Package server assembles the HTTP server of a Sluice process from the role
// handlers (ingest, origin, status page), with metrics, health checks,
// request logging and archive retention.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/archive"
	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/distribution"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/origin"
	"github.com/sluice-media/sluice/internal/pacing"
	"github.com/sluice-media/sluice/internal/puller"
	"github.com/sluice-media/sluice/internal/store"
)

// Roles selects what a process serves.
type Roles struct {
	Ingest bool
	Origin bool
	// Distribution serves clients from the configured origins through a
	// cache (internal/distribution); it needs no data directory.
	Distribution bool
}

// Server is one Sluice HTTP server.
type Server struct {
	Store   *store.Store
	Metrics *metrics.Metrics
	cfg     config.Config
	log     *slog.Logger
	handler http.Handler
	home    http.Handler
	ready   func() bool
	pacer   *pacing.Pacer // paces media responses (internal/pacing)
	dist    *distribution.Proxy

	// ingest, puller and checks belong to peers.go: the push proxy, the
	// pull from ingests and the per-role readiness checks.
	ingest *ingest.Handler
	puller *puller.Puller
	checks []func() error
}

// New opens the data directory and builds the handler for the roles.
func New(cfg config.Config, roles Roles, log *slog.Logger) (*Server, error) {
	var st *store.Store
	if roles.Ingest || roles.Origin {
		var err error
		if st, err = store.Open(cfg.Data, log); err != nil {
			return nil, err
		}
	}
	m := metrics.New()
	s := &Server{Store: st, Metrics: m, cfg: cfg, log: log, ready: func() bool { return true }}
	if roles.Distribution {
		var err error
		if s.dist, err = distribution.New(cfg.Distribution, m.Registry, log); err != nil {
			return nil, err
		}
		s.ready = s.dist.Ready
	}
	mux := http.NewServeMux()
	if cfg.MetricsListen == "" {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.HandleFunc("GET /healthz", httpx.Healthz)
	mux.HandleFunc("GET /readyz", httpx.Readyz(s.readiness))
	var ing http.Handler
	if roles.Ingest {
		s.ingest = ingest.New(st, cfg, m, log)
		ing = s.pushLimit(s.ingest)
	}
	s.pacer = pacing.New(cfg.Pacing, m, log)
	var org http.Handler
	if roles.Origin {
		// Fragments and init segments go through the pacer.
		org = s.pacer.Middleware(origin.New(st, cfg, m, log), isMedia)
	}
	var dist http.Handler
	if s.dist != nil {
		// A distribution server sends media to players too: same pacer.
		dist = s.pacer.Middleware(s.dist, isMedia)
	}
	guard, err := s.signedURLs()
	if err != nil {
		return nil, err
	}
	org, dist = guard(org), guard(dist)
	s.setupPeers(roles)
	if st != nil {
		mux.Handle("/api/", archive.API(st, cfg.AdminToken, log))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case ing != nil && ingest.Handles(r):
			ing.ServeHTTP(w, r)
		case org != nil && (strings.Contains(r.URL.Path, ".isml") || strings.Contains(r.URL.Path, ".ism/")):
			org.ServeHTTP(w, r)
		case dist != nil:
			dist.ServeHTTP(w, r)
		case s.home != nil:
			s.home.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	// A response whose client stops reading is closed after
	// cfg.WriteTimeout without progress; paced ones are judged at the
	// lowest pacing rate.
	s.handler = httpx.WriteProgress(s.instrument(mux), cfg.WriteTimeout, MinPace(cfg.Pacing))
	return s, nil
}

// MinPace is the slowest rate (bytes/s) at which the pacing configuration
// p may send a response, 0 when it does not pace: the rate WriteProgress
// must allow.
func MinPace(p config.Pacing) int64 {
	if p.Mode == "" || p.Mode == config.PacingOff {
		return 0
	}
	return p.MinRateKbps * 125
}

// Handler is the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve listens on the configured address until ctx ends, then shuts down
// gracefully. started, if not nil, receives the bound address.
func (s *Server) Serve(ctx context.Context, started func(addr string)) error {
	if err := s.startCluster(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return err
	}
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
	s.startPeers(ctx)
	if started != nil {
		started(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	srv.Close()
	return nil
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
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := httpx.NewCountingWriter(w)
		next.ServeHTTP(sw, r)
		kind := requestKind(r)
		s.Metrics.Requests.WithLabelValues(kind, strconv.Itoa(sw.Status)).Inc()
		s.Metrics.BytesOut.WithLabelValues(kind).Add(float64(sw.Bytes))
		if sw.Status >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", sw.Status)
		}
	})
}

// isMedia selects the responses the pacer paces: GETs of fragments and
// init segments (not manifests, not ingest).
func isMedia(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	k := requestKind(r)
	return k == "fragment" || k == "init"
}

func requestKind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		return "ingest"
	case strings.HasSuffix(p, "/Manifest") || strings.HasSuffix(p, ".mpd") || strings.HasSuffix(p, ".m3u8"):
		return "manifest"
	case strings.HasSuffix(p, "/init.mp4"):
		return "init"
	case strings.HasSuffix(p, ".m4s") || strings.Contains(p, "/Fragments("):
		return "fragment"
	case strings.Contains(p, "/Streams(") || strings.HasSuffix(p, "/StreamManifest"):
		return "pull"
	}
	return "other"
}

// SetHome sets the handler of the status page (GET / and its assets).
func (s *Server) SetHome(h http.Handler) { s.home = h }
