package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/ingest"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestTierLatencyCluster is the benchmark of bench/tier-latency-cluster.sh
// (not run in CI: it needs SLUICE_TIER_CLUSTER_SECONDS): when each piece of
// a live stream is available at each tier, in low-latency mode
// (SLUICE_TIER_MODE=ll, the default: `sluice push --chunk 500ms`, a piece
// is a part) or standard mode (SLUICE_TIER_MODE=standard: whole 2 s
// fragments). Tiers, all on 127.0.0.1: the ingest (a chunked pull of its
// stream, read as it arrives: the moment a chunk or fragment leaves the
// ingest), the origin pulling from it (its HLS media playlist of the first
// video track), a distribution server in front of the origin (the same
// playlist), and a sender (the pathway playlist of a scheduler session,
// which the sender passes on from the scheduler; the origin forwards
// parts to the two senders, blocks to their owners). Each playlist is
// reloaded every 10 ms (the resolution); the table gives the delay of
// each tier after the tier before and after the ingest, p50/p95/max in ms.
func TestTierLatencyCluster(t *testing.T) {
	seconds, err := strconv.Atoi(os.Getenv("SLUICE_TIER_CLUSTER_SECONDS"))
	if err != nil || seconds <= 0 {
		t.Skip("a benchmark: bench/tier-latency-cluster.sh sets SLUICE_TIER_CLUSTER_SECONDS")
	}
	ll := os.Getenv("SLUICE_TIER_MODE") != "standard"
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	art := artifactsDir(t)

	var senders []*clSender
	for i := 0; i < 2; i++ {
		senders = append(senders, startClSender(t, bin, fmt.Sprintf("sender-%d", i), shmDir(t, fmt.Sprintf("s%d", i)), "--ram", "64M"))
	}
	ing := startRole(t, bin, dir, "ingest", "ingest", "--point", "live")
	origin := startRole(t, bin, dir, "origin", "origin", "--point", "live", "--ingest", ing.base,
		"--senders", senderList(senders), "--replicas", "2", "--cluster-secret", e2eClusterSecret)
	dport := freePort(t)
	dbase, _ := distStartRole(t, bin, "distribution", "distribution.log", dport, "--origin", origin.base)
	sched := startClSched(t, bin, "scheduler", origin.base, "--senders", senderList(senders), "--replicas", "2")
	args := []string{"push", "--loop", "--epoch", "--quiet"}
	if ll {
		args = append(args, "--chunk", "500ms")
	}
	args = append(args, testmedia.Sample(t), ing.pushURL("live"))
	push := startProc(t, "push", filepath.Join(art, "push.log"), append([]string{bin}, args...)...)

	// The reference track: the first video variant of the origin's master.
	master := string(waitHTTP(t, origin.base+"/live.isml/master.m3u8", 60*time.Second, push, origin.p))
	video := regexp.MustCompile(`(?m)^tracks/([^/\s]+)/media\.m3u8$`).FindStringSubmatch(master)
	if video == nil {
		t.Fatalf("no variant in\n%s", master)
	}
	track := video[1]
	var pathway string
	waitUntil(t, 60*time.Second, "a session's pathway playlist", func() (bool, string) {
		_, m := fetch(t, sched.base+"/s/live/master.m3u8")
		u := regexp.MustCompile(`http://[^"\s]+/` + regexp.QuoteMeta(track) + `/media\.m3u8`).FindString(string(m))
		if u == "" {
			return false, string(m)
		}
		pathway = u
		code, body := fetch(t, u)
		return code == 200 && (!ll || bytes.Contains(body, []byte("#EXT-X-PART:"))), string(body)
	})
	// Pieces are named by their start in the track's timescale: the part
	// and segment URIs of the playlists, the tfdt of the pulled chunks.
	pieces := func(body []byte) ([]int64, error) {
		var out []int64
		re := regexp.MustCompile(`(?m)^(\d+)\.m4s$`)
		if ll {
			// Listed parts, not the preload hint (named before it exists).
			re = regexp.MustCompile(`(?m)^#EXT-X-PART:.*URI="[^"]*part-(\d+)\.m4s"`)
		}
		for _, m := range re.FindAllSubmatch(body, -1) {
			v, _ := strconv.ParseInt(string(m[1]), 10, 64)
			out = append(out, v)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no pieces in\n%s", body)
		}
		return out, nil
	}
	// In low-latency mode each tier is asked as a low-latency player asks:
	// a blocking reload for the part after the last one listed.
	var next func([]byte) string
	if ll {
		next = func(body []byte) string {
			p := parseLLQuiet(body)
			if p.partInf == "" {
				return ""
			}
			return fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", p.seq+int64(p.segments), p.parts)
		}
	}
	sources := []tierSource{
		{tier: "origin", format: "hls", url: origin.base + "/live.isml/tracks/" + track + "/media.m3u8", parse: pieces, next: next},
		{tier: "distribution", format: "hls", url: dbase + "/live.isml/tracks/" + track + "/media.m3u8", parse: pieces, next: next},
		{tier: "sender", format: "hls", url: pathway, parse: pieces, next: next},
	}
	s := newTierSightings()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
	defer cancel()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pullSightings(ctx, t, ing.pushURL("live"), s)
	}()
	for _, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pollTier(ctx, c, src, s)
		}()
	}
	load0 := loadAvg()
	t0 := time.Now()
	wg.Wait()
	elapsed := time.Since(t0).Seconds()

	mode := "standard (whole 2 s fragments)"
	if ll {
		mode = "low latency (0.5 s parts)"
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%s, %.0f s, %d-ms polls, load %s -> %s; delay in ms p50 p95 max:\n", mode, elapsed, tierPollInterval.Milliseconds(), load0, loadAvg())
	fmt.Fprintf(&table, "%-13s %-16s %-16s %s\n", "tier", "vs tier before", "vs ingest", "n")
	prev := map[string]string{"origin": "ingest", "distribution": "origin", "sender": "origin"}
	for _, tier := range []string{"origin", "distribution", "sender"} {
		pf := "hls"
		if prev[tier] == "ingest" {
			pf = "pull"
		}
		before := statsOf(s.tierDelays(prev[tier], pf, tier, "hls"))
		fmt.Fprintf(&table, "%-13s %-16s %-16s %d\n", tier, before, statsOf(s.tierDelays("ingest", "pull", tier, "hls")), before.N)
	}
	s.mu.Lock()
	fmt.Fprintf(&table, "polls %v, errors %v\n", s.polls, s.errors)
	s.mu.Unlock()
	t.Log("\n" + table.String())
	if out := os.Getenv("SLUICE_TIER_REPORT"); out != "" {
		if err := os.WriteFile(out, []byte(table.String()), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		}
	}
	for _, tier := range []string{"origin", "distribution", "sender"} {
		if n := len(s.tierDelays("ingest", "pull", tier, "hls")); n < 3 {
			t.Errorf("%s: %d pieces seen at the ingest and there", tier, n)
		}
	}
}

