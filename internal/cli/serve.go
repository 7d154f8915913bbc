package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/scheduler"
	"github.com/sluice-media/sluice/internal/server"
	"github.com/sluice-media/sluice/internal/webui"
)

const serveSummary = `Runs every role in one process over a local data directory: ingest (encoder pushes),
origin (Smooth, DASH, HLS), the status page at / and /metrics. Unless --no-demo is given it
also starts a demo: a looping live channel "demo" pushed from the bundled sample, and an
on-demand asset "demo-vod" imported from it. It accepts pushes to any point name
(--points-any, on by default here; the ingest and origin roles accept only the points
they are configured with), e.g. point "live":

  ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=25 -f lavfi -i sine -c:v libx264 -g 50 \
    -c:a aac -f ismv -movflags isml+frag_keyframe 'http://127.0.0.1:8080/live.isml/Streams(live)'`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		noDemo, pointsAny    *bool
		playerDir, senderRAM *string
		tokenTTL             *time.Duration
		of                   openFlags
	)
	cfg, log, err := parseRole("serve", serveSummary, args, stderr, func(fs *flag.FlagSet) func(config.Config) (config.Config, error) {
		noDemo = fs.Bool("no-demo", false, "do not start the demo channel and asset")
		pointsAny = fs.Bool("points-any", true, "accept pushes to any publishing point name, not only the configured ones (--points-any=false: only the points of --point and the YAML, plus live and demo)")
		playerDir = fs.String("player-dir", defaultPlayerDir(), "directory holding the npm-installed players (dashjs, hls.js, shaka-player) for the status page")
		senderRAM = fs.String("sender-ram", "256M", "RAM budget of the in-process sender (blocks pinned ahead of the /s/ sessions)")
		tokenTTL = fs.Duration("token-ttl", time.Minute, "how long the in-process sender accepts an /s/ session's token without a renewal (renewed every third of it while the session lives)")
		of.register(fs)
		return nil
	})
	if err != nil {
		return err
	}
	cfg.PointsAny = *pointsAny
	for _, name := range []string{"live", demoChannel} {
		if _, ok := cfg.Point(name); !ok && (name != demoChannel || !*noDemo) {
			cfg.Points = append(cfg.Points, config.Point{Name: name})
		}
	}
	srv, err := server.New(cfg, server.Roles{Ingest: true, Origin: true}, log)
	if err != nil {
		return err
	}
	memoryLimit(cfg, log)
	ram, err := parseBytes(*senderRAM)
	if err != nil || ram <= 0 {
		return fmt.Errorf("--sender-ram %q: want a positive size such as 256M", *senderRAM)
	}
	// One scheduler and one sender in process (over the store): /s/ serves
	// per-session manifests whose segments come from the sender at /b/.
	sf := schedFlags{cfg: scheduler.DefaultConfig()}
	sf.cfg.TokenTTL = *tokenTTL
	lc, err := newLocalCluster(srv, cfg, sf, ram, "", log)
	if err != nil {
		return err
	}
	sessions, err := sessionGuard(cfg.SignedURLs, lc.sched, srv, log)
	if err != nil {
		return err
	}
	lc.sessions = of.limit(sessions, srv, log)
	ui := webui.New(srv.Store, *playerDir, log)
	ui.SetCluster(lc.sched) // the cluster panel of the status page
	srv.SetHome(lc.handler(ui))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return srv.Serve(ctx, func(addr string) {
		lc.start(ctx, addr)
		base := "http://" + addr
		fmt.Fprintf(stdout, "Sluice is serving on %s (data in %s)\n", base, cfg.Data)
		fmt.Fprintf(stdout, "  status page:   %s/\n", base)
		if cfg.PointsAny {
			fmt.Fprintf(stdout, "  push to:       %s/<point>.isml/Streams(<stream>), e.g. %s/live.isml/Streams(live)\n", base, base)
		} else {
			fmt.Fprintf(stdout, "  push to:       %s/live.isml/Streams(live)\n", base)
		}
		fmt.Fprintf(stdout, "  sessions:      %s/s/<point>/manifest.mpd | master.m3u8 (segments from the sender at /b/)\n", base)
		if !*noDemo {
			fmt.Fprintf(stdout, "  demo (live):   %s/%s.isml/manifest.mpd | master.m3u8 | Manifest\n", base, demoChannel)
			fmt.Fprintf(stdout, "  demo (VOD):    %s/%s.isml/manifest.mpd | master.m3u8 | Manifest\n", base, demoAsset)
			fmt.Fprintf(stdout, "  demo sessions: %s/s/%s/manifest.mpd | %s/s/%s/master.m3u8\n", base, demoChannel, base, demoAsset)
			go startDemo(ctx, srv, base, log)
		}
	})
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
