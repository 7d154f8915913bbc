package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, m := range []Mode{Durable, NoSync} {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		for _, data := range []string{"first", "second, longer"} {
			if err := Write(p, []byte(data), m); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(p); string(got) != data {
				t.Fatalf("mode %d: read %q, want %q", m, got, data)
			}
		}
		noTemps(t, dir)
	}
	if err := Write(filepath.Join(t.TempDir(), "missing", "f"), []byte("x"), Durable); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
}

// TestCreate: Create makes a file once and never replaces it. (Racing
// creators: blockstore's TestDiskConcurrentPut, through Disk.PutBlock.)
func TestCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "block")
	for i, m := range []Mode{Durable, NoSync} {
		ok, err := Create(p, bytes.Repeat([]byte{'a' + byte(i)}, 4096), m)
		if ok != (i == 0) || err != nil {
			t.Fatalf("Create %d: %v, %v", i, ok, err)
		}
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, bytes.Repeat([]byte{'a'}, 4096)) {
		t.Fatal("a second Create replaced the file")
	}
	if _, err := Create(filepath.Join(dir, "missing", "f"), []byte("x"), Durable); err == nil {
		t.Fatal("a create in a missing directory succeeded")
	}
	noTemps(t, dir)
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			t.Errorf("temporary file %s left", e.Name())
		}
	}
}
