package workers

import (
	"errors"
	"fmt"
	"log/slog"
	stdsync "sync"
	"time"

	"golang.org/x/sys/unix"
)

// NonblockListeners puts the inherited listening sockets in non-blocking
// mode. The arbiter hands them over blocking, and the mode lives on the
// open file description it shares with every sibling, so a class cannot
// rely on either mode unless it sets it. Non-blocking is what a class that
// polls needs: after poll says "readable", a sibling may win the race for
// the connection, and a blocking accept4 would then stall the loop (and its
// heartbeat) until the next connection arrives. Go's netpoller sets the
// same flag on listeners it adopts, so siblings of other classes agree.
func NonblockListeners(ls []*Listener) error {
	for _, l := range ls {
		if err := unix.SetNonblock(l.FD, true); err != nil {
			return fmt.Errorf("workers: listener %s: set O_NONBLOCK: %w", l.Name, err)
		}
	}
	return nil
}

// AcceptVerdict is what an accept loop should do after a failed accept.
type AcceptVerdict int

const (
	// AcceptDrained: the listener's queue is empty (a sibling worker took
	// the connection); go back to polling.
	AcceptDrained AcceptVerdict = iota
	// AcceptRetry: that one connection failed (the peer reset it, a
	// signal, a protocol error on it); accept again.
	AcceptRetry
	// AcceptBackoff: the process or system is out of descriptors or
	// memory. Accepting again at once would spin, since the listener stays
	// readable: stop accepting for AcceptBackoffDelay.
	AcceptBackoff
	// AcceptFatal: the listener itself is broken.
	AcceptFatal
)

// AcceptBackoffDelay is how long a loop stops accepting after AcceptBackoff.
const AcceptBackoffDelay = 100 * time.Millisecond

// AcceptLogInterval is the least time between two "out of resources"
// accept warnings from one loop. While descriptors stay exhausted, accept
// fails every AcceptBackoffDelay: logging each would flood the log.
const AcceptLogInterval = 10 * time.Second

// ClassifyAccept triages an error from accept(2), raw or through Go's
// net.Listener (which wraps the same errno).
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

// Backoff is the accept back-off every class uses, one per accept loop
// (not safe for concurrent use; the zero value is ready). Its warning is
// rate-limited: the first failure is logged at once, later ones at most
// once per AcceptLogInterval, with the count of those not logged between.
type Backoff struct {
	last       time.Time
	suppressed int
}

// Pause is for a loop that polls (sync, threaded): it logs the failure at
// the shared rate and returns the time until which the loop must not
// accept.
func (b *Backoff) Pause(log *slog.Logger, now time.Time, listener string, err error) (until time.Time) {
	b.warn(log, now, listener, err)
	return now.Add(AcceptBackoffDelay)
}

// Sleep is for an accept loop on Go's netpoller (evloop, goroutine): it
// triages err; unless that one connection failed, it logs at the shared
// rate and sleeps AcceptBackoffDelay. It returns the verdict, so a loop
// can give up on AcceptFatal.
func (b *Backoff) Sleep(log *slog.Logger, listener string, err error) AcceptVerdict {
	v := ClassifyAccept(err)
	if v != AcceptRetry {
		b.warn(log, time.Now(), listener, err)
		time.Sleep(AcceptBackoffDelay)
	}
	return v
}

func (b *Backoff) warn(log *slog.Logger, now time.Time, listener string, err error) {
	if !b.last.IsZero() && now.Sub(b.last) < AcceptLogInterval {
		b.suppressed++
		return
	}
	log.Warn("accept failed, pausing", "listener", listener, "err", err, "suppressed", b.suppressed,
		"next_log_after", AcceptLogInterval)
	b.last, b.suppressed = now, 0
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

// BeatInBackground beats from a goroutine of its own, every
// BeatInterval(timeout), until the returned stop is called: for a class
// whose connections block (goroutine, a thread per connection), so no
// serving loop can prove liveness, and only a wedged process stops it.
func (e *Env) BeatInBackground() (stop func()) {
	done := make(chan struct{})
	var wg stdsync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(BeatInterval(e.Config.Timeout))
		defer t.Stop()
		for {
			e.Beat()
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
