package blockstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sluice-media/sluice/internal/atomicfile"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/rofile"
	"github.com/sluice-media/sluice/internal/store"
)

// ErrNotFound is returned for blocks and track headers the store does not hold.
var ErrNotFound = errors.New("not found")

// ErrReadOnly is wrapped by the errors of a backend that does not delete
// blocks (one over a store that prunes itself, as `sluice serve`'s).
var ErrReadOnly = errors.New("read-only mass storage")

// Backend is the mass storage of a sender: every block it owns and every
// track header, durable across restarts. Disk is the local-directory
// implementation; an object-storage backend implements the same methods
// (Object then need not be an *os.File).
type Backend interface {
	// PutBlock stores a block. A block already stored is kept as it is
	// (blocks are immutable: the first copy wins) and PutBlock reports
	// false.
	PutBlock(ctx context.Context, id cluster.BlockID, data []byte) (bool, error)
	// OpenBlock opens a stored block (ErrNotFound if absent).
	OpenBlock(ctx context.Context, id cluster.BlockID) (Object, error)
	// StatBlock returns the size of a stored block (ErrNotFound if absent).
	StatBlock(ctx context.Context, id cluster.BlockID) (int64, error)
	// PutInit stores (or replaces) a track's CMAF header and its content type.
	PutInit(ctx context.Context, point, track string, data []byte, contentType string) error
	// Init returns a track's CMAF header and content type (ErrNotFound).
	Init(ctx context.Context, point, track string) ([]byte, string, error)
	// DeleteBlock removes a stored block and reports whether it was there
	// (false and no error: absent). Readers that opened the block before
	// may go on reading it (an unlinked file, an object read in full). A
	// backend that does not delete returns an error wrapping ErrReadOnly.
	// Track headers are never deleted.
	DeleteBlock(ctx context.Context, id cluster.BlockID) (bool, error)
	// Blocks is the number of blocks stored.
	Blocks() int
}

// Object is an open block on mass storage.
type Object interface {
	io.ReaderAt
	io.Closer
	// Size is the block's length in bytes.
	Size() int64
	// File returns the object as an *os.File positioned at 0, when it is
	// one (a local file: it can be sent with sendfile), else nil.
	File() *os.File
}

// ValidBlock reports whether a block ID can name a stored block: a valid
// publishing point name and track ID (internal/store rules).
func ValidBlock(id cluster.BlockID) bool {
	return store.ValidPointName(id.Point) && store.ValidID(id.Track)
}

// Disk stores blocks as files under a directory:
// <dir>/<point>/<track>/<start>.m4s, and <dir>/<point>/<track>/init.mp4 with
// init.json (content type). Writes are atomic (temporary file, fsync,
// rename), so a crash never leaves a torn block.
type Disk struct {
	dir    string
	blocks atomic.Int64
}

// OpenDisk opens (creating if needed) a block directory and counts the
// blocks in it, removing temporary files a crash left behind.
func OpenDisk(dir string) (*Disk, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create block directory: %w", err)
	}
	d := &Disk{dir: dir}
	var n int64
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
		case strings.HasPrefix(e.Name(), atomicfile.TempPrefix):
			os.Remove(path)
		case strings.HasSuffix(e.Name(), ".m4s"):
			n++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan block directory: %w", err)
	}
	d.blocks.Store(n)
	return d, nil
}

// Dir is the block directory.
func (d *Disk) Dir() string { return d.dir }

func (d *Disk) trackDir(point, track string) string {
	return filepath.Join(d.dir, filepath.FromSlash(point), track)
}

func (d *Disk) blockPath(id cluster.BlockID) string {
	return filepath.Join(d.trackDir(id.Point, id.Track), strconv.FormatInt(id.Start, 10)+".m4s")
}

