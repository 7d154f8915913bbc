package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/placement"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestSenderEtcdMembershipAndReplicas: three `sluice sender` processes
// register in a real etcd (Debian's etcd-server); `sluice sender-load`
// writes an imported VOD asset to them with R = 2 (each block on exactly its
// two owners, every init on all three); then one sender is killed with
// SIGKILL: it leaves the etcd set within its lease TTL, and every block is
// still served, byte for byte, by its new primary among the survivors.
func TestSenderEtcdMembershipAndReplicas(t *testing.T) {
	longTest(t)
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	etcd := startEtcdServer(t)
	const ttl = 2 * time.Second
	var senders []*senderProc
	for _, name := range []string{"sender-a", "sender-b", "sender-c"} {
		senders = append(senders, startSenderProc(t, bin, name, append([]string{"--etcd-ttl", ttl.String(), "--ram", "8M"}, etcd.senderArgs()...)...))
	}
	set, ms := etcd.senderSet(t, 3)
	started := map[string]string{}
	for _, s := range senders {
		started[s.id] = s.base
	}
	for _, m := range ms {
		if started[m.ID] != m.URL {
			t.Errorf("member %+v is not one of the senders started: %v", m, started)
		}
	}

	// A VOD asset, written to the owners.
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(bin, "import", "--quiet", testmedia.Sample(t), "movies/demo", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, append(append([]string{"sender-load"}, etcd.readerArgs()...), "--replicas", "2", "--cluster-secret", e2eClusterSecret, data, "movies/demo")...).CombinedOutput()
	if err != nil {
		t.Fatalf("sender-load: %v\n%s", err, out)
	}
	t.Logf("sender-load: %s", bytes.TrimSpace(out))
	blocks := storedBlocks(t, data, "movies/demo")
	held, _ := checkReplicated(t, ms, senders, blocks, 2)
	for _, s := range senders {
		if held[s.id] == 0 {
			t.Errorf("sender %s holds no block: placement does not spread", s.id)
		}
	}

	// kill -9 one sender: it leaves the set within the TTL.
	victim := senders[1]
	killed := time.Now()
	if err := syscall.Kill(victim.p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	left := waitSenderSet(t, set, 2, 3*ttl)
	took := time.Since(killed)
	t.Logf("killed sender %s left the etcd set after %v (lease TTL %v)", victim.id, took.Round(10*time.Millisecond), ttl)
	if took > ttl+1500*time.Millisecond {
		t.Errorf("sender left after %v, TTL %v", took, ttl)
	}
	for _, m := range left {
		if m.ID == victim.id {
			t.Fatalf("killed sender still in the set: %v", left)
		}
	}
	// Its blocks are served by the replicas: the new primary of every block
	// holds it.
	moved := 0
	for id, want := range blocks {
		prim := placement.Owners(left, id, 1)[0]
		if placement.Owners(ms, id, 1)[0].ID == victim.id {
			moved++
		}
		code, got := fetchSenderBlock(t, prim.URL, id)
		if code != 200 || !bytes.Equal(got, want) {
			t.Errorf("block %s at its new primary %s: %d, %d bytes", id, prim.ID, code, len(got))
		}
	}
	t.Logf("%d of %d blocks had the killed sender as primary; all served by their new primary", moved, len(blocks))
	if moved == 0 {
		t.Error("the killed sender was primary of no block: the test proves nothing")
	}
	if strings.Contains(victim.p.out.String(), "panic") {
		t.Errorf("sender output has a panic:\n%s", victim.p.out)
	}
}
