package player

import (
	"flag"
	"os"
	"testing"
)

// TestMain raises the default test parallelism: the session tests run in
// real time and spend nearly all of it waiting (on timers and throttled
// test servers), so GOMAXPROCS-bound parallelism would only serialise them.
// An explicit -test.parallel still wins.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(m.Run())
}
