package scheduler

import (
	"errors"
	"fmt"
)

// Ready reports whether the scheduler can serve sessions (its /readyz):
// nil when at least one sender of the live set has answered a batch and,
// for a timeline that can tell (OriginTimeline), an origin answered the
// index lately; else the reasons.
func (s *Scheduler) Ready() error {
	var errs []error
	s.mu.Lock()
	members, answered := len(s.senders), 0
	for _, sc := range s.senders {
		if sc.up && !sc.okAt.IsZero() {
			answered++
		}
	}
	s.mu.Unlock()
	if answered == 0 {
		errs = append(errs, fmt.Errorf("no live sender (%d in the set, none has answered a batch)", members))
	}
	if r, ok := s.timeline.(interface{ Ready() error }); ok {
		if err := r.Ready(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
