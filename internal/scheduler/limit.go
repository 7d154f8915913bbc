package scheduler

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-media/sluice/internal/ratelimit"
)

// IsOpen reports whether r opens a session (GET /s/<point>/manifest.mpd or
// master.m3u8, no ~<session> segment): what the per-client limit on
// session opens counts. Reloads of a session are not opens.
func IsOpen(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.HasPrefix(r.URL.Path, Prefix) && !strings.Contains(r.URL.Path, "/~")
}

// LimitOpens puts a per-client limit on session opens (IsOpen) in front of
// h, the scheduler's /s/ handler: rate opens a second per client address
// with bursts of burst; more get 429 with Retry-After, counted in reg
// (sluice_scheduler_open_rate_limited_total) and logged (once per client
// per 10 s). Reloads of open sessions are never limited. rate 0: h as is.
func LimitOpens(h http.Handler, rate float64, burst int, reg prometheus.Registerer, log *slog.Logger) http.Handler {
	l := ratelimit.New(rate, burst)
	if !l.Enabled() {
		return h
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_scheduler_open_rate_limited_total",
		Help: "Session opens refused with 429: the client address opened more sessions than --open-rate/--open-burst allow."})
	if reg != nil {
		reg.MustRegister(refused)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := func(r *http.Request) (string, bool) { return ratelimit.ClientKey(r), IsOpen(r) }
	return l.Middleware(h, key, "session opens", func(r *http.Request, k string, logNow bool) {
		refused.Inc()
		if logNow {
			log.Warn("session open refused", "status", http.StatusTooManyRequests, "reason", "per-client open limit",
				"client", k, "path", r.URL.Path, "rate", rate, "burst", burst)
		}
	})
}

// PointOf returns the point a /s/ path names ("" for none): the segments
// after /s/ up to the session (~…) or the manifest.
func PointOf(p string) string {
	rest, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "/~"); i >= 0 {
		return rest[:i]
	}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return ""
}
