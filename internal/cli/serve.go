package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/server"
)

const serveSummary = `Runs every role in one process over a local data directory: ingest (encoder pushes),
origin (Smooth, DASH, HLS), the status page at / and /metrics. Unless --no-demo is given it
also starts a demo: a looping live channel "demo" pushed from the bundled sample, and an
on-demand asset "demo-vod" imported from it. It accepts pushes to any point name
(--points-any, on by default here; the ingest and origin roles accept only the points
they are configured with), e.g. point "live":

  ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine -c:v libx264 -g 50 \
    -c:a aac -f ismv -movflags isml+frag_keyframe 'http://127.0.0.1:8080/live.isml/Streams(live)'`

// serveRole is `sluice serve`.
func serveRole() role {
	return role{name: "serve", summary: serveSummary,
		roles: server.Roles{Ingest: true, Origin: true, Local: true, StatusPage: true, Demo: true},
		flags: []flagGroup{storeFlags, pacingFlags, signedFlags, serveFlags},
		check: func(c *config.Config) error {
			// Publishing point "live" always accepts pushes, and the demo
			// channel unless there is no demo.
			for _, name := range []string{"live", server.DemoChannel} {
				if _, ok := c.Point(name); !ok && (name != server.DemoChannel || !c.Serve.NoDemo) {
					c.Points = append(c.Points, config.Point{Name: name})
				}
			}
			return nil
		},
		started: serveStarted}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serveRole().run(ctx, args, stdout, stderr)
}

// serveStarted prints where everything is.
func serveStarted(_ context.Context, _ *server.Server, cfg config.Config, addr string, stdout io.Writer, _ *slog.Logger) {
	base := "http://" + addr
	fmt.Fprintf(stdout, "Sluice is serving on %s (data in %s)\n", base, cfg.Data)
	fmt.Fprintf(stdout, "  status page:   %s/\n", base)
	if cfg.PointsAny {
		fmt.Fprintf(stdout, "  push to:       %s/<point>.isml/Streams(<stream>), e.g. %s/live.isml/Streams(live)\n", base, base)
	} else {
		fmt.Fprintf(stdout, "  push to:       %s/live.isml/Streams(live)\n", base)
	}
	fmt.Fprintf(stdout, "  sessions:      %s/s/<point>/manifest.mpd | master.m3u8 (segments from the sender at /b/)\n", base)
	if !cfg.Serve.NoDemo {
		ch, vod := server.DemoChannel, server.DemoAsset
		fmt.Fprintf(stdout, "  demo (live):   %s/%s.isml/manifest.mpd | master.m3u8 | Manifest\n", base, ch)
		fmt.Fprintf(stdout, "  demo (VOD):    %s/%s.isml/manifest.mpd | master.m3u8 | Manifest\n", base, vod)
		fmt.Fprintf(stdout, "  demo sessions: %s/s/%s/manifest.mpd | %s/s/%s/master.m3u8\n", base, ch, base, vod)
	}
}

// defaultPlayerDir finds web/node_modules next to the working directory or
// the executable.
func defaultPlayerDir() string {
	cands := []string{filepath.Join("web", "node_modules")}
	if exe, err := os.Executable(); err == nil {
		d := filepath.Dir(exe)
		cands = append(cands, filepath.Join(d, "web", "node_modules"), filepath.Join(d, "..", "web", "node_modules"))
	}
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
	}
	return cands[0]
}
