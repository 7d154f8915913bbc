package cli

import (
	"context"
	"io"

	"github.com/sluice-media/sluice/internal/server"
)

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runRole(ctx, "ingest",
		"Receives encoder pushes at POST /<pp>.isml/Streams(<id>) (Smooth/ismv long POST, CMAF long POST per\n"+
			"track, or one POST/PUT per CMAF segment) and keeps them for origins, which pull with\n"+
			"GET /<pp>.isml/StreamManifest, /Streams(<id>) and /Streams(<id>)/StartTime(<t>).",
		server.Roles{Ingest: true}, args, stdout, stderr)
}
