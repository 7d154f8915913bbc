package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// block makes path a non-empty directory, so that renaming a file over it
// fails: a real refusal by the filesystem, whatever the privileges.
func block(t *testing.T, path string) {
	t.Helper()
	os.RemoveAll(path)
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestDiskErrorsAreTyped: every write path of the store reports a refusal
// of the filesystem as ErrDisk (callers answer 500 on it), including the
// stream header, the anchor and the end of a track.
func TestDiskErrorsAreTyped(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, dir string) error
	}{
		{"fragment", func(t *testing.T, dir string) error {
			_, p, ids, frags := emptyPoint(t, dir)
			f := frags[0]
			block(t, filepath.Join(dir, "ch", "t", ids[f.Info.TrackID], fragName(f.Info.Start)))
			_, err := p.AddFragment(ids[f.Info.TrackID], f)
			return err
		}},
		{"stream header", func(t *testing.T, dir string) error {
			_, p := pointCh(t, dir)
			h, _ := fixture(t)
			block(t, filepath.Join(dir, "ch", "s", "s", headerFile))
			_, err := p.SetHeader("s", h)
			return err
		}},
		{"anchor", func(t *testing.T, dir string) error {
			_, p, ids, frags := emptyPoint(t, dir)
			block(t, filepath.Join(dir, "ch", pointFile))
			_, err := p.AddFragment(ids[frags[0].Info.TrackID], frags[0])
			return err
		}},
		{"adopted anchor", func(t *testing.T, dir string) error {
			_, p, _, _ := emptyPoint(t, dir)
			block(t, filepath.Join(dir, "ch", pointFile))
			_, err := p.AdoptAnchor(time.Unix(1000, 0))
			return err
		}},
		{"end of track", func(t *testing.T, dir string) error {
			_, p, ids, _ := fill(t, dir)
			id := ids[1]
			block(t, filepath.Join(dir, "ch", "t", id, trackFile))
			return p.EndTrack(id)
		}},
		{"stream fed", func(t *testing.T, dir string) error {
			_, p, _, _ := emptyPoint(t, dir)
			block(t, filepath.Join(dir, "ch", "s", "s", streamFile))
			return p.StreamFed("s")
		}},
		{"point directory", func(t *testing.T, dir string) error {
			s, err := Open(dir, quiet())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "ch"), []byte("a file"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = s.Create("ch")
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.run(t, t.TempDir())
			if !errors.Is(err, ErrDisk) {
				t.Fatalf("err %v, want ErrDisk", err)
			}
		})
	}
}

// TestOpenRemovesTempFiles: a kill -9 during any atomic write leaves a
// .tmp-* file — in a track, stream or point directory, or in the
// directory of a point whose point.json was never written; the next start
// removes them all, and a shared store (another process writing) none.
func TestOpenRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	_, _, ids, _ := fill(t, dir)
	temps := []string{
		filepath.Join(dir, "ch", tmpPrefix+"1"),
		filepath.Join(dir, "ch", "s", "s", tmpPrefix+"2"),
		filepath.Join(dir, "ch", "t", ids[1], tmpPrefix+"3"),
		filepath.Join(dir, "half", tmpPrefix+"4"), // point.json never renamed
		filepath.Join(dir, tmpPrefix+"ready-5"),   // a readiness probe
	}
	plant := func() {
		for _, p := range temps {
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	plant()
	if _, err := OpenShared(dir, quiet()); err != nil {
		t.Fatal(err)
	}
	for _, p := range temps {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("shared open removed %s", p)
		}
	}
	p := reopen(t, dir, "ch")
	for _, tmp := range temps {
		if _, err := os.Stat(tmp); !os.IsNotExist(err) {
			t.Errorf("%s left after a start (err %v)", tmp, err)
		}
	}
	if len(p.Streams()) != 1 || len(p.View(0).Tracks) == 0 {
		t.Errorf("point lost its contents: %+v", p.Streams())
	}
}

// TestStreamExpiry: a stream that never received a fragment (a refused
// push with a new id) is removed once expired and idle; a fed stream is
// kept, and so is one with a body in progress. Fed survives a restart.
func TestStreamExpiry(t *testing.T) {
	dir := t.TempDir()
	_, p, ids, frags := emptyPoint(t, dir)
	h, _ := fixture(t)
	for _, id := range []string{"junk", "busy"} {
		if _, err := p.SetHeader(id, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.AddFragment(ids[frags[0].Info.TrackID], frags[0]); err != nil {
		t.Fatal(err)
	}
	if err := p.StreamFed("s"); err != nil {
		t.Fatal(err)
	}
	done := p.Receiving("busy")
	fed := map[string]bool{}
	for _, s := range p.Streams() {
		fed[s.ID] = s.Fed
	}
	if !fed["s"] || fed["junk"] || fed["busy"] {
		t.Fatalf("fed: %v", fed)
	}
	if gone, _ := p.ExpireStreams(time.Now(), time.Hour); len(gone) != 0 {
		t.Fatalf("expired before their time: %v", gone)
	}
	gone, err := p.ExpireStreams(time.Now().Add(2*time.Hour), time.Hour)
	if err != nil || len(gone) != 1 || gone[0] != "junk" {
		t.Fatalf("expired %v (%v), want [junk]", gone, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ch", "s", "junk")); !os.IsNotExist(err) {
		t.Errorf("junk stream directory left: %v", err)
	}
	done()
	if gone, _ := p.ExpireStreams(time.Now().Add(2*time.Hour), time.Hour); len(gone) != 1 || gone[0] != "busy" {
		t.Fatalf("after its push: expired %v, want [busy]", gone)
	}
	p = reopen(t, dir, "ch")
	if ss := p.Streams(); len(ss) != 1 || ss[0].ID != "s" || !ss[0].Fed {
		t.Fatalf("after a restart: %+v", ss)
	}
}

// TestFedInferredForOldStreams: a stream record written before the fed
// flag existed counts as fed when it created a track holding fragments.
func TestFedInferredForOldStreams(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir) // stream "s", fragments stored, never marked fed
	p := reopen(t, dir, "ch")
	if ss := p.Streams(); len(ss) != 1 || !ss[0].Fed {
		t.Fatalf("%+v", ss)
	}
}
