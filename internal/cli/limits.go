package cli

import (
	"flag"
	"log/slog"
	"net/http"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/scheduler"
	"github.com/sluice-media/sluice/internal/server"
)

// Defaults of the per-client limit on session opens.
const (
	defaultOpenRate  = 20
	defaultOpenBurst = 100
)

// openFlags are the per-client limit on session opens (/s/) of a
// scheduler (`sluice scheduler`, `sluice serve`).
type openFlags struct {
	rate  float64
	burst int
}

func (of *openFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&of.rate, "open-rate", defaultOpenRate, "sessions one client address may open per second (/s/<point>/manifest.mpd or master.m3u8); more get 429 with Retry-After (0: no limit)")
	fs.IntVar(&of.burst, "open-burst", defaultOpenBurst, "burst of --open-rate: sessions a client may open at once")
}

// limit puts the open limit in front of the scheduler's /s/ handler
// (scheduler.LimitOpens), counting refusals in srv's metrics.
func (of *openFlags) limit(h http.Handler, srv *server.Server, log *slog.Logger) http.Handler {
	return scheduler.LimitOpens(h, of.rate, of.burst, srv.Metrics.Registry, log)
}

// signedFlags require signed player URLs (origin, distribution, serve,
// scheduler; docs/origin.md).
type signedFlags struct {
	require bool
	keyFile string
	points  string
}

func (sf *signedFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&sf.require, "signed-urls", false, "player requests need a signed URL (?st= token or its cookie; mint them with 'sluice sign-url'): 403 otherwise")
	fs.StringVar(&sf.keyFile, "url-key-file", "", "file holding the signing key of player URLs (default $SLUICE_URL_KEY)")
	fs.StringVar(&sf.points, "signed-points", "", "comma-separated points that need signed URLs (default: every point)")
}

// apply lays the flags that were set over c.
func (sf *signedFlags) apply(fs *flag.FlagSet, c config.SignedURLs) config.SignedURLs {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "signed-urls":
			c.Require = sf.require
		case "url-key-file":
			c.KeyFile = sf.keyFile
		case "signed-points":
			c.Points = splitList(sf.points)
		}
	})
	return c
}

// guard returns the signed-URL check of a scheduler's /s/ requests (opens
// and reloads of sessions of the covered points), or h itself when off.
func (sf *signedFlags) guard(fs *flag.FlagSet, h http.Handler, srv *server.Server, log *slog.Logger) (http.Handler, error) {
	return sessionGuard(sf.apply(fs, config.SignedURLs{}), h, srv, log)
}

// sessionGuard is the signed-URL check c configures on /s/ requests.
func sessionGuard(c config.SignedURLs, h http.Handler, srv *server.Server, log *slog.Logger) (http.Handler, error) {
	guard, _, err := server.SignedURLGuard(c, srv.Metrics.Registry, log, func(r *http.Request) bool {
		return c.Covers(scheduler.PointOf(r.URL.Path))
	})
	if err != nil {
		return nil, err
	}
	return guard(h), nil
}
