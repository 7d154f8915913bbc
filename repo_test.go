package sluice_test

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/cli"
)

// outside matches references that do not resolve for someone who clones the
// repository: the design notes and research of the project's workspace, and
// the numbers of its issues. Docs, comments and help texts point at docs/
// (docs/architecture.md for the overview) instead.
var outside = regexp.MustCompile(`shared/|DESIGN|seeds? 0|(?i:\bissues? [0-9]+\b|\bissue's\b)`)

// TestNoReferencesOutsideRepo greps the tree — Go files, docs, README,
// scripts, bench and the web sources (not node_modules) — for references
// that leave the repository.
func TestNoReferencesOutsideRepo(t *testing.T) {
	exts := map[string]bool{".go": true, ".md": true, ".sh": true, ".js": true, ".mjs": true, ".html": true,
		".css": true, ".yaml": true, ".yml": true, ".lua": true, ".json": false}
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "node_modules" || name == ".git" || (name == "testdata" && path != "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !exts[filepath.Ext(path)] || path == "repo_test.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for line := 1; sc.Scan(); line++ {
			if m := outside.FindString(sc.Text()); m != "" {
				t.Errorf("%s:%d refers outside the repository (%q): %s", path, line, m, strings.TrimSpace(sc.Text()))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("read only %d files; is the test running at the repository root?", n)
	}
}

// TestREADMECommands: the README's command table has a row for every
// command `sluice --help` lists.
func TestREADMECommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Main(context.Background(), []string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("sluice --help: exit %d: %s", code, errb.String())
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	inList := false
	for _, l := range strings.Split(out.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "Commands:"):
			inList = true
		case inList && strings.HasPrefix(l, "  "):
			cmds = append(cmds, strings.Fields(l)[0])
		case inList:
			inList = false
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in sluice --help:\n%s", len(cmds), out.String())
	}
	for _, c := range cmds {
		if !bytes.Contains(readme, []byte("| `sluice "+c+"`")) && !bytes.Contains(readme, []byte("| `sluice "+c+" ")) {
			t.Errorf("README.md's command table has no row for `sluice %s`", c)
		}
	}
}

// TestBuildStampsCommit: the README's build script (scripts/build.sh) links
// in the commit it builds from, so `sluice --version` names it, also where
// Go does not stamp it itself (GOFLAGS=-buildvcs=false, a git worktree).
func TestBuildStampsCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the test needs git and a checkout): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("bash", filepath.Join("scripts", "build.sh"), bin)
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
}
