package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildStampsCommit: the README's build script (scripts/build.sh) links
// in the commit it builds from, so `sluice --version` names it, also where
// Go does not stamp it itself (GOFLAGS=-buildvcs=false, a git worktree).
func TestBuildStampsCommit(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is missing from PATH: %v", err)
	}
	root := repoRoot(t)
	rev, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("bash", filepath.Join(root, "scripts", "build.sh"), bin)
	build.Env = append(build.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("sluice --version: %v", err)
	}
	want := "commit " + strings.TrimSpace(string(rev))
	if !strings.HasPrefix(string(out), "sluice ") || !strings.Contains(string(out), want) {
		t.Fatalf("sluice --version = %q, want it to name %s", out, want)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
