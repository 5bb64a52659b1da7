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
	"sync"
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

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logfile: open %s: %w", path, err)
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
	if l.path == "" {
		return nil
	}
	nf, err := openAppend(l.path)
	if err != nil {
		return err
	}
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
