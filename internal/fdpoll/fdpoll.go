// Package fdpoll is the plumbing the blocking-IO worker classes (sync,
// threaded) share around poll(2)/epoll(7): a Waker that interrupts a poll
// from another goroutine, and the conversion of a wait to poll's
// milliseconds. What every class shares (accept back-off, heartbeat
// pacing) lives with the workers runtime.
package fdpoll

import (
	"context"
	"fmt"
	stdsync "sync"
	"time"

	"golang.org/x/sys/unix"
)

// Waker is an eventfd a poller watches so that another goroutine can wake
// it (ctx cancelled, a thread finished). Wake and Close are safe for
// concurrent use; Wake after Close does nothing.
type Waker struct {
	mu     stdsync.RWMutex
	fd     int
	closed bool
}

// NewWaker creates the eventfd, non-blocking, close-on-exec.
func NewWaker() (*Waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fdpoll: eventfd: %w", err)
	}
	return &Waker{fd: fd}, nil
}

// FD is the descriptor to watch for readability.
func (w *Waker) FD() int { return w.fd }

// Wake makes the descriptor readable until Drain.
func (w *Waker) Wake() {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return
	}
	one := [8]byte{1} // little-endian uint64(1)
	_, _ = unix.Write(w.fd, one[:])
}

// Drain consumes pending wakes (call it when the descriptor polls readable).
func (w *Waker) Drain() {
	var buf [8]byte
	_, _ = unix.Read(w.fd, buf[:])
}

// WakeOnDone wakes w when ctx is done. The returned stop must be called
// before Close.
func (w *Waker) WakeOnDone(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, w.Wake)
}

// Close closes the eventfd; it is idempotent.
func (w *Waker) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return unix.Close(w.fd)
}

// Millis converts a wait to poll(2)/epoll_wait(2) milliseconds, rounding up
// so a short positive wait never becomes a busy 0.
func Millis(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}
