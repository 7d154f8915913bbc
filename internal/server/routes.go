package server

import (
	"net/http"
	"strings"

	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/scheduler"
)

// handlers are the handlers of the roles a process runs (nil: not run).
type handlers struct {
	ingest   http.Handler // encoder pushes (behind the push limit)
	origin   http.Handler // /<pp>.isml/... (paced, signed-URL check)
	dist     http.Handler // every other client URL of a distribution server
	api      http.Handler // /api/ admin API over the store
	sessions http.Handler // /s/ of a scheduler (limits, signed-URL check)
	ownerSet http.Handler // the owner-set listing of a scheduler
	sender   http.Handler // /b/ and /internal/v1/ of a sender
	player   http.Handler // /play and /player/ (webui)
	home     http.Handler // the status page: / and its assets (webui)
	status   http.Handler // the cluster status page of a scheduler or sender: GET / and /status.json (webui)
}

// routes builds the handler of the process from one table: the whole URL
// space, by the role that answers it.
//
//	every role      GET /healthz                       alive
//	                GET /readyz                        the roles' readiness checks (503 with reasons)
//	                GET /metrics                       unless metrics_listen serves it elsewhere
//	scheduler,      GET /, GET /status.json            the cluster status page, beside /metrics
//	sender                                             (on metrics_listen when set; serveMetrics)
//	ingest, origin  /api/...                           admin API (archive cuts; admin_token)
//	ingest          POST|PUT /<pp>.isml/...            encoder pushes (ingest.Handles)
//	origin          GET /<pp>.isml/..., /<pp>.ism/...  Smooth, DASH, HLS, pulls, view.json
//	sender, serve   GET /b/<token>/...                 blocks, headers, session playlists for players
//	                /internal/v1/...                   the sender's internal API (signed; internal/sender)
//	scheduler,      /s/<point>/...                     player sessions (internal/scheduler)
//	serve
//	scheduler       GET /internal/v1/owner-sets        owner-set names in hosts(5) format (signed)
//	                /play, /player/                    the browser player page
//	serve           /, /player/, /play ...             the status page (internal/webui)
//	distribution    everything else                    the cache in front of the origins
//
// Anything else is 404. A response whose client stops reading is closed
// after cfg.WriteTimeout without progress; paced ones are judged at the
// lowest pacing rate.
func (s *Server) routes() {
	h := s.h
	mux := http.NewServeMux()
	if s.cfg.MetricsListen == "" {
		mux.Handle("GET /metrics", s.Metrics.Handler())
		statusRoutes(mux, h.status)
	}
	mux.HandleFunc("GET /healthz", httpx.Healthz)
	mux.HandleFunc("GET /readyz", httpx.Readyz(s.readiness))
	if h.api != nil {
		mux.Handle("/api/", h.api)
	}
	if h.sender != nil {
		mux.Handle("/b/", h.sender)
		mux.Handle("/internal/v1/", h.sender)
	}
	if h.sessions != nil {
		mux.Handle(scheduler.Prefix, h.sessions)
	}
	if h.ownerSet != nil {
		mux.Handle("GET /internal/v1/owner-sets", h.ownerSet)
	}
	if h.player != nil {
		mux.Handle("/play", h.player)
		mux.Handle("/player/", h.player)
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case h.ingest != nil && ingest.Handles(r):
			h.ingest.ServeHTTP(w, r)
		case h.origin != nil && (strings.Contains(r.URL.Path, ".isml") || strings.Contains(r.URL.Path, ".ism/")):
			h.origin.ServeHTTP(w, r)
		case h.dist != nil:
			h.dist.ServeHTTP(w, r)
		case h.home != nil:
			h.home.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	s.handler = httpx.WriteProgress(s.instrument(mux), s.cfg.WriteTimeout, minPace(s.cfg.Pacing))
}

// statusRoutes routes the cluster status page of a scheduler or a sender
// (nil: none) on mux: GET / and GET /status.json. It shows what /metrics
// shows, and is served beside it.
func statusRoutes(mux *http.ServeMux, status http.Handler) {
	if status == nil {
		return
	}
	mux.Handle("GET /{$}", status)
	mux.Handle("GET /status.json", status)
}
