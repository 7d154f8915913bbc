// Package store keeps the fragments of every publishing point durably on a
// local disk and indexes them in memory. A fragment becomes visible only
// after its bytes are on disk under their final name (write, fsync, rename,
// fsync of the directory), so a crash never leaves a torn fragment that could
// be served; the index is rebuilt from the directory tree on start.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/atomicfile"
)

// ErrNotFound is returned for unknown points, tracks and fragments.
var ErrNotFound = errors.New("not found")

// ErrDisk marks a failure of the disk under the data directory: a file or
// directory the filesystem would not create, write, sync or rename (full
// disk, I/O error, read-only filesystem). Every write path of the store
// wraps such errors with it, so that callers recognise them with errors.Is
// (an ingest answers 500, never 4xx) whatever the message says.
var ErrDisk = errors.New("disk write failed")

// diskErr marks err (nil stays nil) as a failure of the disk.
func diskErr(err error) error {
	if err == nil || errors.Is(err, ErrDisk) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDisk, err)
}

// mkdirAll creates a directory of the store (ErrDisk on failure).
func mkdirAll(dir string) error { return diskErr(os.MkdirAll(dir, 0o755)) }

var (
	pointRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}){0,3}$`)
	idRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

// ValidPointName reports whether name can name a publishing point: up to four
// path segments of letters, digits, '_', '-' and '.', none starting with '.'.
func ValidPointName(name string) bool {
	return pointRe.MatchString(name) && !strings.Contains(name, "..") && !strings.HasSuffix(name, ".isml") && !strings.HasSuffix(name, ".ism")
}

// ValidID reports whether s can name a stream or track.
func ValidID(s string) bool { return idRe.MatchString(s) && !strings.Contains(s, "..") }

// FragRef is the index entry of one stored fragment.
type FragRef struct {
	Start    int64  `json:"t"`
	Duration uint64 `json:"d"`
	Size     int64  `json:"s"`
	Key      bool   `json:"k"`
}

// End is the start time of the next fragment.
func (f FragRef) End() int64 { return f.Start + int64(f.Duration) }

// Store is the set of publishing points under one data directory.
type Store struct {
	dir string
	log *slog.Logger
	// shared: another process (a running server) may be writing the
	// directory; loading never removes files (see OpenShared).
	shared bool
	// noSync skips the fsyncs of what AddFragment, EndTrack and anchors
	// write (tests only: NoSync).
	noSync bool

	mu     sync.Mutex
	points map[string]*Point
	added  hookList[FragmentAdded]
	pruned hookList[FragmentsPruned]
	parts  hookList[PartEvent]
}

// hookList is the callbacks registered for one kind of store event. Adding
// one while events are delivered is safe: a delivery calls those
// registered when it began.
type hookList[E any] struct {
	mu sync.Mutex
	fs []func(E)
}

func (l *hookList[E]) add(f func(E)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fs = append(l.fs, f)
}

func (l *hookList[E]) run(ev E) {
	l.mu.Lock()
	fs := l.fs
	l.mu.Unlock()
	for _, f := range fs {
		f(ev)
	}
}

// FragmentAdded describes a fragment that AddFragment has just stored
// durably and indexed.
type FragmentAdded struct {
	Point string
	Track string
	Ref   FragRef
	// Data is the fragment's bytes; hooks must not modify them and must
	// copy them to keep them past the call.
	Data []byte
}

// OnFragment registers f to be called after each fragment AddFragment
// stores (not for duplicates), e.g. to forward it to the senders of a
// cluster. f runs on the adding goroutine once the point is unlocked but
// while the track's writer lock is held: it must return quickly (queue the
// work) and must not add fragments itself.
func (s *Store) OnFragment(f func(FragmentAdded)) { s.added.add(f) }

// PartEvent is a part added to a track's fragment in progress
// (Point.AddPart), or, with Complete, the end of that fragment's parts: it
// was stored complete. A receiver keeping parts passes End to
// parts.Track.Complete, which marks them complete when they end there and
// forgets them otherwise (another stream completed the fragment).
type PartEvent struct {
	Point, Track string
	FragStart    int64
	// A part: its index in the fragment, description and bytes (as
	// stored: hooks must not modify them, and may keep them).
	Index int
	Ref   PartRef
	Data  []byte
	// The fragment's completion.
	Complete bool
	End      int64
}

// OnPart registers f to be called after each part AddPart keeps and after
// each fragment with parts is stored complete, in that order per track
// (e.g. to forward the parts to every sender of a cluster). f runs on the
// adding goroutine after the point is unlocked: it must return quickly
// (queue the work).
func (s *Store) OnPart(f func(PartEvent)) { s.parts.add(f) }

func (s *Store) partEvent(ev PartEvent) { s.parts.run(ev) }

// FragmentsPruned describes the fragments of one track that Prune has
// just deleted (index and files).
type FragmentsPruned struct {
	Point string
	Track string
	// Starts are the deleted fragments' start times, in order.
	Starts []int64
}

// OnPrune registers f to be called after Prune deleted fragments of a
// track (archive retention), e.g. to delete their copies on the senders of
// a cluster. f runs on the pruning goroutine after the point is unlocked:
// it must return quickly (queue the work).
func (s *Store) OnPrune(f func(FragmentsPruned)) { s.pruned.add(f) }

func (s *Store) fragmentsPruned(evs []FragmentsPruned) {
	for _, ev := range evs {
		s.pruned.run(ev)
	}
}

func (s *Store) fragmentAdded(ev FragmentAdded) { s.added.run(ev) }

// Open opens (creating if needed) the data directory and loads every
// publishing point found in it, removing temporary files left by a crash.
func Open(dir string, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := &Store{dir: dir, log: log, points: map[string]*Point{}}
	var names []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != dir {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			// Also where no point.json was written yet: a crash while
			// a point was being created.
			s.removeTemp(path)
			return nil
		}
		if !d.IsDir() && d.Name() == pointFile {
			rel, _ := filepath.Rel(dir, filepath.Dir(path))
			names = append(names, filepath.ToSlash(rel))
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan data directory: %w", err)
	}
	for _, n := range names {
		if _, err := s.load(n); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// removeTemp removes a temporary file an interrupted write left: never
// renamed, so never acknowledged. A shared store (another process may be
// writing it) leaves it alone.
func (s *Store) removeTemp(path string) {
	if s.shared {
		return
	}
	if err := os.Remove(path); err == nil {
		s.log.Info("removed a temporary file an interrupted write left", "file", path)
	}
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// Points returns the names of all publishing points, sorted.
func (s *Store) Points() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.points))
	for n := range s.points {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// PointsOnDisk returns the names of every publishing point of the data
// directory, sorted: the loaded ones and those that appeared on disk after
// Open (an asset written by `sluice import` or an archive cut), which Point
// loads on first use.
func (s *Store) PointsOnDisk() []string {
	seen := map[string]bool{}
	for _, n := range s.Points() {
		seen[n] = true
	}
	// A directory with a point file is a point (its fragment directories
	// are not read); others are searched down to the depth of a name.
	var walk func(rel string, depth int)
	walk = func(rel string, depth int) {
		dir := filepath.Join(s.dir, filepath.FromSlash(rel))
		if rel != "" {
			if _, err := os.Stat(filepath.Join(dir, pointFile)); err == nil {
				if ValidPointName(rel) {
					seen[rel] = true
				}
				return
			}
		}
		if depth == 4 {
			return
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				walk(path.Join(rel, e.Name()), depth+1)
			}
		}
	}
	walk("", 0)
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Point returns a publishing point. A point that appeared on disk after Open
// (an asset written by `sluice import`) is loaded on first use.
func (s *Store) Point(name string) (*Point, error) {
	if !ValidPointName(name) {
		return nil, fmt.Errorf("publishing point %q: %w", name, ErrNotFound)
	}
	s.mu.Lock()
	p := s.points[name]
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	if _, err := os.Stat(filepath.Join(s.dir, filepath.FromSlash(name), pointFile)); err != nil {
		return nil, fmt.Errorf("publishing point %q: %w", name, ErrNotFound)
	}
	return s.load(name)
}

// Create returns the publishing point, creating it on disk if it is new.
func (s *Store) Create(name string) (*Point, error) {
	if p, err := s.Point(name); err == nil {
		return p, nil
	}
	if !ValidPointName(name) {
		return nil, fmt.Errorf("invalid publishing point name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.points[name]; p != nil {
		return p, nil
	}
	p := newPoint(s, name)
	if err := mkdirAll(p.dir); err != nil {
		return nil, fmt.Errorf("create point directory: %w", err)
	}
	p.meta.Created = time.Now().UTC()
	if err := p.saveMeta(); err != nil {
		return nil, err
	}
	s.points[name] = p
	return p, nil
}

func (s *Store) load(name string) (*Point, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.points[name]; p != nil {
		return p, nil
	}
	p := newPoint(s, name)
	if err := p.load(); err != nil {
		return nil, fmt.Errorf("load publishing point %q: %w", name, err)
	}
	s.points[name] = p
	return p, nil
}

const (
	pointFile  = "point.json"
	trackFile  = "track.json"
	streamFile = "stream.json"
	initFile   = "init.mp4"
	headerFile = "header.mp4"
	fragExt    = ".m4s"
	// tmpPrefix starts the name of a file being written (writeFileAtomic):
	// one left by a crash was never acknowledged and is removed at start.
	tmpPrefix = atomicfile.TempPrefix
)

// writeFileAtomic writes data under path so that path either does not exist
// or holds all of data (atomicfile.Write: temporary name, fsync, rename,
// fsync of the directory).
// Its errors are ErrDisk.
func writeFileAtomic(path string, data []byte) error { return writeFile(path, data, true) }

// writeFile is writeFileAtomic; without sync it skips the fsyncs (tests).
// Its errors are ErrDisk.
func writeFile(path string, data []byte, sync bool) error {
	m := atomicfile.Durable
	if !sync {
		m = atomicfile.NoSync
	}
	return diskErr(atomicfile.Write(path, data, m))
}

// syncDir makes a directory's entries durable (atomicfile.SyncDir). Its
// errors are ErrDisk.
func syncDir(dir string) error { return diskErr(atomicfile.SyncDir(dir)) }

func writeJSON(path string, v any) error { return writeJSONSync(path, v, true) }

// writeJSONSync is writeJSON; without sync it skips the fsyncs (tests).
func writeJSONSync(path string, v any, sync bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'), sync)
}

func fragName(start int64) string { return strconv.FormatInt(start, 10) + fragExt }
