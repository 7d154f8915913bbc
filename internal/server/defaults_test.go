package server

import (
	"testing"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/scheduler"
)

// TestDefaultsAgree: the defaults the configuration states are those of
// the packages that apply them.
func TestDefaultsAgree(t *testing.T) {
	if config.DefaultEtcdPrefix != membership.DefaultPrefix {
		t.Errorf("config.DefaultEtcdPrefix %q, membership.DefaultPrefix %q", config.DefaultEtcdPrefix, membership.DefaultPrefix)
	}
	d := scheduler.DefaultConfig()
	got := schedulerConfig(config.SchedulerDefaults(), "k", 2)
	if got.AltSend != d.AltSend || got.LookAhead != d.LookAhead || got.Guard != d.Guard {
		t.Errorf("scheduler regions %d/%d/%d, scheduler.DefaultConfig %d/%d/%d", got.AltSend, got.LookAhead, got.Guard, d.AltSend, d.LookAhead, d.Guard)
	}
}
