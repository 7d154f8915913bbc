// Package rofile opens files for reading on the serving path with as few
// system calls as the kernel needs.
//
// os.Open on Linux tries to register every file with the runtime's
// netpoller: it switches a regular file to non-blocking mode, fails to add
// it to epoll, and switches it back — four fcntl calls and an epoll_ctl
// around the openat, for each fragment a player fetches. Open makes the
// openat and one fcntl (os.NewFile's mode check); the file then behaves as
// one from os.Open (blocking reads, sendfile through net/http and
// internal/evhttp).
package rofile

import (
	"io/fs"
	"os"
	"syscall"
)

// Open opens path read-only. Errors are *fs.PathError as from os.Open, so
// errors.Is(err, fs.ErrNotExist) and os.IsNotExist hold.
func Open(path string) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
