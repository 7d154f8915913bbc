package cli

import (
	"flag"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/sluice-media/sluice/internal/config"
)

// limitFlags are the bounds every serving role shares (pushes, pulls,
// responses, the data directory), docs/ingest.md "Limits".
type limitFlags struct {
	c             config.Config
	memory, fresh sizeFlag // IngestMemory, MinFree
}

// register adds the limit flags to fs, with the defaults as values.
func (lf *limitFlags) register(fs *flag.FlagSet) {
	lf.c = config.Defaults()
	c := &lf.c
	fs.DurationVar(&c.IngestIdle, "ingest-idle", c.IngestIdle, "abort a push (408) that delivers no header, fragment or end of stream for this long")
	fs.Int64Var(&c.IngestMinRate, "ingest-min-rate", c.IngestMinRate, "while a box of a push is arriving, abort the push (408) when fewer than this many bytes/s arrive over --ingest-rate-window (0: off)")
	fs.DurationVar(&c.IngestRateWindow, "ingest-rate-window", c.IngestRateWindow, "window of --ingest-min-rate")
	lf.memory, lf.fresh = sizeFlag(c.IngestMemory), sizeFlag(c.MinFree)
	fs.Var(&lf.memory, "ingest-memory", "memory budget of the box buffers of all pushes together, e.g. 512MiB; over it the push holding the most gets 503 with Retry-After (0: unbounded)")
	fs.IntVar(&c.MaxPushes, "max-pushes", c.MaxPushes, "concurrent pushes per publishing point; one more gets 503 with Retry-After (0: unbounded)")
	fs.DurationVar(&c.StreamExpiry, "stream-expiry", c.StreamExpiry, "remove a stream that never received a fragment this long after its last push, and list a live stream that received nothing for this long as abandoned (0: never)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "close a response that makes no progress (its client reads nothing) for this long (0: never)")
	fs.Var(&lf.fresh, "min-free", "free space the data directory needs for /readyz to answer ready, e.g. 64MiB")
}

// apply lays the limit flags that were set over cfg.
func (lf *limitFlags) apply(fs *flag.FlagSet, cfg config.Config) config.Config {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "ingest-idle":
			cfg.IngestIdle = lf.c.IngestIdle
		case "ingest-min-rate":
			cfg.IngestMinRate = lf.c.IngestMinRate
		case "ingest-rate-window":
			cfg.IngestRateWindow = lf.c.IngestRateWindow
		case "ingest-memory":
			cfg.IngestMemory = int64(lf.memory)
		case "max-pushes":
			cfg.MaxPushes = lf.c.MaxPushes
		case "stream-expiry":
			cfg.StreamExpiry = lf.c.StreamExpiry
		case "write-timeout":
			cfg.WriteTimeout = lf.c.WriteTimeout
		case "min-free":
			cfg.MinFree = int64(lf.fresh)
		}
	})
	return cfg
}

// writeTimeoutFlag registers --write-timeout alone, for the roles without
// the shared role flags (scheduler, sender).
func writeTimeoutFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("write-timeout", config.Defaults().WriteTimeout, "close a response that makes no progress (its client reads nothing) for this long (0: never)")
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
	limit := cfg.IngestMemory + memoryHeadroom
	debug.SetMemoryLimit(limit)
	log.Debug("soft memory limit", "bytes", limit)
}
