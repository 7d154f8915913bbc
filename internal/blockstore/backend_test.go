package blockstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-media/sluice/internal/cluster"
)

// TestDiskConcurrentPut: writers racing to store one block (the origin's
// forwarding and its rebalance do) create it once; the block count stays
// exact, the first copy is kept whole, and no temporary file is left.
func TestDiskConcurrentPut(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := cluster.BlockID{Point: "live/ch", Track: "video_1", Start: 1000}
	const writers = 16
	var wg sync.WaitGroup
	created := make(chan int, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := d.PutBlock(context.Background(), id, bytes.Repeat([]byte{byte(i)}, 64<<10))
			if err != nil {
				t.Error(err)
			}
			if ok {
				created <- i
			}
		}()
	}
	wg.Wait()
	close(created)
	var winners []int
	for i := range created {
		winners = append(winners, i)
	}
	if len(winners) != 1 {
		t.Fatalf("%d writers created the block, want 1", len(winners))
	}
	if n := d.Blocks(); n != 1 {
		t.Errorf("Blocks() = %d, want 1", n)
	}
	data, err := os.ReadFile(d.blockPath(id))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, bytes.Repeat([]byte{byte(winners[0])}, 64<<10)) {
		t.Errorf("the stored block is not the creator's copy")
	}
	entries, err := os.ReadDir(filepath.Dir(d.blockPath(id)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// A later put of the same block changes nothing.
	if ok, err := d.PutBlock(context.Background(), id, []byte("other")); ok || err != nil {
		t.Errorf("second put: created %v, %v", ok, err)
	}
	if n := d.Blocks(); n != 1 {
		t.Errorf("Blocks() after a second put = %d, want 1", n)
	}
}
