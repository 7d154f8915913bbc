package server

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// smallFS mounts a tmpfs of size bytes on a temporary directory: a real
// filesystem that fills up. It skips the test where mounting is not
// allowed (not root, no CAP_SYS_ADMIN).
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill up (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fill writes a file on dir's filesystem until it is full, then gives
// back leave bytes: a disk "full" for fragments, not for a tiny file.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			st, _ := f.Stat()
			if err := f.Truncate(st.Size() - leave); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
}

// TestReadyOnFullDisk: on a real filesystem that fills up — 32 KiB left,
// room for a small file but not for a fragment — /readyz says not ready
// (with the reason) while pushes get 500, and ready again, with pushes
// stored, once space is freed.
func TestReadyOnFullDisk(t *testing.T) {
	dir := smallFS(t, "4m")
	tiny := filepath.Join(t.TempDir(), "tiny.ismv")
	testmedia.Run(t, testmedia.TinyISMVArgs(2, "64x64", tiny))
	bodies := map[string][]byte{
		"tiny": testmedia.ReadFile(t, tiny),
		"big":  testmedia.ReadFile(t, testmedia.ISMVFile(t, t.TempDir(), 3, 1)), // fragments of ~100-200 KB
	}
	cfg := config.Defaults()
	cfg.Data = filepath.Join(dir, "data")
	cfg.Points = []config.Point{{Name: "live"}}
	cfg.MinFree = 256 << 10
	srv, err := New(cfg, Roles{Ingest: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	push := func(id string) (int, string) {
		resp, err := http.Post(ts.URL+"/live.isml/Streams("+id+")", "", bytes.NewReader(bodies[id]))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(t, srv.Handler()); code != 200 {
		t.Fatalf("empty disk: %d %s", code, body)
	}
	if code, body := push("tiny"); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	filler := fill(t, dir, 32<<10)
	code, body := readyz(t, srv.Handler())
	if code != 503 || !strings.Contains(body, "data directory") {
		t.Fatalf("full disk: /readyz %d %q, want 503", code, body)
	}
	t.Logf("full disk: %s", strings.TrimSpace(body))
	if code, body := push("big"); code != 500 {
		t.Fatalf("push on a full disk: %d %s, want 500", code, body)
	}
	os.Remove(filler)
	if code, body := readyz(t, srv.Handler()); code != 200 {
		t.Fatalf("space freed: %d %s", code, body)
	}
	if code, body := push("big"); code != 200 {
		t.Fatalf("push after space was freed: %d %s", code, body)
	}
}

// TestReadyBelowMinFree: a filesystem with room for the probe but less
// than min_free is not ready.
func TestReadyBelowMinFree(t *testing.T) {
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(cfg.Data, &fs); err != nil {
		t.Fatal(err)
	}
	cfg.MinFree = config.ByteSize(int64(fs.Bavail)*int64(fs.Bsize) + 1<<40)
	srv, err := New(cfg, Roles{Ingest: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, srv.Handler()); code != 503 || !strings.Contains(body, "below min_free") {
		t.Fatalf("%d %q", code, body)
	}
}
