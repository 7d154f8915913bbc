package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/player"
)

// runPlay is `sluice play <manifest-url>`: a headless player and load generator.
func runPlay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("play", "[flags] <manifest-url>\n\n"+
		"Plays a DASH (.mpd), HLS (.m3u8) or Smooth Streaming (/Manifest) presentation without\n"+
		"decoding it: follows the live edge (or plays on-demand from the start), fetches one video\n"+
		"and one audio rendition, simulates the play-out buffer in real time, adapts the video\n"+
		"bitrate to the measured throughput, checks every fragment is moof+mdat, and reports\n"+
		"startup time, stalls, switches, bytes and errors. With --sessions N it is a load\n"+
		"generator of N independent players. Requests carry CMCD headers (CTA-5004, header\n"+
		"mode: br, bl, d, ot, sid, su, mtp, nor, plus tb, bs, sf, st) unless --cmcd=false.\n\n"+
		"A fragment that fails twice fails over: the manifest is reloaded (an on-demand one too)\n"+
		"and the fragment fetched once at the URL it now lists for the same position, at most two\n"+
		"reloads (\"failovers\" in --json); this follows a scheduler's session manifests to the\n"+
		"replicas when a sender dies. DASH: SegmentTemplate or SegmentList.\n\n"+
		"With --pacing cmcd|spec each fragment request also carries a pacing specification\n"+
		"(client-controlled pacing, docs/pacing.md): none while starting, after a stall or below\n"+
		"--min-buffer; otherwise --rate-multiplier × the fragment's encoding rate (up to twice\n"+
		"that at --min-buffer), lowered when the server reports loss in CMSD; cmcd sends it as\n"+
		"CMCD rtp, spec also as the Sluice-Pacing header with --burst. The server's CMSD\n"+
		"metadata is read back and reported under \"pacing\" in --json (any --pacing value).\n\n"+
		"With --low-latency a low-latency stream is played as one (docs/latency.md): LL-HLS with\n"+
		"blocking playlist reloads (_HLS_msn/_HLS_part), delta updates (_HLS_skip), parts and\n"+
		"preload hints, from PART-HOLD-BACK behind the end of the playlist; LL-DASH with each\n"+
		"segment requested at its availability (availabilityTimeOffset) and its chunked body\n"+
		"added to the buffer chunk by chunk, from the ServiceDescription's target latency. The\n"+
		"playback rate steers the latency to the target (DASH: the MPD's PlaybackRate bounds;\n"+
		"HLS: 0.95-1.05). A line per second on stderr (one session) gives the latency (wall\n"+
		"clock minus the playhead's program date time), rate, buffer and stalls; --json has them\n"+
		"under \"low_latency\". A stream that is not low-latency plays in standard mode and\n"+
		"the report says why.\n\n"+
		"Exit status: 0 when every session started playing and none failed, 1 otherwise.", stderr)
	format := fs.String("format", "auto", "manifest format: dash, hls, smooth, or auto (from the URL: .mpd, .m3u8, /Manifest)")
	duration := fs.Duration("duration", 0, "stop after this wall time (e.g. 20s, 2m); 0 = play an on-demand presentation to its end, a live one for 30s")
	sessions := fs.Int("sessions", 1, "number of independent sessions to run at once (load test); prints an aggregate")
	ramp := fs.Duration("ramp", 0, "spread the session starts evenly over this time (with --sessions)")
	jsonOut := fs.Bool("json", false, "print the report as JSON: one object; with --sessions > 1 one line per session, then an aggregate line with \"aggregate\":true")
	maxBitrate := bitrateFlag(0)
	fs.Var(&maxBitrate, "max-bitrate", "highest video bitrate to choose, bits/s with optional k/M/G suffix (e.g. 2.5M); 0 = no cap")
	buffer := secondsFlag(player.DefaultBuffer)
	fs.Var(&buffer, "buffer", "target buffer in seconds (or a duration such as 6s): no fragment is fetched ahead beyond it")
	startup := secondsFlag(player.DefaultStartup)
	fs.Var(&startup, "startup", "buffer in seconds every media type must hold before playback starts, and resumes after a stall")
	timeout := fs.Duration("timeout", player.DefaultTimeout, "timeout of each HTTP request, body included")
	cmcd := fs.Bool("cmcd", true, "send CMCD request headers (CMCD-Object, CMCD-Request, CMCD-Session, CMCD-Status)")
	sid := fs.String("sid", "", "CMCD session ID; default a random UUID per session (suffixed -N with --sessions)")
	logLevel := fs.String("log-level", "warn", "log level on stderr: debug, info, warn or error")
	pacingMode := fs.String("pacing", "", "pacing request engine: off (read the server's CMSD only), cmcd (rate as CMCD rtp), spec (Sluice-Pacing header and rtp) or dashjs (rtp as dash.js computes it); empty = no engine")
	rateMult := fs.Float64("rate-multiplier", player.DefaultRateMultiplier, "pacing rate at a full buffer as a multiple of the fragment's encoding rate (twice this at --min-buffer)")
	minBuffer := secondsFlag(0)
	fs.Var(&minBuffer, "min-buffer", "below this buffer (seconds or a duration) fragment requests carry no pacing specification (default: --startup)")
	burst := fs.Int("burst", 0, "device capability: most TCP segments per burst, sent with --pacing spec (0 = leave it to the server)")
	probeEvery := fs.Int("probe-every", 0, "with --pacing cmcd|spec: below the top video rendition, every Nth fragment goes unpaced so that the throughput estimate sees the network (0 = never; paced requests below the top already leave room to switch up)")
	lowLatency := fs.Bool("low-latency", false, "play a low-latency stream (LL-HLS parts and blocking reloads, LL-DASH chunked segments) at its target latency with playback-rate catch-up; standard mode otherwise")
	pacingLog := fs.Bool("pacing-log", false, "with --json: one entry per fragment request under pacing.log (start time, size, download time, requested and applied rate)")

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fs.Usage()
		return errors.New("want exactly one manifest URL")
	}
	if *sessions < 1 {
		return fmt.Errorf("--sessions %d: want at least 1", *sessions)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	f, err := player.ParseFormat(*format, positional[0])
	if err != nil {
		return err
	}
	cfg := player.Config{
		URL: positional[0], Format: f, Duration: *duration,
		Startup: time.Duration(startup), Buffer: time.Duration(buffer), MaxBitrate: int64(maxBitrate),
		Client:     player.NewClient(*timeout, *sessions),
		SessionID:  *sid,
		Logger:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		LowLatency: *lowLatency,
	}
	if *lowLatency && *sessions == 1 {
		cfg.Progress = stderr
	}
	if *cmcd {
		cfg.Hooks = append(cfg.Hooks, player.CMCDHook())
	}
	if *pacingMode != "" {
		mode, err := player.ParsePacingMode(*pacingMode)
		if err != nil {
			return fmt.Errorf("--pacing: %w", err)
		}
		if *rateMult < 1 || *rateMult > 20 {
			return fmt.Errorf("--rate-multiplier %g: want 1 to 20", *rateMult)
		}
		if *burst < 0 || *burst > 1000 {
			return fmt.Errorf("--burst %d: want 0 to 1000 segments", *burst)
		}
		cfg.Pacing = player.PacingConfig{
			Mode: mode, RateMultiplier: *rateMult, MinBuffer: time.Duration(minBuffer),
			Burst: *burst, Log: *pacingLog, ProbeEvery: *probeEvery,
		}
	}

	if *sessions == 1 {
		rep, _ := player.Run(ctx, cfg)
		if *jsonOut {
			if err := writeJSON(stdout, rep); err != nil {
				return err
			}
		} else if err := rep.WriteSummary(stdout); err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
		if !rep.OK {
			return fmt.Errorf("session failed: %s", failure(rep))
		}
		return nil
	}

	reports, agg := player.RunSessions(ctx, cfg, *sessions, *ramp)
	if *jsonOut {
		for _, r := range reports {
			if err := writeJSON(stdout, r); err != nil {
				return err
			}
		}
		if err := writeJSON(stdout, agg); err != nil {
			return err
		}
	} else {
		if err := agg.WriteSummary(stdout); err != nil {
			return fmt.Errorf("write summary: %w", err)
		}
		for _, r := range reports {
			if !r.OK {
				fmt.Fprintf(stdout, "  session %d (%s) failed: %s\n", r.Session, r.SessionID, failure(r))
			}
		}
	}
	if agg.SessionsOK < agg.Sessions {
		return fmt.Errorf("%d of %d sessions failed", agg.Sessions-agg.SessionsOK, agg.Sessions)
	}
	return nil
}

// failure says why a session is not OK.
func failure(r player.Report) string {
	if r.Error != "" {
		return r.Error
	}
	return "playback never started"
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// secondsFlag is a duration given as seconds ("6", "1.5") or as a Go
// duration ("6s", "1500ms").
type secondsFlag time.Duration

func (s *secondsFlag) String() string {
	return strconv.FormatFloat(time.Duration(*s).Seconds(), 'f', -1, 64)
}

func (s *secondsFlag) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f <= 0 {
			return errors.New("want a positive number of seconds")
		}
		*s = secondsFlag(time.Duration(f * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q: want seconds (6, 1.5) or a duration (6s)", v)
	}
	*s = secondsFlag(d)
	return nil
}

// bitrateFlag is a bitrate in bits/s with an optional k, M or G suffix.
type bitrateFlag int64

func (b *bitrateFlag) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *bitrateFlag) Set(v string) error {
	s := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(v)), "bps"), "bit/s")
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1e3, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1e6, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1e9, strings.TrimSuffix(s, "g")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return fmt.Errorf("%q: want bits per second, e.g. 800k or 2.5M", v)
	}
	*b = bitrateFlag(f * mult)
	return nil
}
