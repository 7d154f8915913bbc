package player

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Report is the outcome of one playback session. Its JSON form is a stable
// interface (tests and load tooling parse it): fields are only ever added.
type Report struct {
	// Session is the index of the session in a load test (0 for one session).
	Session   int    `json:"session"`
	SessionID string `json:"sid"`
	URL       string `json:"url"`
	Format    Format `json:"format"`
	// Live tells whether the presentation was live when the session
	// started; Ended whether playback reached the end of the presentation
	// (a static one, or a live one that turned static).
	Live  bool `json:"live"`
	Ended bool `json:"ended"`
	// OK is true when playback started and no fatal error ended the session.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// StartupMS is the time from the session start (manifest request) to
	// the start of playback; -1 when playback never started.
	StartupMS int64 `json:"startup_ms"`
	// Stalls counts buffer under-runs before the end of the presentation;
	// StallMS is their total duration (one still going on at the stop included).
	Stalls   int   `json:"stalls"`
	StallMS  int64 `json:"stall_ms"`
	Switches int   `json:"switches"`
	// Bytes counts media bytes (fragments and init segments) received;
	// ManifestBytes the manifest and playlist bytes.
	Bytes         int64 `json:"bytes"`
	ManifestBytes int64 `json:"manifest_bytes"`
	// Fragments counts valid media fragments received, all kinds together;
	// FragmentsByKind splits them into "video" and "audio".
	Fragments       int            `json:"fragments"`
	FragmentsByKind map[string]int `json:"fragments_by_kind"`
	// Errors counts failed attempts: HTTP error statuses, transport errors
	// and fragments that are not moof+mdat.
	Errors           int `json:"errors"`
	NetworkErrors    int `json:"network_errors"`
	InvalidFragments int `json:"invalid_fragments"`
	// Retries counts second attempts; Skipped the fragments given up after
	// the retry failed too.
	Retries int `json:"retries"`
	Skipped int `json:"skipped"`
	// Failovers counts fragments fetched, after every attempt at the URL
	// their manifest named had failed, at the URL a reload of the manifest
	// named for the same position; FailoverReloads the manifest reloads made
	// for failed fragments and init segments.
	Failovers       int `json:"failovers"`
	FailoverReloads int `json:"failover_reloads"`
	// PathwaySwitches counts the moves to another pathway of a manifest
	// with content steering after a fragment or init segment failed.
	PathwaySwitches int `json:"pathway_switches"`
	// ConnectFailures counts connection attempts that failed (refused,
	// unreachable, timed out), each address of a name apart: when a host
	// name resolves to several addresses (a cluster's owner-set name) and
	// the request went on at the next one, it is counted here and nowhere
	// else.
	ConnectFailures int `json:"connect_failures"`
	// HTTPStatus counts every response by status code ("200": n).
	HTTPStatus map[string]int `json:"http_status"`
	// Bitrates lists the video bitrates chosen, bits/s, in order: the first
	// choice, then one entry per switch.
	Bitrates []int64 `json:"bitrates"`
	// AvgBitrate is the duration-weighted mean encoded bitrate of the video
	// fragments received (audio when there is no video), bits/s.
	AvgBitrate int64 `json:"avg_bitrate"`
	// ThroughputBPS is the final throughput estimate, bits/s.
	ThroughputBPS int64 `json:"throughput_bps"`
	// PlayedMS is the media time played; DurationMS the session's wall time.
	PlayedMS   int64 `json:"played_ms"`
	DurationMS int64 `json:"duration_ms"`
	// Pacing is the pacing request engine's account (when it ran).
	Pacing *PacingReport `json:"pacing,omitempty"`
	// Latency is how far behind live the playhead was (when the manifest
	// maps media to wall-clock time: a dynamic MPD, HLS with
	// EXT-X-PROGRAM-DATE-TIME).
	Latency *LatencyReport `json:"latency,omitempty"`
	// LowLatency is the account of low-latency mode (Config.LowLatency;
	// absent without it).
	LowLatency *LowLatencyReport `json:"low_latency,omitempty"`
}

// LatencyReport is a live session's latency: the wall clock minus the
// wall-clock time the manifest maps the frame at the playhead to, sampled
// once a second while playing (a stall makes it grow).
type LatencyReport struct {
	P50MS     int64   `json:"p50_ms"`
	P95MS     int64   `json:"p95_ms"`
	MaxMS     int64   `json:"max_ms"`
	LastMS    int64   `json:"last_ms"`
	SamplesMS []int64 `json:"samples_ms"`
}

