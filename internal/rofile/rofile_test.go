package rofile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("fragment"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "agment" {
		t.Fatalf("read %q %v", b, err)
	}
	if f.Name() != path {
		t.Fatalf("name %q", f.Name())
	}
	_, err = Open(filepath.Join(dir, "missing"))
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !os.IsNotExist(err) || !errors.As(err, &pe) || pe.Op != "open" {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Open(dir + "/f/x"); err == nil {
		t.Fatal("a path through a file opened")
	}
}
