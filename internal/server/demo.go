package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-media/sluice"
	"github.com/sluice-media/sluice/internal/atomicfile"
	"github.com/sluice-media/sluice/internal/importer"
	"github.com/sluice-media/sluice/internal/mp4src"
	"github.com/sluice-media/sluice/internal/push"
)

// The demo of `sluice serve` (Roles.Demo): a looping live channel and an
// on-demand asset imported from the bundled sample.
const (
	DemoChannel = "demo"
	DemoAsset   = "demo-vod"
)

// startDemo imports the bundled sample as the demo VOD asset (once) and
// pushes it in a loop, epoch-anchored, into the demo channel through the
// server's own ingest URL — the same path a real encoder takes.
func startDemo(ctx context.Context, srv *Server, base string, log *slog.Logger) {
	dir := filepath.Join(srv.Store.Dir(), ".demo")
	sample := filepath.Join(dir, "sample.mp4")
	if err := writeIfChanged(sample, sluice.SampleMP4); err != nil {
		log.Error("demo: write sample", "err", err)
		return
	}
	if _, err := srv.Store.Point(DemoAsset); err != nil {
		res, err := importer.Import(ctx, sample, importer.Options{DataDir: srv.Store.Dir(), Asset: DemoAsset, Log: log})
		if err != nil {
			log.Error("demo: import VOD asset", "err", err)
		} else {
			log.Info("demo: imported VOD asset", "asset", res.Asset, "fragments", res.Fragments)
		}
	}
	src, err := mp4src.Open(sample, mp4src.Options{})
	if err != nil {
		log.Error("demo: open sample", "err", err)
		return
	}
	defer src.Close()
	url := base + "/" + DemoChannel + ".isml/Streams(" + DemoChannel + ")"
	for ctx.Err() == nil {
		_, err := push.Push(ctx, src, push.Options{URLs: []string{url}, Loop: true, Epoch: true, Retry: true, Log: log,
			Chunk: srv.cfg.Serve.DemoChunk})
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("demo: push ended; restarting", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, atomicfile.NoSync)
}
