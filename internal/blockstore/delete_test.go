package blockstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-media/sluice/internal/cluster"
)

// TestDelete: deleting removes a block from mass storage and RAM; a pinned
// block keeps serving from RAM, takes no new pin, and leaves RAM with its
// last pin; a block stored again after such a delete is a plain block.
func TestDelete(t *testing.T) {
	const size = 10_000
	for _, c := range []struct {
		name      string
		setup     func(t *testing.T, s *Store) // before the delete of block 1
		want      DeleteOutcome
		inRAM     bool // block 1 in RAM right after the delete
		openAfter bool // block 1 opens right after the delete
	}{
		{name: "on disk only", want: Deleted},
		{name: "unpinned in RAM", setup: func(t *testing.T, s *Store) {
			s.Pin(context.Background(), "A", pin("s", 1))
			waitIdle(t, s, 1)
			s.Unpin("A", pin("s", 1))
		}, want: Deleted},
		{name: "pinned", setup: func(t *testing.T, s *Store) {
			if st := s.Pin(context.Background(), "A", pin("s", 1)); st != Pinned {
				t.Fatal(st)
			}
			waitIdle(t, s, 1)
		}, want: DeleteDeferred, inRAM: true, openAfter: true},
		{name: "absent", setup: func(t *testing.T, s *Store) {
			if _, err := s.Delete(context.Background(), blk(1)); err != nil {
				t.Fatal(err)
			}
		}, want: DeleteAbsent},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, 3, size, 1<<20, nil)
			ctx := context.Background()
			if c.setup != nil {
				c.setup(t, s)
			}
			got, err := s.Delete(ctx, blk(1))
			if err != nil || got != c.want {
				t.Fatalf("delete: %v %v, want %v", got, err, c.want)
			}
			if _, err := s.Backend().StatBlock(ctx, blk(1)); !errors.Is(err, ErrNotFound) {
				t.Errorf("still in mass storage: %v", err)
			}
			if s.Resident(blk(1)) != c.inRAM {
				t.Errorf("in RAM: %v, want %v", s.Resident(blk(1)), c.inRAM)
			}
			if st := s.Stats(); st.Blocks != 2 {
				t.Errorf("%d blocks in mass storage, want 2", st.Blocks)
			}
			b, err := s.Open(ctx, blk(1))
			if c.openAfter {
				if err != nil {
					t.Fatalf("a pinned deleted block must still open: %v", err)
				}
				data, _ := io.ReadAll(b.ReadSeeker())
				b.Close()
				if !bytes.Equal(data, payload(1, size)) {
					t.Error("a pinned deleted block serves other bytes")
				}
			} else if !errors.Is(err, ErrNotFound) {
				t.Errorf("open after delete: %v, want ErrNotFound", err)
			}
			// No new pin on a deleted block, from another session too.
			if st := s.Pin(ctx, "B", pin("t", 1)); st != Missing {
				t.Errorf("new pin after delete: %v, want missing", st)
			}
			// The last pin goes: the RAM copy goes.
			s.DropScheduler("A")
			if s.Resident(blk(1)) || s.Stats().RAMBytes != 0 {
				t.Errorf("after the last unpin: resident %v, %d RAM bytes", s.Resident(blk(1)), s.Stats().RAMBytes)
			}
			// Other blocks are untouched.
			if st := s.Pin(ctx, "B", pin("t", 2)); st != Pinned {
				t.Errorf("pin of another block: %v", st)
			}
		})
	}
}

// TestDeleteDeferredThenStoredAgain: a block deleted while pinned and
// stored again meanwhile stays in RAM after the last unpin (as any unpinned
// block) and takes new pins.
func TestDeleteDeferredThenStoredAgain(t *testing.T) {
	s := newStore(t, 2, 5000, 1<<20, nil)
	ctx := context.Background()
	s.Pin(ctx, "A", pin("s", 0))
	waitIdle(t, s, 0)
	if got, err := s.Delete(ctx, blk(0)); err != nil || got != DeleteDeferred {
		t.Fatalf("delete: %v %v", got, err)
	}
	if added, err := s.Put(ctx, blk(0), payload(0, 5000)); err != nil || !added {
		t.Fatalf("put again: %v %v", added, err)
	}
	if st := s.Pin(ctx, "B", pin("t", 0)); st != Pinned {
		t.Errorf("pin after the block was stored again: %v", st)
	}
	s.DropScheduler("A")
	s.DropScheduler("B")
	if !s.Resident(blk(0)) {
		t.Error("a block stored again left RAM with its last pin")
	}
}

// TestDiskDeleteKeepsOpenFile: the disk backend unlinks the file; a
// descriptor opened before keeps reading the whole block.
func TestDiskDeleteKeepsOpenFile(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := payload(3, 70_000)
	if _, err := d.PutBlock(ctx, blk(3), want); err != nil {
		t.Fatal(err)
	}
	obj, err := d.OpenBlock(ctx, blk(3))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if ok, err := d.DeleteBlock(ctx, blk(3)); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := d.DeleteBlock(ctx, blk(3)); ok || err != nil {
		t.Fatalf("second delete: %v %v, want absent", ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ch", "video_1000", "3.m4s")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there: %v", err)
	}
	got, err := io.ReadAll(io.NewSectionReader(obj, 0, obj.Size()))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("open block after delete: %d bytes, %v", len(got), err)
	}
	if d.Blocks() != 0 {
		t.Errorf("Blocks() = %d after delete", d.Blocks())
	}
	if _, err := d.DeleteBlock(ctx, cluster.BlockID{Point: "../x", Track: "v", Start: 1}); err == nil {
		t.Error("delete of an invalid block id succeeded")
	}
}
