package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// TestCreate: of concurrent creators of one path exactly one creates it,
// with its whole data, and no temporary file is left.
func TestCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "block")
	const n = 8
	var wg sync.WaitGroup
	created := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := Create(p, bytes.Repeat([]byte{byte('a' + i)}, 4096), Durable)
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
		t.Fatalf("%d creators created the file, want 1", len(winners))
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, bytes.Repeat([]byte{byte('a' + winners[0])}, 4096)) {
		t.Fatal("the file does not hold the winner's data")
	}
	if ok, err := Create(p, []byte("again"), NoSync); ok || err != nil {
		t.Fatalf("Create over an existing file: %v, %v", ok, err)
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
