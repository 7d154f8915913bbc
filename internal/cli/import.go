package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/sluice-media/sluice/internal/importer"
	"github.com/sluice-media/sluice/internal/mp4src"
)

const importSynopsis = `[flags] <movie.mp4> <asset>

Turns a progressive MP4 (H.264, HEVC or AV1 video; AAC, Opus, AC-3 or E-AC-3
audio) into an on-demand asset of the data directory, served by 'sluice serve'
/ 'sluice origin' as DASH and HLS, and as Smooth but for AV1 and Opus. The file is cut into fragments at its video key frames, passed
through the same parser as a live push, and stored; the asset appears in one
rename when it is complete, so a running server never sees half of it.

<asset> names the asset: up to four '/'-separated parts of letters, digits,
'_', '-' and '.', e.g. 'demo' or 'movies/big-buck-bunny'.

Side-car subtitle files next to the movie are imported with it as text
tracks (wvtt, served as DASH text tracks and HLS WebVTT subtitles):
<movie>.vtt, <movie>.<lang>.vtt and <movie>.<lang>.caption.vtt (WebVTT), the
same with .ttml or .dfxp (TTML, its paragraphs), where <lang> is a BCP 47
language tag (en, pt-BR) and .caption (or .cc, .sdh) marks closed captions;
--no-sidecars leaves them out.

When it is done it prints the URLs a server on the data directory plays the
asset at (--server names that server; 'sluice serve' listens on
http://127.0.0.1:8080 by default). The progress bar is drawn only when
stderr is a terminal.

Example:
  sluice import testdata/sample/sample.mp4 my-movie --data ./data`

// runImport implements `sluice import`.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import", importSynopsis, stderr)
	data := fs.String("data", "./data", "data directory of the store (the same as for 'sluice serve')")
	force := fs.Bool("force", false, "replace an asset of the same name (by default an existing asset is an error)")
	minFrag := fs.Duration("min-fragment", time.Second, "shortest fragment: key frames closer than this to the previous cut do not start a fragment")
	quiet := fs.Bool("quiet", false, "no progress bar (there is none when stderr is not a terminal)")
	server := fs.String("server", "http://127.0.0.1:8080", "base URL of the server on --data, for the play URLs printed at the end")
	verbose := fs.Bool("v", false, "debug logging")
	noSidecars := fs.Bool("no-sidecars", false, "do not import the side-car subtitle files next to the movie (<movie>[.<lang>[.caption]].vtt, .ttml, .dfxp)")
	pos, err := toolArgs(fs, args, 2, "need a file and an asset name")
	if err != nil {
		return err
	}
	opts := importer.Options{
		DataDir: *data, Asset: pos[1], Force: *force,
		Source: mp4src.Options{MinFragment: *minFrag},
		Log:    toolLogger(stderr, *verbose),
	}
	if !*noSidecars {
		if opts.Sidecars, err = importer.FindSidecars(pos[0]); err != nil {
			return fmt.Errorf("look for side-car files: %w", err)
		}
	}
	if !*quiet && isTerminal(stderr) {
		opts.Progress = stderr
	}
	res, err := importer.Import(ctx, pos[0], opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %s: %d tracks, %d fragments, %.3f s, %d bytes in %s\n",
		res.Asset, len(res.Tracks), res.Fragments, res.Duration.Seconds(), res.Bytes, res.Dir)
	printPlayURLs(stdout, strings.TrimSuffix(*server, "/"), res.Asset)
	return nil
}

// printPlayURLs lists the URLs a server at base plays point at: the three
// formats from the origin, and the per-session manifests of the scheduler
// ('sluice serve' runs one).
func printPlayURLs(w io.Writer, base, point string) {
	fmt.Fprintf(w, "play it (with a server on this data directory at %s):\n", base)
	fmt.Fprintf(w, "  DASH:    %s/%s.isml/manifest.mpd\n", base, point)
	fmt.Fprintf(w, "  HLS:     %s/%s.isml/master.m3u8\n", base, point)
	fmt.Fprintf(w, "  Smooth:  %s/%s.isml/Manifest\n", base, point)
	fmt.Fprintf(w, "  session: %s/s/%s/manifest.mpd | %s/s/%s/master.m3u8\n", base, point, base, point)
}

// isTerminal reports whether w is a terminal (a progress bar redraws one
// line; into a file or a pipe it would be noise).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
