// Package fdpoll is the plumbing the blocking-IO worker classes (sync,
// threaded) share around poll(2)/epoll(7): a Waker that interrupts a poll
// from another goroutine, the heartbeat pacing, and the triage of accept(2)
// errors.
package fdpoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	stdsync "sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/workers"
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

// NonblockListeners puts the inherited listening sockets in non-blocking
// mode. The arbiter hands them over blocking, and the mode lives on the
// open file description it shares with every sibling, so a class cannot
// rely on either mode unless it sets it. Non-blocking is what every class
// needs: after poll says "readable", a sibling may win the race for the
// connection, and a blocking accept4 would then stall the loop (and its
// heartbeat) until the next connection arrives. Go's netpoller sets the
// same flag on listeners it adopts, so siblings of other classes agree.
func NonblockListeners(ls []*workers.Listener) error {
	for _, l := range ls {
		if err := unix.SetNonblock(l.FD, true); err != nil {
			return fmt.Errorf("fdpoll: listener %s: set O_NONBLOCK: %w", l.Name, err)
		}
	}
	return nil
}

// BeatInterval is the longest a serving loop may wait between heartbeats:
// half the arbiter's timeout, at most a second (timeout 0 disables the
// arbiter's check; keep beating every second anyway).
func BeatInterval(timeout time.Duration) time.Duration {
	const most, least = time.Second, 10 * time.Millisecond
	d := timeout / 2
	if timeout <= 0 || d > most {
		return most
	}
	return max(d, least)
}

// Millis converts a wait to poll(2)/epoll_wait(2) milliseconds, rounding up
// so a short positive wait never becomes a busy 0.
func Millis(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// AcceptVerdict is what a loop should do after a failed accept.
type AcceptVerdict int

const (
	// AcceptDrained: the listener's queue is empty (a sibling worker took
	// the connection); go back to polling.
	AcceptDrained AcceptVerdict = iota
	// AcceptRetry: that one connection failed (the peer reset it, a
	// signal, a protocol error on it); accept again.
	AcceptRetry
	// AcceptBackoff: the process or system is out of descriptors or
	// memory. Polling again at once would spin, since the listener stays
	// readable: stop accepting for AcceptBackoffDelay.
	AcceptBackoff
	// AcceptFatal: the listener itself is broken.
	AcceptFatal
)

// AcceptBackoffDelay is how long a loop stops accepting after AcceptBackoff.
const AcceptBackoffDelay = 100 * time.Millisecond

// ClassifyAccept triages an error from accept(2).
func ClassifyAccept(err error) AcceptVerdict {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return AcceptFatal
	}
	switch errno {
	case unix.EAGAIN:
		return AcceptDrained
	case unix.ECONNABORTED, unix.EINTR, unix.EPROTO, unix.EPERM,
		unix.ENETDOWN, unix.ENOPROTOOPT, unix.EHOSTDOWN, unix.ENONET,
		unix.EHOSTUNREACH, unix.EOPNOTSUPP, unix.ENETUNREACH:
		// accept(2) on Linux passes already-pending network errors of the
		// new socket through; they concern that connection only.
		return AcceptRetry
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
		return AcceptBackoff
	}
	return AcceptFatal
}

// AcceptLogInterval is the least time between two "out of resources"
// accept warnings from one loop. While descriptors stay exhausted, accept
// fails every AcceptBackoffDelay: logging each would flood the log.
const AcceptLogInterval = 10 * time.Second

// AcceptBackoffLog rate-limits the accept back-off warning: the first
// failure is logged at once, later ones at most once per
// AcceptLogInterval, with the count of those not logged in between. The
// zero value is ready; it belongs to one loop (not safe for concurrent
// use).
type AcceptBackoffLog struct {
	last       time.Time
	suppressed int
}

// Warn logs msg (with the listener and the error) unless one was logged
// less than AcceptLogInterval before now.
func (a *AcceptBackoffLog) Warn(log *slog.Logger, now time.Time, msg, listener string, err error) {
	if !a.last.IsZero() && now.Sub(a.last) < AcceptLogInterval {
		a.suppressed++
		return
	}
	log.Warn(msg, "listener", listener, "err", err, "suppressed", a.suppressed,
		"next_log_after", AcceptLogInterval)
	a.last, a.suppressed = now, 0
}
