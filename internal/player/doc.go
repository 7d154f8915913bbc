// Package player is a headless adaptive-streaming player for DASH, HLS and
// Smooth Streaming, used by `sluice play` to check a channel and to load an
// origin with many sessions.
//
// # Session
//
// Run plays one session: it loads the manifest (the format from
// Config.Format or the URL), then fetches, concurrently, one video rendition
// and one audio rendition fragment by fragment. A static presentation plays
// from its start to its end; a live one starts at suggestedPresentationDelay
// (DASH) or HOLD-BACK (HLS) behind the newest fragment, three fragments
// behind when the manifest says nothing, and the manifest is reloaded at
// minimumUpdatePeriod (DASH), the target duration (HLS; half of it when the
// playlist did not change) or the fragment duration (Smooth, which is also
// the fallback). A live presentation that turns static (live-to-VOD) is
// played to its end. Only the manifest reload is used for Smooth: the tfrf
// boxes in live fragments are not read. RunSessions runs N sessions at once
// and aggregates them.
//
// Manifests are read with github.com/Eyevinn/dash-mpd and
// github.com/Eyevinn/hls-m3u8 and turned into the player's own model
// (Presentation, Stream, Rendition, Segment); testdata/packagers holds
// manifests in the shapes other packagers write, with what the player makes
// of each. DASH with SegmentTemplate, either SegmentTimeline ($Time$ or
// $Number$, S@r=-1 included) or @duration ($Number$, the live edge computed
// from availabilityStartTime and the clock, corrected by UTCTiming direct,
// http-xsdate or http-iso), or with SegmentList (SegmentURL@media and
// @mediaRange, Initialization@sourceURL and @range, timed by a
// SegmentTimeline or @duration; the k-th segment of the timeline is the k-th
// SegmentURL), as the scheduler's per-session MPDs name one sender per
// segment; BaseURL at every level (with content steering, the one whose
// serviceLocation is the current pathway at each level); one Period (the
// first of a static MPD, the last of a dynamic one); SegmentBase is not
// supported. HLS master or media playlists with EXT-X-MAP (the first one
// serves every segment, also after a discontinuity), EXT-X-BYTERANGE
// (hls-m3u8 cannot tell "<n>" from "<n>@0": a range at 0 of the URI the
// previous range was on continues that range, RFC 8216 4.3.2.2), EXT-X-MEDIA
// audio groups, PATHWAY-ID and EXT-X-CONTENT-STEERING; I-frame variants
// are left out; only the playlists in use are reloaded. A playlist without
// #EXTM3U or EXT-X-TARGETDURATION, a segment whose EXTINF does not parse, or
// an EXT-X-MAP hls-m3u8 could not read (BYTERANGE without @offset) fails the
// load. Smooth client manifests (MS-SSTR) with c@t/@d and c@r as the total
// number of fragments an element stands for. Relative URLs resolve against
// the manifest URL (or the playlist's own URL).
//
// # Playback model
//
// Playback is simulated, not decoded. Each media kind has a buffer measured
// in seconds of media: a valid fragment adds its duration, and while playing
// the wall clock drains every buffer at once. Playback starts when every
// buffer holds Config.Startup (or when every stream has ended, for very short
// presentations); the startup time runs from the session start, the first
// manifest request included. A stall is a buffer running dry before its
// stream has ended; playback resumes when every buffer holds Config.Startup
// again. Stall time counts until the resume, or until the session stops. No
// fragment is fetched while its kind's buffer holds Config.Buffer or more.
//
// # Bitrate choice
//
// Every fragment download of at least 4 KiB feeds two moving averages of
// bytes and of download time (request to last byte), weights 0.5 and 0.15;
// the throughput estimate is the lower of the two ratios. A ratio of averages
// weighs each download by the time it took, so one slow download shows at
// once after many fast ones. The video rendition for each fragment is the
// highest whose bitrate fits 0.8 × the estimate (and Config.MaxBitrate), with
// hysteresis: the first choice is the lowest rendition (ABRConfig.StartBitrate
// can raise it); an up-switch needs half the startup threshold in the buffer
// and waits 5 s after a down-switch; a down-switch is put off while the buffer
// is above three quarters of its target and the current bitrate is still
// below the raw estimate. Audio uses its highest rendition.
//
// # Checks and errors
//
// Every fragment must be moof followed by mdat (CMAF chunks: several pairs;
// leading styp, sidx, prft, emsg allowed); init segments must hold a moov.
// A failed request (transport error, non-2xx status, invalid body) is retried
// once after Config.RetryDelay. A fragment that fails twice fails over: the
// manifest it came from is reloaded — an on-demand one too (ENDLIST or
// type="static" only stop the periodic reloads) — and the fragment is
// fetched once at the URL the fresh manifest lists for the same position
// (start time; HLS: media sequence number) of the same rendition. A reload
// that still lists the failed URL is followed, after RetryDelay, by a second
// one, whose URL is tried whatever it is; at most two reloads per fragment.
// This is what closes the gap a dead sender leaves behind a scheduler's
// session manifests (docs/cluster.md): the scheduler re-renders them with
// the replicas, where the block is staged. A fragment the failover does not
// recover is skipped and counted.
//
// Content steering (steering.go): a DASH MPD with MPD-level BaseURLs that
// carry a serviceLocation and a ContentSteering element, or an HLS master
// with PATHWAY-IDs and EXT-X-CONTENT-STEERING, names the same media on
// several pathways (the scheduler's sessions: one per sender). The player
// asks the steering server before it starts and plays the first pathway of
// its PATHWAY-PRIORITY (else the default one); when a fragment fails at every
// attempt, or a media playlist cannot be loaded, it asks again and moves to
// the next pathway that has not failed within a minute (when every one has,
// the one whose failure is the oldest) before the failover reload, so the
// fragment is fetched there. Report.PathwaySwitches counts
// the moves. A failing init segment also triggers up to
// two reloads. Report.Failovers counts the recovered fragments,
// Report.FailoverReloads the reloads; both are logged. A session that makes no playback progress for Config.StallTimeout
// ends with an error, so every loop is bounded even without a duration.
//
// # Request hooks: CMCD and pacing
//
// Every request goes through Config.Hooks, which receive a RequestInfo: the
// object type, its rendition, bitrate, duration and (from a byte range)
// size, the buffer level and target, the throughput estimate, the startup
// and starvation flags, the encoding rate of the previous fragment and the
// next object's URL. CMCDHook is one such hook (CTA-5004 header mode).
// Config.OnResponse observe every response.
//
// # Pacing request engine
//
// Config.Pacing turns on the pacing request engine of client-controlled
// pacing (docs/pacing.md), one per session. For each fragment
// request it decides a pacing specification: none while starting, after a
// stall or with the buffer at or below PacingConfig.MinBuffer (the request must
// refill the buffer as fast as the network allows); otherwise a rate of
// multiplier × the instantaneous encoding rate (the fragment's size over
// its duration when a byte range tells it, else the previous fragment of
// the same rendition, else the declared bitrate). The multiplier is
// RateMultiplier (1.5) at a full buffer and LowBufferMultiplier (twice
// that) at MinBuffer, linear in between; a live session counts as full at
// its distance to the live edge. A loss rate above LossThreshold in the
// server's CMSD on a paced response multiplies it by 0.85 (never below
// FloorMultiplier, 1.1), clean reports restore it by 0.05 a time. The rate
// is capped at CapFraction (0.9) of the path capacity the engine measured
// (the highest throughput of the last four unpaced video downloads of 256 KB
// or more, lowered by a paced download that fell well short of its pace,
// recovering 10 % per download that reached its pace):
// pacing above the bottleneck only fills its queue. Below the top video
// rendition the rate is at least 1.3 × the top bitrate (within that cap),
// so that a download at the pace shows room to switch up; optionally every
// ProbeEvery-th fragment goes unpaced instead. The burst
// is the device capability PacingConfig.Burst (segments), the minimum gap
// burst × MSS / rate. Mode cmcd sends the rate as CMCD rtp (kbit/s, in
// CMCD-Status), spec also as the Sluice-Pacing header (rate, burst, gap;
// "off" for urgent requests), dashjs sends rtp as dash.js and Shaka compute
// it, off sends nothing. In every mode the engine reads CMSD-Static and
// CMSD-Dynamic (CTA-5006; the last list item, the hop nearest the player):
// etp, rtt and Sluice's custom keys (applied rate, burst, gap, loss, CPU,
// source). A paced download (the engine's pace, or one the server reports
// in CMSD it applied) whose throughput reaches 70 % of that rate
// measured the pace, not the network: it may raise the throughput estimate
// but never lower it; otherwise a paced player could never switch up, or
// would switch down for nothing.
//
// # Low-latency mode
//
// Config.LowLatency (lowlatency.go) plays a low-latency stream as one: an
// LL-HLS session follows each media playlist in use with blocking reloads
// (_HLS_msn/_HLS_part) and delta updates (_HLS_skip=YES, merged with the
// segments it has), starts PART-HOLD-BACK from the end of the playlist and
// fetches parts at the live edge, the preload-hinted one before it is
// listed (llhls.go, llplaylist.go); an LL-DASH session starts at the
// ServiceDescription's target latency, requests each segment at its
// availability (availabilityTimeOffset) and adds its chunked body to the
// buffer chunk by chunk (lldash.go, chunks.go). The throughput estimate
// learns from each chunk's burst (first byte to the end of its mdat), not
// from whole requests, which wait for the encoder; video switches
// rendition at segment boundaries only. The playback rate is
// steered to the target latency within the advertised bounds (catchup.go),
// and Report.LowLatency has the counters and one latency sample per
// second. A stream that is not low-latency plays in standard mode and the
// report says why.
//
// # Report
//
// Report is the JSON report (`sluice play --json`), stable for tools: the
// fields startup_ms (-1: never started), stalls, stall_ms, switches, bytes
// (media: fragments and init segments), fragments, errors (failed attempts),
// http_status (count per status code, as strings), format, bitrates (the
// video bitrates chosen: the first choice, then one per switch) are kept as
// they are; others may be added (skipped, failovers, failover_reloads). With the pacing engine on, "pacing" holds
// PacingReport: requests paced and urgent, requested and applied rates,
// loss reports and back-offs, and with PacingConfig.Log one entry per
// fragment request (start time, size, download time, buffer, requested and
// applied rate). Aggregate is the load-test summary, a JSON
// line with "aggregate": true after the per-session lines.
package player
