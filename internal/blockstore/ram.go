package blockstore

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// memBlock is one block held in RAM: a sealed memfd (anonymous shared
// memory, outside the Go heap). A response reopens it through
// /proc/self/fd, which gives it a file position of its own, and hands that
// *os.File to net/http, which sends it with sendfile: a RAM hit costs no
// copy through user space, and the cache does not grow the Go heap (no GC
// pressure, no GOMEMLIMIT tuning). The kernel frees the memory when the
// last descriptor closes, also when the process is killed.
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

// open returns a new read-only descriptor of the block, positioned at 0.
// The caller must hold a reference (refs) while it opens.
func (m *memBlock) open() (*os.File, error) {
	f, err := os.Open(m.path)
	if err != nil {
		return nil, fmt.Errorf("reopen memfd: %w", err)
	}
	return f, nil
}

// release drops one reference and unmaps and closes the memfd with the
// last one.
func (m *memBlock) release() {
	if m.refs.Add(-1) == 0 {
		if m.data != nil {
			unix.Munmap(m.data)
			m.data = nil
		}
		m.f.Close()
	}
}