// PutBlock implements Backend.
func (d *Disk) PutBlock(ctx context.Context, id cluster.BlockID, data []byte) (bool, error) {
	if !ValidBlock(id) {
		return false, fmt.Errorf("invalid block %s", id)
	}
	path := d.blockPath(id)
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("block directory: %w", err)
	}
	// Concurrent writers of one block create it once, so the count of
	// blocks stays exact.
	created, err := atomicfile.Create(path, data, atomicfile.Durable)
	if created {
		d.blocks.Add(1)
	}
	if err != nil {
		return created, fmt.Errorf("store block %s: %w", id, err)
	}
	return created, nil
}

// OpenBlock implements Backend.
func (d *Disk) OpenBlock(ctx context.Context, id cluster.BlockID) (Object, error) {
	if !ValidBlock(id) {
		return nil, fmt.Errorf("block %s: %w", id, ErrNotFound)
	}
	f, err := rofile.Open(d.blockPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("block %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("open block %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat block %s: %w", id, err)
	}
	return &fileObject{f: f, size: fi.Size()}, nil
}

// StatBlock implements Backend.
func (d *Disk) StatBlock(ctx context.Context, id cluster.BlockID) (int64, error) {
	if !ValidBlock(id) {
		return 0, fmt.Errorf("block %s: %w", id, ErrNotFound)
	}
	fi, err := os.Stat(d.blockPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("block %s: %w", id, ErrNotFound)
		}
		return 0, fmt.Errorf("stat block %s: %w", id, err)
	}
	return fi.Size(), nil
}

type initMeta struct {
	ContentType string `json:"content_type"`
}

// PutInit implements Backend.
func (d *Disk) PutInit(ctx context.Context, point, track string, data []byte, contentType string) error {
	if !ValidBlock(cluster.BlockID{Point: point, Track: track}) {
		return fmt.Errorf("invalid track %s/%s", point, track)
	}
	dir := d.trackDir(point, track)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("track directory: %w", err)
	}
	meta, _ := json.Marshal(initMeta{ContentType: contentType})
	if err := atomicfile.Write(filepath.Join(dir, "init.json"), meta, atomicfile.Durable); err != nil {
		return fmt.Errorf("store init of %s/%s: %w", point, track, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "init.mp4"), data, atomicfile.Durable); err != nil {
		return fmt.Errorf("store init of %s/%s: %w", point, track, err)
	}
	return nil
}

// Init implements Backend.
func (d *Disk) Init(ctx context.Context, point, track string) ([]byte, string, error) {
	if !ValidBlock(cluster.BlockID{Point: point, Track: track}) {
		return nil, "", fmt.Errorf("track %s/%s: %w", point, track, ErrNotFound)
	}
	dir := d.trackDir(point, track)
	data, err := os.ReadFile(filepath.Join(dir, "init.mp4"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("init of %s/%s: %w", point, track, ErrNotFound)
		}
		return nil, "", fmt.Errorf("read init of %s/%s: %w", point, track, err)
	}
	var meta initMeta
	if b, err := os.ReadFile(filepath.Join(dir, "init.json")); err == nil {
		json.Unmarshal(b, &meta)
	}
	return data, meta.ContentType, nil
}

// DeleteBlock implements Backend: the block's file is unlinked (an open
// descriptor of it keeps reading it until closed, on Linux). Empty track
// directories are left in place.
func (d *Disk) DeleteBlock(ctx context.Context, id cluster.BlockID) (bool, error) {
	if !ValidBlock(id) {
		return false, fmt.Errorf("invalid block %s", id)
	}
	if err := os.Remove(d.blockPath(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("delete block %s: %w", id, err)
	}
	d.blocks.Add(-1)
	return true, nil
}

// Blocks implements Backend.
func (d *Disk) Blocks() int { return int(d.blocks.Load()) }

type fileObject struct {
	f    *os.File
	size int64
}

func (o *fileObject) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o *fileObject) Close() error                            { return o.f.Close() }
func (o *fileObject) Size() int64                             { return o.size }
func (o *fileObject) File() *os.File                          { return o.f }
