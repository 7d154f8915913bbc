// Command sluice is the Sluice streaming media delivery platform: every role
// (serve, ingest, origin) and tool (push, import, play) is a subcommand.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-media/sluice/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
