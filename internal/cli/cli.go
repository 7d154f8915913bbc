// Package cli implements the sluice command line: one subcommand per role or tool.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
)

// command is one subcommand. run parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":  {"run every role in one process over a local data directory, with a demo channel", runServe},
		"ingest": {"receive encoder pushes (Smooth/ismv and CMAF) and keep them for origins to pull", runIngest},
		"origin": {"serve Smooth Streaming, DASH and HLS from stored fragments (and take pushes)", runOrigin},
		"push":   {"play an MP4 file into an ingest as a live encoder would", runPush},
		"import": {"turn a progressive MP4 (H.264/AAC) into an on-demand asset", runImport},
		"play":   {"headless DASH/HLS/Smooth player and load generator", runPlay},

		"distribution": {"caching tier in front of origins: pulls on demand, coalesces, fails over", runDistribution},
		"archive":      {"cut a range of a channel's archive into an on-demand asset (archive cut)", runArchive},
		"sender":       {"hold a share of the cluster's blocks in RAM and disk and send them to players (docs/cluster.md)", runSender},
		"sender-load":  {"write an on-demand asset to the senders of a cluster (each block to its R owners)", runSenderLoad},
		"cluster-get":  {"GET an internal URL of the cluster, signed with the cluster key (owner-set listing, stats)", runClusterGet},
		"sign-url":     {"sign player URLs for servers that require them (--signed-urls; docs/origin.md)", runSignURL},
		"scheduler":    {"own player sessions: per-session manifests pointing at the senders, look-ahead reservations (docs/cluster.md)", runScheduler},
	}
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout, cmds)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, version())
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	if wantsHelp(args[1:]) {
		// A help the user asked for is the output of the command: it goes
		// to stdout (and the exit code is 0), so `sluice x --help | less`
		// works.
		stderr = stdout
	}
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sluice %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// wantsHelp reports whether args ask for help: -h, -help or --help before
// the end of the flags ("--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// commit and modified name the git commit the binary was built from and
// whether the tree had uncommitted changes ("true"), when the build stamps
// them at link time: scripts/build.sh passes
// -ldflags "-X github.com/sluice-media/sluice/internal/cli.commit=<rev> -X ….modified=<bool>".
// They are constants of the build, written by the linker only.
var commit, modified string

// version describes the running binary from its build information: the
// module version (a tag, or "(devel)" for a build of a checkout), the
// version control revision — Go's own stamp (vcs.revision, with
// -buildvcs in a plain git checkout) or else the one scripts/build.sh
// links in — with its time and whether the tree was modified, and the Go
// version. A build with neither says "commit unknown".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "sluice (no build information)"
	}
	return describeBuild(bi, commit, modified == "true")
}

// describeBuild is version's text for the build information bi and the
// commit linked in (stampedRev, stampedDirty), used when bi has no
// vcs.revision.
func describeBuild(bi *debug.BuildInfo, stampedRev string, stampedDirty bool) string {
	v := "sluice " + bi.Main.Version
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		rev, dirty = stampedRev, stampedDirty
	}
	switch {
	case rev == "":
		v += " commit unknown"
	case dirty:
		v += " commit " + rev + " (modified)"
	default:
		v += " commit " + rev
	}
	if at != "" {
		v += " " + at
	}
	return v + " " + bi.GoVersion
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "Usage: sluice <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'sluice <command> --help' for the flags of a command, 'sluice --version' for the build.")
	fmt.Fprintln(w, "How the roles fit together: docs/architecture.md.")
}

// newFlags returns a flag set that prints its usage with a summary line.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sluice "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}
