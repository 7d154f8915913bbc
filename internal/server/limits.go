package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/config"

	"github.com/sluice-media/sluice/internal/ratelimit"
	"github.com/sluice-media/sluice/internal/urls"
	"github.com/sluice-media/sluice/internal/urlsign"
)

// pushLimit limits the ingest requests (POST/PUT) each client address
// starts per point (cfg.PushRate, cfg.PushBurst): a client over it gets
// 429 with Retry-After while every other client, and its own pushes to
// other points, are served. Keyed by point too, so that a primary
// ingest forwarding every channel to its standby from one address gets
// each channel's allowance.
func (s *Server) pushLimit(next http.Handler) http.Handler {
	l := ratelimit.New(s.cfg.PushRate, s.cfg.PushBurst)
	if !l.Enabled() {
		return next
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_ingest_rate_limited_total",
		Help: "Ingest requests refused with 429: the client address started more pushes to a point than push_rate/push_burst allow."})
	s.Metrics.Registry.MustRegister(refused)
	key := func(r *http.Request) (string, bool) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			return "", false
		}
		pp, _, _ := urls.Split(r.URL.Path)
		if _, ok := s.cfg.Point(pp); !ok {
			pp = "_unknown"
		}
		return ratelimit.ClientKey(r) + "|" + pp, true
	}
	return l.Middleware(next, key, "pushes", func(r *http.Request, k string, logNow bool) {
		refused.Inc()
		if logNow {
			s.log.Warn("ingest refused", "status", http.StatusTooManyRequests, "reason", "per-client push limit",
				"client", k, "path", r.URL.Path, "rate", s.cfg.PushRate, "burst", s.cfg.PushBurst)
		}
	})
}

// serveMetrics serves /metrics, and the cluster status page of a
// scheduler or sender, on cfg.MetricsListen until ctx ends, when set.
func (s *Server) serveMetrics(ctx context.Context) error {
	if s.cfg.MetricsListen == "" {
		return nil
	}
	return serveMetricsOn(ctx, s.cfg.MetricsListen, s.Metrics.Handler(), s.h.status, s.log)
}

// serveMetricsOn serves h at /metrics, and status (if not nil) at / and
// /status.json, on addr until ctx ends (the separate metrics listener of
// every role, --metrics-listen).
func serveMetricsOn(ctx context.Context, addr string, h, status http.Handler, log interface{ Info(string, ...any) }) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	statusRoutes(mux, status)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Info("metrics listener stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return nil
}

// signedURLs returns the signed-URL check of the origin and distribution
// handlers (cfg.SignedURLs; docs/origin.md): the identity when off. The
// index for schedulers (view.json) is out of its scope (it has its own
// authentication), and so are ingest requests. A distribution server
// signs its fetches from the origins with the same key.
func (s *Server) signedURLs() (func(http.Handler) http.Handler, error) {
	sc := s.cfg.SignedURLs
	guard, key, err := signedURLGuard(sc, s.Metrics.Registry, s.log, func(r *http.Request) bool {
		pp, rest, ok := urls.Split(r.URL.Path)
		return ok && rest != "view.json" && sc.Covers(pp)
	})
	if err != nil || key == nil {
		return guard, err
	}
	if s.dist != nil {
		s.dist.SetUpstreamQuery(func() string {
			return urlsign.Param + "=" + key.Token("/", time.Now().Add(time.Minute))
		})
	}
	return guard, nil
}

// signedURLGuard returns the check of signed player URLs c configures for
// the requests scope selects (urlsign.Guard, refusals counted in reg as
// sluice_signed_url_refusals_total{reason}), and the key; the identity and
// no key when c does not require them.
func signedURLGuard(c config.SignedURLs, reg prometheus.Registerer, log *slog.Logger, scope func(*http.Request) bool) (func(http.Handler) http.Handler, urlsign.Key, error) {
	if !c.Require {
		return func(h http.Handler) http.Handler { return h }, nil, nil
	}
	key, err := urlsign.LoadKey(c.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_signed_url_refusals_total",
		Help: "Player requests refused with 403 for want of a valid signed URL, by reason (missing, malformed, bad_signature, expired, wrong_prefix)."}, []string{"reason"})
	if err := reg.Register(refused); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			refused = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	g := &urlsign.Guard{Key: key, Log: log, Refused: func(r string) { refused.WithLabelValues(r).Inc() }, Scope: scope}
	return func(h http.Handler) http.Handler {
		if h == nil {
			return nil
		}
		return g.Middleware(h)
	}, key, nil
}

// memoryHeadroom is what the soft memory limit allows beyond the ingest
// memory budget.
const memoryHeadroom = 256 << 20

// memoryLimit sets the Go runtime's soft memory limit of a process that
// takes pushes to its ingest memory budget plus headroom (256 MiB) for
// everything else it holds, unless $GOMEMLIMIT says otherwise. Under a
// flood of large boxes the garbage collector then reclaims the buffers of
// the pushes that were cut before the heap grows to twice what is live
// (GOGC), so that the resident size stays within budget + headroom
// (docs/ingest.md, "Limits").
func memoryLimit(cfg config.Config, log *slog.Logger) {
	if cfg.IngestMemory <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(cfg.IngestMemory) + memoryHeadroom
	debug.SetMemoryLimit(limit)
	log.Debug("soft memory limit", "bytes", limit)
}
