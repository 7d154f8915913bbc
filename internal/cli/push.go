package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/mp4src"
	"github.com/sluice-media/sluice/internal/push"
)

const pushSynopsis = `[flags] <file.mp4> <ingest-url> [<standby-url>...]

Plays a progressive MP4 (H.264 video, AAC audio) into an ingest as a live
Smooth Streaming (ismv) encoder does: one long chunked POST carrying ftyp, the
live server manifest, moov, then one moof+mdat per track every fragment
(cut at the video key frames), in real time, ended by an empty mfra.

The ingest URL names the publishing point and the stream, e.g.
  http://127.0.0.1:8080/live/demo.isml/Streams(demo)
Extra URLs are standbys used with --retry (round robin).

With --epoch (the default) fragment times come from the wall clock: the file
loops on a timeline that starts at the Unix epoch, so two pushers started at
different moments against two ingests send identical fragments for the same
wall-clock period. Ctrl-C ends the stream cleanly.

With --chunk (e.g. 500ms) each fragment goes out as CMAF chunks of that
duration, each when its last sample's time is reached, as a low-latency
encoder sends them: the origin lists them as LL-HLS parts.

Examples:
  sluice push --loop testdata/sample/sample.mp4 'http://127.0.0.1:8080/live/demo.isml/Streams(demo)'
  sluice push --duration 30s --token s3cret movie.mp4 'http://ingest-a:8080/live/ch1.isml/Streams(ch1)' 'http://ingest-b:8080/live/ch1.isml/Streams(ch1)' --retry`

// runPush implements `sluice push`.
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("push", pushSynopsis, stderr)
	loop := fs.Bool("loop", false, "loop the file forever (until --duration or Ctrl-C)")
	duration := fs.Duration("duration", 0, "stop after this much media, e.g. 30s or 2h, rounded up to whole fragments (0: one pass over the file, or forever with --loop)")
	epoch := fs.Bool("epoch", true, "derive fragment times from the wall clock (Unix epoch), so redundant pushers produce identical fragments; --epoch=false starts at media time 0 and sends the first fragment at once")
	token := fs.String("token", "", "ingest token, sent as 'Authorization: Bearer <token>'; when empty, $SLUICE_INGEST_TOKEN is used (keeps the token out of the process list)")
	chunk := fs.Duration("chunk", 0, "send each fragment as CMAF chunks of this duration, e.g. 500ms (a low-latency encoder: each chunk leaves when its last sample's time is reached); 0: whole fragments")
	fast := fs.Bool("fast", false, "send as fast as the ingest reads instead of in real time (tests, back-filling)")
	probe := fs.Bool("probe", true, "send an empty POST first, so a refused point or token fails before any media is sent")
	retry := fs.Bool("retry", false, "after a lost connection or a 5xx answer reconnect (to the next URL), resending the header and the last 2 fragment periods; 4xx answers stay fatal")
	retryDelay := fs.Duration("retry-delay", time.Second, "pause before reconnecting with --retry")
	minFrag := fs.Duration("min-fragment", time.Second, "shortest fragment: key frames closer than this to the previous cut do not start a fragment")
	omitTfdt := fs.Bool("omit-tfdt", false, "leave tfdt out of the fragments (time only in the Smooth tfxd box), exactly like ffmpeg -f ismv")
	quiet := fs.Bool("quiet", false, "no progress bar")
	verbose := fs.Bool("v", false, "log every fragment period (debug level)")
	pos, err := parseToolArgs(fs, args)
	if err != nil {
		return err
	}
	if *chunk < 0 {
		return errors.New("--chunk must not be negative")
	}
	if len(pos) < 2 {
		fs.Usage()
		return errors.New("need a file and an ingest URL")
	}
	for _, u := range pos[1:] {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("ingest URL %q: want http:// or https://", u)
		}
	}
	if *token == "" {
		*token = os.Getenv("SLUICE_INGEST_TOKEN")
	}
	log := toolLogger(stderr, *verbose)
	src, err := mp4src.Open(pos[0], mp4src.Options{MinFragment: *minFrag, OmitTfdt: *omitTfdt})
	if err != nil {
		return err
	}
	defer src.Close()
	for _, t := range src.Tracks() {
		log.Info("track", "id", t.TrackID, "kind", t.Kind, "codec", t.Codec, "bitrate", t.Bitrate,
			"timescale", t.Timescale, "width", t.Width, "height", t.Height, "language", t.Language)
	}
	opts := push.Options{
		URLs: pos[1:], Token: *token, Loop: *loop, Duration: *duration, Epoch: *epoch, Chunk: *chunk,
		Fast: *fast, Probe: *probe, Retry: *retry, RetryDelay: *retryDelay, Log: log,
	}
	if !*quiet && (!*loop || *duration > 0) {
		opts.Progress = stderr
	}
	res, err := push.Push(ctx, src, opts)
	if err != nil {
		return err
	}
	ts := float64(res.Timescale)
	fmt.Fprintf(stdout, "pushed %d fragments (%d periods, %d bytes), media time %.3f s to %.3f s, ingest answered %s\n",
		res.Fragments, res.Periods, res.Bytes, float64(res.First)/ts, float64(res.End)/ts, res.Status)
	return nil
}

// toolLogger returns the text logger of the push and import tools.
func toolLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// parseToolArgs parses flags that may appear before, between or after the
// positional arguments and returns the positionals.
func parseToolArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// toolArgs is parseToolArgs for a tool that takes exactly n operands; with
// another number it prints the usage and returns the error need (which
// names them).
func toolArgs(fs *flag.FlagSet, args []string, n int, need string) ([]string, error) {
	pos, err := parseToolArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		fs.Usage()
		return nil, errors.New(need)
	}
	return pos, nil
}
