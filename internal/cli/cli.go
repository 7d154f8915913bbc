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

// version describes the running binary from its build information: the
// module version (a tag, or "(devel)" for a build of a checkout) and the
// version control revision, its time and whether the tree was modified.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "sluice (no build information)"
	}
	v := "sluice " + bi.Main.Version
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	if rev != "" {
		v += " commit " + rev + dirty
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
