package cli

import (
	"context"
	"io"

	"github.com/sluice-media/sluice/internal/server"
)

const ingestSummary = `Receives encoder pushes at POST /<pp>.isml/Streams(<id>) (Smooth/ismv long POST, CMAF long POST per
track, or one POST/PUT per CMAF segment) and keeps them for origins, which pull with
GET /<pp>.isml/StreamManifest, /Streams(<id>) and /Streams(<id>)/StartTime(<t>).

With --standby (YAML standby:) it is a push proxy: every push is forwarded, byte for byte, to the
standby ingest at the same path, so the encoder uploads one copy and the standby holds the same
fragments. The forwarding never slows the push down: a standby that is down or falls
--standby-buffer behind is dropped, and caught up from this ingest's store (the fragments it lacks,
then the push as it is stored) as soon as it answers again. /readyz: the data directory has --min-free
bytes free and takes a write. Pushes are bounded in memory, slots and progress (docs/ingest.md, Limits).

  sluice ingest --point live --standby http://ingest-b:8080`

// ingestRole is `sluice ingest`.
func ingestRole() role {
	return role{name: "ingest", summary: ingestSummary, roles: server.Roles{Ingest: true},
		flags: []flagGroup{storeFlags, pacingFlags, standbyFlags, signedFlags}}
}

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return ingestRole().run(ctx, args, stdout, stderr)
}