// pullSightings pulls a stream from an ingest chunk by chunk (as an origin
// does, ingest.ChunksHeader) and records, under tier "ingest" format
// "pull", when each moof arrives, by its tfdt.
func pullSightings(ctx context.Context, t *testing.T, streamURL string, s *tierSightings) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	req.Header.Set(ingest.ChunksHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			t.Errorf("pull %s: %v", streamURL, err)
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("pull %s: %s", streamURL, resp.Status)
		return
	}
	const key = "ingest/pull"
	s.mu.Lock()
	s.first[key], s.initial[key] = map[int64]time.Time{}, map[int64]bool{}
	s.mu.Unlock()
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	started := time.Now()
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:])
		if size < 8 || size > 64<<20 {
			t.Errorf("pull: box %q of %d bytes", typ, size)
			return
		}
		body := make([]byte, size)
		copy(body, hdr[:])
		if _, err := io.ReadFull(br, body[8:]); err != nil {
			return
		}
		if typ != "moof" {
			continue
		}
		at := time.Now()
		box, err := mp4.DecodeBox(0, bytes.NewReader(body))
		moof, ok := box.(*mp4.MoofBox)
		if err != nil || !ok || moof.Traf == nil || moof.Traf.Tfdt == nil {
			continue
		}
		start := int64(moof.Traf.Tfdt.BaseMediaDecodeTime())
		s.mu.Lock()
		// What the pull sends at once is the stored past, not arrivals.
		if at.Sub(started) < 500*time.Millisecond {
			s.initial[key][start] = true
		} else if _, seen := s.first[key][start]; !seen && !s.initial[key][start] {
			s.first[key][start] = at
		}
		s.polls[key]++
		s.mu.Unlock()
	}
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
