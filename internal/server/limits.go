package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/ratelimit"
	"github.com/sluice-media/sluice/internal/urls"
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

// serveMetrics serves /metrics on cfg.MetricsListen until ctx ends, when
// set.
func (s *Server) serveMetrics(ctx context.Context) error {
	if s.cfg.MetricsListen == "" {
		return nil
	}
	return ServeMetrics(ctx, s.cfg.MetricsListen, s.Metrics.Handler(), s.log)
}

// ServeMetrics serves h at /metrics on addr until ctx ends (the separate
// metrics listener of every role, --metrics-listen).
func ServeMetrics(ctx context.Context, addr string, h http.Handler, log interface{ Info(string, ...any) }) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
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
