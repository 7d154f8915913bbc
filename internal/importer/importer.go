// Package importer turns a progressive MP4 file into an on-demand asset of
// the local store. The file is converted by mp4src into the same Smooth
// (ismv) byte stream an encoder pushes, parsed by media.StreamParser exactly
// as the ingest parses a push, and stored through the store API, so an
// imported asset is indistinguishable from a live recording that ended.
//
// The asset is built in a hidden temporary store directory inside the data
// directory and moved into place with one rename when it is complete, so a
// running server never sees a half-written asset.
package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/mp4src"
	"github.com/sluice-media/sluice/internal/store"
)

// StreamID is the ingest stream id under which imported tracks are stored.
const StreamID = "import"

// ErrExists means the asset is already in the data directory.
var ErrExists = errors.New("asset already exists")

// Options configures an import.
type Options struct {
	// DataDir is the store's data directory (as for `sluice serve`).
	DataDir string
	// Asset names the on-demand publishing point to create, e.g. "movies/demo".
	Asset string
	// Force replaces an existing asset of the same name.
	Force bool
	// Source tunes how the file is cut into fragments.
	Source mp4src.Options
	// Log receives events; nil discards them.
	Log *slog.Logger
	// Progress, when not nil, receives a progress bar.
	Progress io.Writer
	// Sidecars are WebVTT or TTML files stored as wvtt text tracks of the
	// asset (see FindSidecars), each under stream id text-<n>.
	Sidecars []Sidecar
}

// Result describes the imported asset.
type Result struct {
	Asset     string
	Dir       string // final directory of the asset
	Tracks    []string
	Fragments int
	Bytes     int64
	Duration  time.Duration // of the reference (first video) track
}

// Import converts the MP4 file at path into the asset opts.Asset.
func Import(ctx context.Context, path string, opts Options) (res Result, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !store.ValidPointName(opts.Asset) {
		return res, fmt.Errorf("invalid asset name %q: use up to four '/'-separated parts of letters, digits, '_', '-' and '.', not starting with '.' nor ending in .isml/.ism", opts.Asset)
	}
	if opts.DataDir == "" {
		return res, errors.New("no data directory")
	}
	dest := filepath.Join(opts.DataDir, filepath.FromSlash(opts.Asset))
	if _, err := os.Stat(dest); err == nil && !opts.Force {
		return res, fmt.Errorf("%s (%s): %w; use --force to replace it", opts.Asset, dest, ErrExists)
	}

	src, err := mp4src.Open(path, opts.Source)
	if err != nil {
		return res, err
	}
	defer src.Close()

	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return res, fmt.Errorf("create data directory: %w", err)
	}
	tmp := filepath.Join(opts.DataDir, fmt.Sprintf(".import-%s-%d", strings.ReplaceAll(opts.Asset, "/", "_"), os.Getpid()))
	if err := os.RemoveAll(tmp); err != nil {
		return res, fmt.Errorf("clear %s: %w", tmp, err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("remove temporary directory: %w", rerr)
		}
	}()
	st, err := store.Open(tmp, log)
	if err != nil {
		return res, fmt.Errorf("open temporary store: %w", err)
	}
	point, err := st.Create(opts.Asset)
	if err != nil {
		return res, fmt.Errorf("create asset: %w", err)
	}

	var bar *progressbar.ProgressBar
	total := src.Periods() * len(src.Tracks())
	if opts.Progress != nil {
		bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(opts.Progress),
			progressbar.OptionSetDescription("importing "+opts.Asset),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("fragments"),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	log.Info("import starting", "file", path, "asset", opts.Asset, "tracks", len(src.Tracks()),
		"periods", src.Periods(), "duration", src.LoopDuration())

	res, err = feed(ctx, src, point, bar)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(opts.Progress)
	}
	if err != nil {
		return res, err
	}
	for i, sc := range opts.Sidecars {
		id, n, err := addSidecar(point, sc, fmt.Sprintf("text-%d", i+1))
		if err != nil {
			return res, err
		}
		log.Info("side-car text track imported", "file", sc.Path, "track", id, "language", sc.Language, "fragments", n)
		res.Tracks = append(res.Tracks, id)
		res.Fragments += n
	}
	res.Asset = opts.Asset
	res.Dir = dest
	if err := point.SetVOD(); err != nil {
		return res, fmt.Errorf("mark asset on-demand: %w", err)
	}
	if err := move(filepath.Join(tmp, filepath.FromSlash(opts.Asset)), dest, opts.Force); err != nil {
		return res, err
	}
	log.Info("import finished", "asset", opts.Asset, "dir", dest, "tracks", len(res.Tracks),
		"fragments", res.Fragments, "duration", res.Duration)
	return res, nil
}

// feed streams the file through a StreamParser into the point.
func feed(ctx context.Context, src *mp4src.Source, point *store.Point, bar *progressbar.ProgressBar) (Result, error) {
	var res Result
	pr, pw := io.Pipe()
	go func() {
		_, err := src.WriteAll(pw)
		pw.CloseWithError(err)
	}()
	// Unblock the writer on every return path.
	defer pr.CloseWithError(errors.New("import ended"))

	maxBox := uint64(src.MaxFragmentSize()) + uint64(len(src.Header())) + 1<<20
	parser := media.NewStreamParser(pr, maxBox, nil)
	var ids map[uint32]string
	ended := false
	for !ended {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("import cancelled: %w", err)
		}
		ev, err := parser.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("parse stream at byte %d: %w", parser.Offset(), err)
		}
		switch ev.Kind {
		case media.EventHeader:
			ids, err = point.SetHeader(StreamID, ev.Header)
			if err != nil {
				return res, fmt.Errorf("store header: %w", err)
			}
			for _, t := range ev.Header.Tracks {
				res.Tracks = append(res.Tracks, ids[t.TrackID])
			}
		case media.EventFragment:
			f := ev.Fragment
			id, ok := ids[f.Info.TrackID]
			if !ok {
				return res, fmt.Errorf("fragment of undeclared track %d", f.Info.TrackID)
			}
			if _, err := point.AddFragment(id, f); err != nil {
				return res, fmt.Errorf("store fragment %s@%d: %w", id, f.Info.Start, err)
			}
			res.Fragments++
			res.Bytes += int64(len(f.Data))
			if bar != nil {
				_ = bar.Add(1)
			}
		case media.EventEnd:
			for _, id := range res.Tracks {
				if err := point.EndTrack(id); err != nil {
					return res, fmt.Errorf("end track %s: %w", id, err)
				}
			}
			ended = true
		}
	}
	if !ended {
		return res, errors.New("stream ended without its end box")
	}
	if res.Fragments == 0 {
		return res, errors.New("the file produced no fragment")
	}
	res.Duration = src.LoopDuration()
	return res, nil
}

// move puts the finished asset directory in place. With force an existing
// asset is first renamed aside and removed after the new one is in place.
func move(from, to string, force bool) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("create asset parent directory: %w", err)
	}
	var old string
	if _, err := os.Stat(to); err == nil {
		if !force {
			return fmt.Errorf("%s: %w", to, ErrExists)
		}
		old = filepath.Join(filepath.Dir(to), fmt.Sprintf(".replaced-%s-%d", filepath.Base(to), os.Getpid()))
		if err := os.Rename(to, old); err != nil {
			return fmt.Errorf("move the existing asset aside: %w", err)
		}
	}
	if err := os.Rename(from, to); err != nil {
		if old != "" {
			_ = os.Rename(old, to)
		}
		return fmt.Errorf("move the asset into place: %w", err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove the replaced asset: %w", err)
		}
	}
	if d, err := os.Open(filepath.Dir(to)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
