// Package heartbeat is the liveness channel between a worker and the
// arbiter: an unlinked temp file the arbiter creates in worker_tmp_dir and
// hands to the worker as an inherited fd.
//
// The worker "touches" it by setting its mtime to a CLOCK_MONOTONIC stamp
// (futimens on the fd; no path lookup, no data written); the arbiter reads
// the mtime back with fstat and compares it with the same monotonic clock.
// Using the monotonic clock rather than the wall clock means an NTP step or
// a manual date change never makes a healthy worker look silent (gunicorn's
// fchmod/ctime form has exactly that flaw). Both processes run on the same
// machine, so CLOCK_MONOTONIC is a shared time base.
package heartbeat

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// minInterval bounds the syscall rate of Beat: callers may beat on every loop
// iteration, but at most one futimens per minInterval reaches the kernel.
const minInterval = 100 * time.Millisecond

// clock converts Go's monotonic time to CLOCK_MONOTONIC nanoseconds without a
// syscall per reading: Go's monotonic reading is CLOCK_MONOTONIC on Linux, so
// base + time.Since(start) stays on the kernel's monotonic time line.
var clock = newMonoClock()

type monoClock struct {
	base  time.Duration // CLOCK_MONOTONIC at start
	start time.Time     // carries Go's monotonic reading taken at the same moment
}

func newMonoClock() monoClock {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("heartbeat: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return monoClock{base: time.Duration(ts.Nano()), start: time.Now()}
}

// Now returns the current CLOCK_MONOTONIC time as a duration since boot.
func Now() time.Duration { return clock.base + time.Since(clock.start) }

// File is the arbiter's side of one worker's heartbeat.
type File struct {
	f *os.File
}

// Create makes an unlinked heartbeat file in dir (the OS temp dir when dir is
// empty) and stamps it with the current time, so silence is measured from
// the moment the worker was created.
func Create(dir string) (*File, error) {
	f, err := os.CreateTemp(dir, "multiserve-hb-")
	if err != nil {
		return nil, fmt.Errorf("heartbeat: create in %q: %w", dir, err)
	}
	// Unlink at once: nothing else needs the name, and a crashed arbiter
	// then leaves nothing behind.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("heartbeat: unlink %s: %w", f.Name(), err)
	}
	if err := stamp(int(f.Fd()), Now()); err != nil {
		f.Close()
		return nil, err
	}
	return &File{f: f}, nil
}

// File returns the file to pass to the worker (os/exec ExtraFiles).
func (h *File) File() *os.File { return h.f }

// Last returns the monotonic stamp of the latest beat (see Now).
func (h *File) Last() (time.Duration, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("heartbeat: fstat: %w", err)
	}
	return time.Duration(st.Mtim.Nano()), nil
}

// Silence returns how long ago the latest beat was.
func (h *File) Silence() (time.Duration, error) {
	last, err := h.Last()
	if err != nil {
		return 0, err
	}
	return Now() - last, nil
}

// Close releases the arbiter's descriptor.
func (h *File) Close() error { return h.f.Close() }

// Beater is the worker's side: it touches an inherited heartbeat fd.
type Beater struct {
	fd   int
	last atomic.Int64 // monotonic ns of the latest stamp that reached the kernel
	err  atomic.Pointer[error]
}

// NewBeater returns a Beater for the inherited descriptor fd.
func NewBeater(fd int) *Beater { return &Beater{fd: fd} }

// Beat records that the caller's loop made progress. It is cheap (an atomic
// load when called more often than every 100ms), never blocks and is safe for
// concurrent use. A failing syscall is remembered in Err rather than
// returned, because callers beat from hot loops.
func (b *Beater) Beat() {
	now := Now()
	last := b.last.Load()
	if now-time.Duration(last) < minInterval {
		return
	}
	if !b.last.CompareAndSwap(last, int64(now)) {
		return // another goroutine is stamping right now
	}
	if err := stamp(b.fd, now); err != nil {
		b.err.Store(&err)
	}
}

// Err returns the latest stamping error, if any.
func (b *Beater) Err() error {
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

// stamp sets atime and mtime of fd to the monotonic time t. futimens(fd) is
// utimensat(fd, NULL, ...); x/sys has no wrapper taking a NULL path, and the
// /proc/self/fd path form of Futimes costs a path lookup per beat.
func stamp(fd int, t time.Duration) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(int64(t)), unix.NsecToTimespec(int64(t))}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("heartbeat: futimens: %w", e)
	}
	return nil
}
