package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/placement"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// e2eClusterSecret is the secret of the test clusters.
const e2eClusterSecret = "e2e-cluster-secret"

// senderProc is one `sluice sender` child process.
type senderProc struct {
	id, base string
	p        *proc
}

// startSenderProc starts `sluice sender` on a free port with its own block
// directory and waits until it is ready (registered, with etcd).
func startSenderProc(t *testing.T, bin, name string, extra ...string) *senderProc {
	t.Helper()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{bin, "sender", "--listen", addr, "--data", filepath.Join(t.TempDir(), name),
		"--cluster-secret", e2eClusterSecret, "--log-level", "debug"}, extra...)
	p := startProc(t, name, filepath.Join(artifactsDir(t), name+".log"), args...)
	s := &senderProc{id: addr, base: "http://" + addr, p: p}
	waitHTTP(t, s.base+"/readyz", 30*time.Second, p)
	return s
}

// waitSenderSet waits until set has n members and returns them.
func waitSenderSet(t *testing.T, set membership.Set, n int, timeout time.Duration) []membership.Member {
	t.Helper()
	deadline := time.After(timeout)
	for {
		ch := set.Changed()
		if ms := set.Members(); len(ms) == n {
			return ms
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("sender set has %v, want %d members within %v", set.Members(), n, timeout)
		}
	}
}

// senderBlockToken grants the session "e2e" for a point at a sender, as a
// scheduler does (a batch of scheduler "e2e" with a 5-minute lease), and
// returns its token, valid for every block of the point there.
func senderBlockToken(t *testing.T, base, point string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := placement.NewClient([]byte(e2eClusterSecret), nil)
	if _, err := cli.Batch(ctx, base, cluster.Batch{Scheduler: "e2e", Lease: 5 * time.Minute, GrantTTL: time.Hour,
		Grants: []cluster.Grant{{Session: "e2e", Point: point}}}); err != nil {
		t.Fatalf("grant the e2e session at %s: %v", base, err)
	}
	return cluster.Sign([]byte(e2eClusterSecret), cluster.Token{Session: "e2e", Point: point})
}

// fetchSenderBlock GETs a block from a sender with a valid token.
func fetchSenderBlock(t *testing.T, base string, id cluster.BlockID) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(placement.ClientURL(base, senderBlockToken(t, base, id.Point), id))
	if err != nil {
		t.Fatalf("GET block %s from %s: %v", id, base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// storedBlocks lists every fragment of a point in a data directory with its
// bytes.
func storedBlocks(t *testing.T, dataDir, point string) map[cluster.BlockID][]byte {
	t.Helper()
	st, err := store.OpenShared(dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Point(point)
	if err != nil {
		t.Fatal(err)
	}
	out := map[cluster.BlockID][]byte{}
	for _, tr := range p.View(0).Tracks {
		for _, f := range tr.Frags {
			data, _, err := p.ReadFragment(tr.ID, f.Start)
			if err != nil {
				t.Fatal(err)
			}
			out[cluster.BlockID{Point: point, Track: tr.ID, Start: f.Start}] = data
		}
	}
	return out
}

// checkBlockPlacement checks that every block is held by exactly its r owners
// among ms (byte for byte) and by no other sender; it returns the number of
// copies found.
func checkBlockPlacement(t *testing.T, ms []membership.Member, blocks map[cluster.BlockID][]byte, r int) int {
	t.Helper()
	copies := 0
	for id, want := range blocks {
		owners := map[string]bool{}
		for _, o := range placement.Owners(ms, id, r) {
			owners[o.ID] = true
		}
		for _, m := range ms {
			code, got := fetchSenderBlock(t, m.URL, id)
			switch {
			case owners[m.ID] && (code != 200 || !bytes.Equal(got, want)):
				t.Errorf("owner %s of %s: status %d, %d bytes (want %d)", m.ID, id, code, len(got), len(want))
			case !owners[m.ID] && code != 404:
				t.Errorf("non-owner %s of %s: status %d, want 404", m.ID, id, code)
			case code == 200:
				copies++
			}
		}
	}
	return copies
}

// checkReplicated fails unless every block is on exactly its r owners
// among ms (checkBlockPlacement), the senders hold r copies of every block
// in all, and every track header (init) is on every sender. It returns the
// blocks each sender holds, by sender ID, and the number of tracks.
func checkReplicated(t *testing.T, ms []membership.Member, senders []*senderProc, blocks map[cluster.BlockID][]byte, r int) (held map[string]int, tracks int) {
	t.Helper()
	if copies := checkBlockPlacement(t, ms, blocks, r); copies != r*len(blocks) {
		t.Errorf("%d copies of %d blocks, want %d", copies, len(blocks), r*len(blocks))
	}
	seen := map[string]bool{}
	for id := range blocks {
		if seen[id.Track] {
			continue
		}
		seen[id.Track] = true
		for _, s := range senders {
			code, body := get(t, placement.InitURL(s.base, senderBlockToken(t, s.base, id.Point), id.Point, id.Track))
			if code != 200 || len(body) < 8 || string(body[4:8]) != "ftyp" {
				t.Errorf("init of %s/%s at %s: %d, %d bytes", id.Point, id.Track, s.id, code, len(body))
			}
		}
	}
	held = map[string]int{}
	total := 0
	for _, s := range senders {
		held[s.id] = fetchSenderStats(t, s.base).Blocks
		total += held[s.id]
	}
	if total != r*len(blocks) {
		t.Errorf("senders hold %d blocks, want %d", total, r*len(blocks))
	}
	return held, len(seen)
}

// fetchSenderStats fetches a sender's /internal/v1/stats.
func fetchSenderStats(t *testing.T, base string) cluster.SenderStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := placement.NewClient([]byte(e2eClusterSecret), nil).Stats(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// senderSet follows the sender set registered in e (closed when the test
// ends) and waits until it has n members, which it returns too.
func (e *e2eEtcd) senderSet(t *testing.T, n int) (*membership.EtcdSet, []membership.Member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	set, err := membership.Etcd(ctx, e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	return set, waitSenderSet(t, set, n, 10*time.Second)
}

// pushLiveCh pushes 8 s of the sample media, as fast as the origin at base
// takes it, to point live/ch, and returns the blocks the origin over data
// stored (it fails the test on fewer than 8).
func pushLiveCh(t *testing.T, bin, base, data string) map[cluster.BlockID][]byte {
	t.Helper()
	out, err := exec.Command(bin, "push", "--fast", "--duration", "8s", testmedia.Sample(t),
		base+"/live/ch.isml/Streams(ch)").CombinedOutput()
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	blocks := storedBlocks(t, data, "live/ch")
	if len(blocks) < 8 {
		t.Fatalf("origin stored %d fragments", len(blocks))
	}
	return blocks
}
