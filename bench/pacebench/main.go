// Command pacebench holds the helper programs of bench/pacing.sh, the
// client-controlled pacing benchmark (docs/pacing.md): a userspace delay line for
// network namespaces (this kernel has no netem), the competing
// latency-sensitive flow (a TCP echo server and a 10 ms ping), and the table
// that compares the runs.
//
//	pacebench delay -a r0 -b r1 -delay 10ms      # in the router namespace
//	pacebench echo -listen :9000                 # next to the origin
//	pacebench ping -addr 10.98.0.1:9000 -out ping.txt -duration 60s
//	pacebench table -dir RESULTS                 # after the runs
//
// Every command stops by itself (a duration, or SIGINT/SIGTERM).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pacebench:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: pacebench delay|echo|ping|table [flags]")
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"delay": runDelay, "echo": runEcho, "ping": runPing, "table": runTable,
	}
	f, ok := cmds[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (want delay, echo, ping or table)", args[0])
	}
	return f(ctx, args[1:], stdout, stderr)
}
