package cli

import (
	"context"
	"io"

	"github.com/sluice-media/sluice/internal/server"
)

func runOrigin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runRole(ctx, "origin",
		"Serves players from the data directory: Smooth (/<pp>.isml/Manifest), DASH (/<pp>.isml/manifest.mpd)\n"+
			"and HLS (/<pp>.isml/master.m3u8) from the same stored fragments, and takes encoder pushes\n"+
			"for the configured publishing points.",
		server.Roles{Ingest: true, Origin: true}, args, stdout, stderr)
}
