package cli

import (
	"runtime/debug"
	"testing"
)

// TestDescribeBuild: the version names the commit from Go's own stamp
// (vcs.*) when the build has one, else the one linked in by
// scripts/build.sh, else says it is unknown.
func TestDescribeBuild(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "aaaa"}, {Key: "vcs.time", Value: "2026-12-07T10:00:00Z"}}
	for _, tc := range []struct {
		name     string
		settings []debug.BuildSetting
		rev      string
		dirty    bool
		want     string
	}{
		{"go's stamp", vcs, "", false, "sluice v1.2.3 commit aaaa 2026-12-07T10:00:00Z go1.x"},
		{"go's stamp wins", append(vcs, debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "bbbb", false, "sluice v1.2.3 commit aaaa (modified) 2026-12-07T10:00:00Z go1.x"},
		{"linked in", nil, "bbbb", false, "sluice v1.2.3 commit bbbb go1.x"},
		{"linked in, modified tree", nil, "bbbb", true, "sluice v1.2.3 commit bbbb (modified) go1.x"},
		{"neither", nil, "", false, "sluice v1.2.3 commit unknown go1.x"},
	} {
		bi := &debug.BuildInfo{GoVersion: "go1.x", Main: debug.Module{Version: "v1.2.3"}, Settings: tc.settings}
		if got := describeBuild(bi, tc.rev, tc.dirty); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
