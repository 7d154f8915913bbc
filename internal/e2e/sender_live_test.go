package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/membership"
)

// TestSenderLiveOriginWritesToOwners: an origin started with --senders (a
// static set of three `sluice sender` processes) and --replicas 2 forwards
// every fragment a live push stores to exactly its two owners, and every
// track header to all three senders.
func TestSenderLiveOriginWritesToOwners(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	var senders []*senderProc
	var urls []string
	for _, name := range []string{"sender-a", "sender-b", "sender-c"} {
		s := startSenderProc(t, bin, name, "--ram", "8M")
		senders = append(senders, s)
		urls = append(urls, s.base)
	}
	data := filepath.Join(dir, "origin-data")
	base, origin := startOrigin(t, bin, data, "--point", "live/ch",
		"--senders", strings.Join(urls, ","), "--replicas", "2", "--cluster-secret", e2eClusterSecret)

	blocks := pushLiveCh(t, bin, base, data)
	// Wait until the origin's writer has placed every fragment.
	var written float64
	deadline := time.Now().Add(20 * time.Second)
	for {
		written, _ = scrapeMetric(base, "sluice_cluster_blocks_written_total")
		if written >= float64(len(blocks)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("origin wrote %v of %d fragments to the senders; origin log:\n%s", written, len(blocks), origin.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ms, err := membership.ParseList(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	held, tracks := checkReplicated(t, ms, senders, blocks, 2)
	total := 0
	for _, n := range held {
		total += n
	}
	t.Logf("%d fragments of %d tracks stored by the origin; %d block copies on 3 senders", len(blocks), tracks, total)
}