// latencyReport summarises latency samples (nil without any).
func latencyReport(samples []time.Duration) *LatencyReport {
	if len(samples) == 0 {
		return nil
	}
	r := &LatencyReport{SamplesMS: make([]int64, len(samples))}
	for i, d := range samples {
		r.SamplesMS[i] = d.Milliseconds()
	}
	r.LastMS = r.SamplesMS[len(r.SamplesMS)-1]
	sorted := append([]int64(nil), r.SamplesMS...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	r.P50MS, r.P95MS, r.MaxMS = percentile(sorted, 50), percentile(sorted, 95), sorted[len(sorted)-1]
	return r
}

// WriteSummary prints a human summary of the report.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	state := "ok"
	if !r.OK {
		state = "FAILED"
	}
	kind := "on-demand"
	if r.Live {
		kind = "live"
	}
	if r.Ended {
		kind += ", played to the end"
	}
	fmt.Fprintf(&b, "session %s: %s (%s %s, %s)\n", r.SessionID, state, kind, r.Format, r.URL)
	if r.Error != "" {
		fmt.Fprintf(&b, "  error:      %s\n", r.Error)
	}
	startup := "never started"
	if r.StartupMS >= 0 {
		startup = fmt.Sprintf("%d ms", r.StartupMS)
	}
	fmt.Fprintf(&b, "  startup:    %s\n", startup)
	fmt.Fprintf(&b, "  played:     %.1f s in %.1f s\n", float64(r.PlayedMS)/1000, float64(r.DurationMS)/1000)
	fmt.Fprintf(&b, "  stalls:     %d (%d ms)\n", r.Stalls, r.StallMS)
	if l := r.Latency; l != nil {
		fmt.Fprintf(&b, "  latency:    p50 %.1f s, p95 %.1f s, max %.1f s, last %.1f s (wall clock − the playhead's time, %d samples)\n",
			float64(l.P50MS)/1000, float64(l.P95MS)/1000, float64(l.MaxMS)/1000, float64(l.LastMS)/1000, len(l.SamplesMS))
	}
	if ll := r.LowLatency; ll != nil {
		if ll.Active {
			fmt.Fprintf(&b, "  low latency: target %.2f s, rate %.2f–%.2f; %d parts (%d preload-hinted), %d blocking reloads, %d delta updates (%d not merged), %d chunked segments, %d buffer additions\n",
				float64(ll.TargetMS)/1000, ll.RateMin, ll.RateMax, ll.Parts, ll.PreloadHints, ll.BlockingReloads, ll.DeltaUpdates, ll.DeltaGaps, ll.ChunkedSegments, ll.Chunks)
		} else {
			fmt.Fprintf(&b, "  low latency: not available (%s): standard mode\n", ll.Fallback)
		}
	}
	fmt.Fprintf(&b, "  switches:   %d, bitrates %s\n", r.Switches, bitrateList(r.Bitrates))
	fmt.Fprintf(&b, "  avg bitrate %s, throughput estimate %s\n", humanBits(r.AvgBitrate), humanBits(r.ThroughputBPS))
	fmt.Fprintf(&b, "  fragments:  %d (video %d, audio %d), %s media, %s manifests\n",
		r.Fragments, r.FragmentsByKind[string(KindVideo)], r.FragmentsByKind[string(KindAudio)], humanBytes(r.Bytes), humanBytes(r.ManifestBytes))
	fmt.Fprintf(&b, "  errors:     %d (network %d, invalid fragments %d), retries %d, skipped %d, failovers %d (%d reloads), failed connects %d\n",
		r.Errors, r.NetworkErrors, r.InvalidFragments, r.Retries, r.Skipped, r.Failovers, r.FailoverReloads, r.ConnectFailures)
	if r.PathwaySwitches > 0 {
		fmt.Fprintf(&b, "  pathways:   %d switches (content steering)\n", r.PathwaySwitches)
	}
	fmt.Fprintf(&b, "  http:       %s\n", statusList(r.HTTPStatus))
	if p := r.Pacing; p != nil {
		fmt.Fprintf(&b, "  pacing:     %s: %d of %d fragment requests paced (%d urgent), requested p50 %s\n",
			p.Mode, p.Paced, p.Requests, p.Urgent, humanBits(int64(p.RequestedKbps.P50*1000)))
		fmt.Fprintf(&b, "  server:     CMSD on %d responses, paced %d (applied p50 %s), loss max %.2f%% mean %.2f%%, %d back-offs\n",
			p.CMSDResponses, p.ServerPaced, humanBits(int64(p.AppliedKbps.P50*1000)), 100*p.LossMax, 100*p.LossMean, p.Backoffs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Aggregate sums up the sessions of a load test. Its JSON line carries
// "aggregate": true to tell it from the per-session lines.
type Aggregate struct {
	Aggregate    bool           `json:"aggregate"`
	Format       Format         `json:"format"`
	Sessions     int            `json:"sessions"`
	SessionsOK   int            `json:"sessions_ok"`
	StartupP50MS int64          `json:"startup_p50_ms"`
	StartupP95MS int64          `json:"startup_p95_ms"`
	StartupMaxMS int64          `json:"startup_max_ms"`
	Stalls       int            `json:"stalls"`
	StallMS      int64          `json:"stall_ms"`
	Switches     int            `json:"switches"`
	Bytes        int64          `json:"bytes"`
	Fragments    int            `json:"fragments"`
	Errors       int            `json:"errors"`
	Skipped      int            `json:"skipped"`
	Failovers    int            `json:"failovers"`
	HTTPStatus   map[string]int `json:"http_status"`
	DurationMS   int64          `json:"duration_ms"`
	// LatencyP50MS and LatencyP95MS are over every session's latency
	// samples; -1 without any.
	LatencyP50MS int64 `json:"latency_p50_ms"`
	LatencyP95MS int64 `json:"latency_p95_ms"`
}

// Summarize aggregates session reports. Startup percentiles (nearest rank)
// are over the sessions that started; -1 when none did.
func Summarize(reports []Report, wall time.Duration) Aggregate {
	a := Aggregate{Aggregate: true, Sessions: len(reports), HTTPStatus: map[string]int{}, DurationMS: wall.Milliseconds()}
	var startups, latencies []int64
	for _, r := range reports {
		if a.Format == "" {
			a.Format = r.Format
		}
		if r.OK {
			a.SessionsOK++
		}
		if r.StartupMS >= 0 {
			startups = append(startups, r.StartupMS)
		}
		a.Stalls += r.Stalls
		a.StallMS += r.StallMS
		a.Switches += r.Switches
		a.Bytes += r.Bytes
		a.Fragments += r.Fragments
		a.Errors += r.Errors
		a.Skipped += r.Skipped
		a.Failovers += r.Failovers
		for k, v := range r.HTTPStatus {
			a.HTTPStatus[k] += v
		}
		if r.Latency != nil {
			latencies = append(latencies, r.Latency.SamplesMS...)
		}
	}
	a.LatencyP50MS, a.LatencyP95MS = -1, -1
	if len(latencies) > 0 {
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		a.LatencyP50MS, a.LatencyP95MS = percentile(latencies, 50), percentile(latencies, 95)
	}
	a.StartupP50MS, a.StartupP95MS, a.StartupMaxMS = -1, -1, -1
	if len(startups) > 0 {
		sort.Slice(startups, func(i, j int) bool { return startups[i] < startups[j] })
		a.StartupP50MS = percentile(startups, 50)
		a.StartupP95MS = percentile(startups, 95)
		a.StartupMaxMS = startups[len(startups)-1]
	}
	return a
}

// percentile returns the nearest-rank percentile of sorted values.
func percentile(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// WriteSummary prints a human summary of a load test.
func (a *Aggregate) WriteSummary(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "load test: %d/%d sessions ok (%s) in %.1f s\n", a.SessionsOK, a.Sessions, a.Format, float64(a.DurationMS)/1000)
	fmt.Fprintf(&b, "  startup:    p50 %d ms, p95 %d ms, max %d ms\n", a.StartupP50MS, a.StartupP95MS, a.StartupMaxMS)
	fmt.Fprintf(&b, "  stalls:     %d (%d ms), switches %d\n", a.Stalls, a.StallMS, a.Switches)
	if a.LatencyP50MS >= 0 {
		fmt.Fprintf(&b, "  latency:    p50 %.1f s, p95 %.1f s (every session's samples)\n", float64(a.LatencyP50MS)/1000, float64(a.LatencyP95MS)/1000)
	}
	fmt.Fprintf(&b, "  fragments:  %d, %s media\n", a.Fragments, humanBytes(a.Bytes))
	fmt.Fprintf(&b, "  errors:     %d, fragments skipped %d, failovers %d\n", a.Errors, a.Skipped, a.Failovers)
	fmt.Fprintf(&b, "  http:       %s\n", statusList(a.HTTPStatus))
	_, err := io.WriteString(w, b.String())
	return err
}

func statusList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func bitrateList(bs []int64) string {
	if len(bs) == 0 {
		return "none"
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = humanBits(b)
	}
	return strings.Join(parts, " → ")
}

func humanBits(bps int64) string {
	switch {
	case bps >= 1_000_000:
		return fmt.Sprintf("%.2f Mbit/s", float64(bps)/1e6)
	case bps >= 1000:
		return fmt.Sprintf("%.0f kbit/s", float64(bps)/1e3)
	}
	return fmt.Sprintf("%d bit/s", bps)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// stats accumulates a session's counters; safe for concurrent use.
type stats struct {
	mu              sync.Mutex
	bytes           int64
	manifestBytes   int64
	fragments       map[Kind]int
	errors          int
	networkErrors   int
	invalid         int
	retries         int
	skipped         int
	failovers       int
	failoverReloads int
	connectFailures int
	status          map[int]int
	bitrates        []int64
	switches        int
	bitrateDur      float64 // Σ bitrate × seconds of the fragments of the averaged kind
	durSum          float64
	lastEncodedRate map[Kind]float64
}

func newStats() *stats {
	return &stats{fragments: map[Kind]int{}, status: map[int]int{}, lastEncodedRate: map[Kind]float64{}}
}

func (s *stats) response(code int) {
	s.mu.Lock()
	s.status[code]++
	if code >= 400 {
		s.errors++
	}
	s.mu.Unlock()
}

func (s *stats) networkError() {
	s.mu.Lock()
	s.errors++
	s.networkErrors++
	s.mu.Unlock()
}

func (s *stats) invalidFragment() {
	s.mu.Lock()
	s.errors++
	s.invalid++
	s.mu.Unlock()
}

func (s *stats) add(field *int) {
	s.mu.Lock()
	*field++
	s.mu.Unlock()
}

func (s *stats) received(obj ObjectType, n int64) {
	s.mu.Lock()
	if obj == ObjectManifest {
		s.manifestBytes += n
	} else {
		s.bytes += n
	}
	s.mu.Unlock()
}

// fragment records a valid fragment; averaged tells whether its bitrate
// counts in the average (video, or audio when there is no video).
func (s *stats) fragment(k Kind, bitrate int64, size int, d time.Duration, averaged bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fragments[k]++
	if averaged {
		s.bitrateDur += float64(bitrate) * d.Seconds()
		s.durSum += d.Seconds()
	}
	if d > 0 {
		s.lastEncodedRate[k] = float64(size) * 8 / d.Seconds()
	}
}

func (s *stats) encodedRate(k Kind) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastEncodedRate[k]
}

// chose records a video bitrate choice; a change after the first is a switch.
func (s *stats) chose(bitrate int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.bitrates); n > 0 {
		if s.bitrates[n-1] == bitrate {
			return
		}
		s.switches++
	}
	s.bitrates = append(s.bitrates, bitrate)
}

// fill copies the counters into a report.
func (s *stats) fill(r *Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Bytes, r.ManifestBytes = s.bytes, s.manifestBytes
	r.FragmentsByKind = map[string]int{}
	for k, v := range s.fragments {
		r.FragmentsByKind[string(k)] = v
		r.Fragments += v
	}
	r.Errors, r.NetworkErrors, r.InvalidFragments = s.errors, s.networkErrors, s.invalid
	r.Retries, r.Skipped = s.retries, s.skipped
	r.Failovers, r.FailoverReloads = s.failovers, s.failoverReloads
	r.ConnectFailures = s.connectFailures
	r.HTTPStatus = map[string]int{}
	for k, v := range s.status {
		r.HTTPStatus[strconv.Itoa(k)] = v
	}
	r.Bitrates = append([]int64{}, s.bitrates...)
	r.Switches = s.switches
	if s.durSum > 0 {
		r.AvgBitrate = int64(math.Round(s.bitrateDur / s.durSum))
	}
}
