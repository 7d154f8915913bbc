package cli

import (
	"flag"
	"log/slog"
	"net/http"

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
