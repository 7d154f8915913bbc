// Package pause waits for a duration or the end of a context, whichever
// comes first.
package pause

import (
	"context"
	"time"
)

// For waits for d or the end of ctx. It returns ctx.Err() when ctx ended
// first (or had already ended), nil when d elapsed. A d of zero or less
// does not wait.
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
