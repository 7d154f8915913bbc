package blockstore

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/rofile"
)

// maxIdleFiles bounds the reopened descriptors a pinned RAM block keeps for
// reuse: the responses of one block that run at the same time beyond it
// reopen (and close) their own.
const maxIdleFiles = 4

// memBlock is one block held in RAM: a sealed memfd (anonymous shared
// memory, outside the Go heap). A response needs a descriptor with a file
// position of its own: it takes one reopened through /proc/self/fd and
// hands that *os.File to net/http, which sends it with sendfile: a RAM hit
// costs no copy through user space, and the cache does not grow the Go heap
// (no GC pressure, no GOMEMLIMIT tuning). The kernel frees the memory when
// the last descriptor closes, also when the process is killed.
//
// While the block is pinned, a response gives its descriptor back (put)
// and the next one reuses it (up to maxIdleFiles idle descriptors): a
// pinned block is served without an open and a close per response. The
// idle descriptors are closed when the block is unpinned (setPooled(false))
// and with the last reference (evicted, store closed).
type memBlock struct {
	f    *os.File
	path string // /proc/self/fd/<fd>
	size int64
	// data is a read-only shared mapping of the memfd (nil for an empty
	// block): the copy send mode writes from it (no heap copy, but one
	// user-to-kernel copy per response).
	data []byte
	// refs counts the cache's reference plus responses opening the block;
	// the memfd is closed when it drops to zero, so an eviction never closes
	// a descriptor number another goroutine is about to reopen.
	refs atomic.Int32

	mu     sync.Mutex
	pooled bool       // keep descriptors given back (the block is pinned)
	idle   []*os.File // reopened descriptors at position 0, for reuse
}

// newMemBlock copies size bytes of src into a new sealed memfd.
func newMemBlock(name string, src io.Reader, size int64) (*memBlock, error) {
	fd, err := unix.MemfdCreate("sluice-block:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := unix.Ftruncate(fd, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd size: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(src, size))
	if err == nil && n != size {
		err = fmt.Errorf("short block: %d of %d bytes", n, size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fill memfd: %w", err)
	}
	// Immutable from now on: responses may rely on it.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	var data []byte
	if size > 0 {
		if data, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			f.Close()
			return nil, fmt.Errorf("map memfd: %w", err)
		}
	}
	m := &memBlock{f: f, path: "/proc/self/fd/" + strconv.Itoa(fd), size: size, data: data}
	m.refs.Store(1)
	return m, nil
}

// open returns a read-only descriptor of the block of its own, positioned
// at 0: an idle one, else a new one. The caller must hold a reference
// (refs) from open until it has given the descriptor back (put).
func (m *memBlock) open() (*os.File, error) {
	m.mu.Lock()
	if n := len(m.idle); n > 0 {
		f := m.idle[n-1]
		m.idle[n-1] = nil
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		return f, nil
	}
	m.mu.Unlock()
	f, err := rofile.Open(m.path)
	if err != nil {
		return nil, fmt.Errorf("reopen memfd: %w", err)
	}
	return f, nil
}

// put gives back a descriptor from open when its response is done: it is
// kept for reuse while the block is pooled and fewer than maxIdleFiles are
// idle, else closed. The caller still holds its reference.
func (m *memBlock) put(f *os.File) {
	m.mu.Lock()
	keep := m.pooled && len(m.idle) < maxIdleFiles
	m.mu.Unlock()
	if keep {
		// The next response expects position 0 (net/http seeks anyway,
		// but Block.File promises it).
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			keep = false
		}
	}
	if keep {
		m.mu.Lock()
		if keep = m.pooled && len(m.idle) < maxIdleFiles; keep {
			m.idle = append(m.idle, f)
		}
		m.mu.Unlock()
	}
	if !keep {
		f.Close()
	}
}

// setPooled turns keeping descriptors given back on (the block is pinned)
// or off (unpinned); off closes the idle ones.
func (m *memBlock) setPooled(on bool) {
	m.mu.Lock()
	m.pooled = on
	var idle []*os.File
	if !on {
		idle, m.idle = m.idle, nil
	}
	m.mu.Unlock()
	for _, f := range idle {
		f.Close()
	}
}

// idleFiles is the number of idle descriptors (tests).
func (m *memBlock) idleFiles() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.idle)
}

// release drops one reference and, with the last one, closes the idle
// descriptors and unmaps and closes the memfd.
func (m *memBlock) release() {
	if m.refs.Add(-1) == 0 {
		m.setPooled(false)
		if m.data != nil {
			unix.Munmap(m.data)
			m.data = nil
		}
		m.f.Close()
	}
}
