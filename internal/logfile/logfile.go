// Package logfile is an append-only log destination that can be reopened
// in place, so that USR1 after logrotate moved the file makes every later
// line land in the new file at the old path.
//
// The arbiter (error log) and each worker (access log) hold one *File per
// destination. Write is safe for concurrent use: one line per Write call
// is never interleaved with another's because the file is opened with
// O_APPEND and writes are serialised by a mutex (which also makes Reopen
// race-free with respect to writers).
package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by Write and Reopen after Close.
var ErrClosed = errors.New("logfile: file already closed")

// File is a reopenable log destination. The zero value is not usable;
// create one with Open.
type File struct {
	mu     sync.Mutex
	path   string   // "" when f is a standard stream
	f      *os.File // nil after Close
	closed bool
	// inherited: f came from another process (the arbiter opened it for a
	// worker that may not be allowed to); Reopen leaves it to Replace.
	inherited bool
}

// Open returns the destination for path. An empty path or "-" means std
// (os.Stdout or os.Stderr, whichever the caller passes), which Reopen and
// Close leave untouched. Any other path is opened for appending and
// created with mode 0644 if missing.
func Open(path string, std *os.File) (*File, error) {
	if path == "" || path == "-" {
		if std == nil {
			return nil, errors.New("logfile: no standard stream given for \"-\"")
		}
		return &File{f: std}, nil
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

// Inherit wraps a descriptor another process opened on path for us. Reopen
// does nothing (the path may not be ours to open); the opener hands over
// the new file, which Replace swaps in.
func Inherit(f *os.File, path string) *File {
	return &File{path: path, f: f, inherited: true}
}

// OpenAppend opens path for appending, creating it with mode 0644: how
// every log file is opened, by whichever process opens it.
func OpenAppend(path string) (*os.File, error) { return openAppend(path) }

// Check reports, without creating anything, whether this process could
// open path for appending: an existing file must be writable, a missing
// one needs a writable directory. "" and "-" (standard streams) pass.
func Check(path string) error {
	if path == "" || path == "-" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory", path)
	case err == nil:
		if err := unix.Access(path, unix.W_OK); err != nil {
			return fmt.Errorf("cannot write %s: %w", path, err)
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	dir := filepath.Dir(path)
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("cannot create %s in %s: %w", filepath.Base(path), dir, err)
	}
	return nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logfile: %w", err) // err names the path
	}
	return f, nil
}

// Path returns the file's path, or "-" for a standard stream.
func (l *File) Path() string {
	if l.path == "" {
		return "-"
	}
	return l.path
}

// Write appends p as one write(2). Safe for concurrent use.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	return l.f.Write(p)
}

// Reopen opens the path again and swaps it in, closing the old file, so
// writes after a rename by logrotate go to a fresh file at the path. If
// the open fails the old file is kept and the error returned: losing the
// log entirely would be worse than writing to the rotated file. A
// standard stream is not reopened.
func (l *File) Reopen() error {
	if l.path == "" || l.inherited {
		return nil
	}
	nf, err := openAppend(l.path)
	if err != nil {
		return err
	}
	return l.Replace(nf)
}

// Replace makes nf the destination and closes the previous file: how an
// inherited File follows its opener's reopen.
func (l *File) Replace(nf *os.File) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = nf.Close()
		return ErrClosed
	}
	old := l.f
	l.f = nf
	l.mu.Unlock()
	if err := old.Close(); err != nil {
		return fmt.Errorf("logfile: close rotated %s: %w", l.path, err)
	}
	return nil
}

// Close closes the file. A standard stream stays open (other code writes
// to it); later Writes return ErrClosed either way. Close is idempotent.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.path == "" {
		return nil
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("logfile: close %s: %w", l.path, err)
	}
	return nil
}
