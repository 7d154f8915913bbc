package e2e

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/placement"
)

// TestSenderRebalanceOnJoin: an origin forwarding a live push to the two
// `sluice sender` processes registered in etcd (R = 2); a third sender
// registers afterwards and the origin's rebalance gives it, from the
// origin's store, exactly the blocks it now owns and every track header,
// so every block is on its two owners among the three.
func TestSenderRebalanceOnJoin(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	etcd := startEtcdServer(t)
	const ttl = 2 * time.Second
	reg := append([]string{"--etcd-ttl", ttl.String(), "--ram", "8M"}, etcd.senderArgs()...)
	a, b := startSenderProc(t, bin, "sender-a", reg...), startSenderProc(t, bin, "sender-b", reg...)
	set, _ := etcd.senderSet(t, 2)

	data := filepath.Join(dir, "origin-data")
	base, origin := startOrigin(t, bin, data, append([]string{"--point", "live/ch",
		"--replicas", "2", "--cluster-secret", e2eClusterSecret}, etcd.readerArgs()...)...)
	blocks := pushLiveCh(t, bin, base, data)
	// Both senders own every block (two senders, R = 2).
	waitUntil(t, 20*time.Second, "the origin wrote every block to both senders", func() (bool, string) {
		na, nb := fetchSenderStats(t, a.base).Blocks, fetchSenderStats(t, b.base).Blocks
		return na == len(blocks) && nb == len(blocks), fmt.Sprintf("%d and %d of %d blocks", na, nb, len(blocks))
	})

	c := startSenderProc(t, bin, "sender-c", reg...)
	joined := time.Now()
	ms := waitSenderSet(t, set, 3, 10*time.Second)
	owns := 0
	for id := range blocks {
		for _, o := range placement.Owners(ms, id, 2) {
			if o.ID == c.id {
				owns++
			}
		}
	}
	if owns == 0 || owns == len(blocks) {
		t.Fatalf("the new sender owns %d of %d blocks: the test needs some, not all", owns, len(blocks))
	}
	waitUntil(t, 20*time.Second, "the new sender holds the blocks it owns", func() (bool, string) {
		n := fetchSenderStats(t, c.base).Blocks
		return n >= owns, fmt.Sprintf("%d of %d", n, owns)
	})
	t.Logf("sender-c joined and held the %d of %d blocks it owns %v later", owns, len(blocks), time.Since(joined).Round(10*time.Millisecond))
	// Every block is on its two owners among the three, byte for byte; the
	// new sender holds nothing else. (The rebalance deletes the old owner's copy; TestSenderDeleteOnPruneAndJoin checks that.)
	for id, want := range blocks {
		owner := map[string]bool{}
		for _, o := range placement.Owners(ms, id, 2) {
			owner[o.ID] = true
			code, got := fetchSenderBlock(t, o.URL, id)
			if code != 200 || !bytes.Equal(got, want) {
				t.Errorf("owner %s of %s: %d, %d bytes (want %d)", o.ID, id, code, len(got), len(want))
			}
		}
		if !owner[c.id] {
			if code, _ := fetchSenderBlock(t, c.base, id); code != 404 {
				t.Errorf("sender-c does not own %s but answers %d", id, code)
			}
		}
	}
	if n := fetchSenderStats(t, c.base).Blocks; n != owns {
		t.Errorf("sender-c holds %d blocks, owns %d", n, owns)
	}
	tracks := map[string]bool{}
	for id := range blocks {
		if tracks[id.Track] {
			continue
		}
		tracks[id.Track] = true
		code, body := get(t, placement.InitURL(c.base, senderBlockToken(t, c.base, id.Point), id.Point, id.Track))
		if code != 200 || len(body) < 8 || string(body[4:8]) != "ftyp" {
			t.Errorf("init of %s at sender-c: %d", id.Track, code)
		}
	}
	if !strings.Contains(origin.out.String(), "rebalance done") {
		t.Errorf("the origin did not log its rebalance:\n%s", origin.out)
	}
}
