package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/placement"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestSenderDeleteOnPruneAndJoin: an origin with a short archive retention
// forwards a live push to three `sluice sender` processes registered in
// etcd (R = 2). When retention prunes the origin's store, every sender's
// block directory ends up holding exactly the blocks it owns among those
// the origin still holds (the pruned ones are deleted, the track headers
// stay). A fourth sender then joins: the rebalance gives it what it owns
// and deletes the copies the others hold but no longer own, so every block
// directory again holds exactly its owner's share.
func TestSenderDeleteOnPruneAndJoin(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	t0 := time.Now()
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	etcd := startEtcdServer(t)
	reg := append([]string{"--etcd-ttl", "2s", "--ram", "8M"}, etcd.senderArgs()...)
	var ss []*clSender
	for _, name := range []string{"sender-a", "sender-b", "sender-c"} {
		ss = append(ss, startClSender(t, bin, name, filepath.Join(dir, name), reg...))
	}
	set, ms := etcd.senderSet(t, 3)

	// Retention keeps 8 s (the DVR window is then 4 s); it runs every 10 s.
	cfg := filepath.Join(dir, "origin.yaml")
	if err := os.WriteFile(cfg, []byte("points:\n  - name: live/ch\n    archive: 8s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "origin-data")
	base, origin := startOrigin(t, bin, data, append([]string{"--config", cfg,
		"--replicas", "2", "--cluster-secret", e2eClusterSecret}, etcd.readerArgs()...)...)
	out, err := exec.Command(bin, "push", "--fast", "--loop", "--duration", "40s", testmedia.Sample(t),
		base+"/live/ch.isml/Streams(ch)").CombinedOutput()
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	peak := 0
	for _, s := range ss {
		peak += len(senderFiles(t, s.dir))
	}
	waitUntil(t, 25*time.Second, "retention pruned the origin's store", func() (bool, string) {
		n, err := scrapeMetric(base, "sluice_fragments_pruned_total")
		return err == nil && n > 0, fmt.Sprintf("%v pruned (%v)", n, err)
	})
	kept := storedBlocks(t, data, "live/ch")
	tracks := map[string]bool{}
	for id := range kept {
		tracks[id.Track] = true
	}
	waitUntil(t, 15*time.Second, "every sender holds exactly its share of what the origin keeps", func() (bool, string) {
		return sendersHoldShares(t, ss, ms, kept)
	})
	held := 0
	for _, s := range ss {
		held += len(senderFiles(t, s.dir))
	}
	t.Logf("retention: the senders held %d block files after the push, %d after the prune (the origin keeps %d blocks, R = 2)",
		peak, held, len(kept))
	if peak <= held {
		t.Errorf("the senders' disks did not shrink: %d block files, then %d", peak, held)
	}
	checkSenderHeaders(t, ss, tracks)
	var deleted float64
	for _, s := range ss {
		n, _ := scrapeMetric(s.base, "sluice_sender_deleted_blocks_total", `result="deleted"`)
		deleted += n
	}
	if deleted == 0 {
		t.Error("no sender counted a deleted block")
	}

	// A fourth sender joins: it gets its share, the others lose what they
	// no longer own.
	joined := time.Now()
	ss = append(ss, startClSender(t, bin, "sender-d", filepath.Join(dir, "sender-d"), reg...))
	ms = waitSenderSet(t, set, 4, 10*time.Second)
	kept = storedBlocks(t, data, "live/ch")
	waitUntil(t, 20*time.Second, "after the join every sender holds exactly its share", func() (bool, string) {
		return sendersHoldShares(t, ss, ms, kept)
	})
	t.Logf("sender-d joined; every sender held exactly its share %v later", time.Since(joined).Round(10*time.Millisecond))
	checkSenderHeaders(t, ss, tracks)
	// The senders may hold their shares a moment before the origin's
	// rebalance pass ends and logs what it did.
	rebalanced := regexp.MustCompile(`rebalance done.*deleted=[1-9].*`)
	waitUntil(t, 20*time.Second, "the origin logs a rebalance that deleted copies", func() (bool, string) {
		return rebalanced.MatchString(origin.out.String()), origin.out.String()
	})
	t.Logf("origin: %s", rebalanced.FindString(origin.out.String()))
	if n, err := scrapeMetric(base, "sluice_cluster_rebalance_deleted_copies_total"); err != nil || n == 0 {
		t.Errorf("the origin counted %v non-owner copies deleted (%v)", n, err)
	}
	t.Logf("took %v", time.Since(t0).Round(100*time.Millisecond))
}

// senderFiles lists the blocks in a sender's block directory
// (<dir>/<point>/<track>/<start>.m4s).
func senderFiles(t *testing.T, dir string) map[cluster.BlockID]bool {
	t.Helper()
	out := map[cluster.BlockID]bool{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(e.Name(), ".m4s") || strings.HasPrefix(e.Name(), ".") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) < 3 {
			return fmt.Errorf("unexpected block file %s", rel)
		}
		start, err := strconv.ParseInt(strings.TrimSuffix(parts[len(parts)-1], ".m4s"), 10, 64)
		if err != nil {
			return fmt.Errorf("block file %s: %w", rel, err)
		}
		out[cluster.BlockID{Point: strings.Join(parts[:len(parts)-2], "/"), Track: parts[len(parts)-2], Start: start}] = true
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// sendersHoldShares reports whether the block directory of every sender
// holds exactly the blocks of kept it owns among ms (R = 2), and why not.
func sendersHoldShares(t *testing.T, ss []*clSender, ms []membership.Member, kept map[cluster.BlockID][]byte) (bool, string) {
	t.Helper()
	var why []string
	for _, s := range ss {
		var id string
		for _, m := range ms {
			if m.URL == s.base {
				id = m.ID
			}
		}
		if id == "" {
			return false, s.name + " is not in the set"
		}
		files := senderFiles(t, s.dir)
		var extra, lacks int
		for b := range files {
			owned := false
			for _, o := range placement.Owners(ms, b, 2) {
				owned = owned || o.ID == id
			}
			if _, ok := kept[b]; !ok || !owned {
				extra++
			}
		}
		for b := range kept {
			for _, o := range placement.Owners(ms, b, 2) {
				if o.ID == id && !files[b] {
					lacks++
				}
			}
		}
		if extra > 0 || lacks > 0 {
			why = append(why, fmt.Sprintf("%s: %d files, %d not its own or pruned, %d of its own missing", s.name, len(files), extra, lacks))
		}
	}
	sort.Strings(why)
	return len(why) == 0, strings.Join(why, "; ")
}

// checkSenderHeaders checks that every sender's block directory holds the
// header of every track (headers are never deleted).
func checkSenderHeaders(t *testing.T, ss []*clSender, tracks map[string]bool) {
	t.Helper()
	for _, s := range ss {
		for tr := range tracks {
			if _, err := os.Stat(filepath.Join(s.dir, "live", "ch", tr, "init.mp4")); err != nil {
				t.Errorf("%s: header of %s: %v", s.name, tr, err)
			}
		}
	}
}
