package player

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/pause"
)

// RunSessions runs n independent sessions of cfg at once, a load test. The
// session starts are spread evenly over ramp (0 starts them together). Each
// session gets its own ID (cfg.SessionID, if set, suffixed with its index)
// and shares cfg.Client. The reports come back in session order, with their
// aggregate.
func RunSessions(ctx context.Context, cfg Config, n int, ramp time.Duration) ([]Report, Aggregate) {
	if n < 1 {
		n = 1
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(DefaultTimeout, n)
	}
	start := time.Now()
	reports := make([]Report, n)
	var wg sync.WaitGroup
	for i := range n {
		c := cfg
		c.Index = i
		if cfg.SessionID != "" {
			c.SessionID = fmt.Sprintf("%s-%d", cfg.SessionID, i)
		} else {
			c.SessionID = ""
		}
		if c.Logger != nil {
			c.Logger = c.Logger.With("session", i)
		}
		var delay time.Duration
		if ramp > 0 && n > 1 {
			delay = ramp * time.Duration(i) / time.Duration(n)
		}
		wg.Go(func() {
			if err := pause.For(ctx, delay); err != nil {
				reports[i] = Report{
					Session: i, URL: c.URL, Format: c.Format, StartupMS: -1, Error: "not started: " + err.Error(),
					HTTPStatus: map[string]int{}, FragmentsByKind: map[string]int{}, Bitrates: []int64{},
				}
				return
			}
			reports[i], _ = Run(ctx, c)
		})
	}
	wg.Wait()
	return reports, Summarize(reports, time.Since(start))
}
