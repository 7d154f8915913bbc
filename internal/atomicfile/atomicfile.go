// Package atomicfile writes whole files so that a crash leaves either no
// file (or the previous one) or all of the new data, never a part of it.
//
// One durability policy for every writer of the data directories (the
// store's fragments and indexes, the senders' blocks): the data goes to a
// temporary file in the target's directory (named TempPrefix + random, so
// that one left by a crash is recognised and removed at the next start),
// which is fsynced, then given its name (rename or hard link), and then the
// directory is fsynced so that the name survives a power loss too. An
// error of any step, the directory's fsync included, is returned; the
// temporary file is removed. NoSync skips both fsyncs, for tests and
// scratch data that need not survive a power loss.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of a file being written. A file with this
// prefix was never acknowledged: its owner removes it at start.
const TempPrefix = ".tmp-"

// Mode is the durability of a write.
type Mode int

const (
	// Durable fsyncs the data before naming it and the directory after.
	Durable Mode = iota
	// NoSync skips the fsyncs: atomic against a crash of the process, not
	// of the machine.
	NoSync
)

// Write writes data under path, replacing what is there.
func Write(path string, data []byte, m Mode) error {
	tmp, err := writeTemp(path, data, m)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path), m)
}

// Create writes data under path unless a file is already there: the
// temporary file is hard-linked to path, which fails if path exists, so of
// concurrent writers of one path exactly one creates it. It reports
// whether it created the file; created is true even when the directory's
// fsync failed after the link (the file exists, err says it may not
// survive a power loss).
func Create(path string, data []byte, m Mode) (created bool, err error) {
	tmp, err := writeTemp(path, data, m)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, syncDir(filepath.Dir(path), m)
}

// writeTemp writes data to a new temporary file next to path (fsynced
// unless m is NoSync) and returns its name.
func writeTemp(path string, data []byte, m Mode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix+"*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil && m == Durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// SyncDir makes the entries of dir durable: after a rename or removal
// that must survive a power loss (what Write and Create do last).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string, m Mode) error {
	if m != Durable {
		return nil
	}
	return SyncDir(dir)
}
