// Package sync is the sync worker class: gunicorn's sync worker in Go. One
// OS thread per worker process handles one request at a time with blocking
// system calls:
//
//	loop: beat → accept → read request (blocking, header_timeout) → handle
//	      → write response (blocking) → close; once accept finds the
//	      queues empty: poll(listeners, timeout)
//
// Per request that is accept4, read, write and close, plus an accept4 that
// finds the queue empty and a poll when it is: what the listener or the
// loop already knows is not asked again per connection (TCP_NODELAY and
// the kernel timeouts come from the listening socket, the local address
// from its name, the thread id from the loop; see fdconn.Acceptor).
// cmd/multiserve's TestSyncSyscallsPerRequest holds that budget.
//
// There is no keep-alive (every response carries Connection: close) and no
// other goroutine serves connections, so a worker's concurrency is exactly
// one request; scale with --workers. The heartbeat comes from this loop and
// from nothing else: a request that runs longer than --timeout stops the
// beats and the arbiter kills and replaces the worker, as gunicorn does.
// That is the class's contract, not a defect: use threaded, evloop or
// goroutine for slow requests. For the same reason the engine's client
// watch (h1.Server.WatchClient, a background read on another thread) is
// off: a handler's context is not cancelled when its client goes away.
//
// The package clause is sync to match the class name; the standard
// library's sync is imported as stdsync where needed.
package sync

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/fdconn"
	"github.com/multiserve/multiserve/internal/fdpoll"
	"github.com/multiserve/multiserve/workers"
)

// Worker is the sync class. The zero value is ready to Serve once.
type Worker struct{}

// Serve runs the accept loop on the calling goroutine, locked to its OS
// thread, until ctx is done (the request in flight, if any, is finished
// first) or a listener fails.
func (w *Worker) Serve(ctx context.Context, env *workers.Env) error {
	// The model is "one OS thread blocks in the kernel": pin it, so the
	// blocking calls below really are this worker's only thread of work
	// (between connections the loop may move to another, see yieldIfDue).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if len(env.Listeners) == 0 {
		return errors.New("sync: no listeners")
	}
	if err := workers.NonblockListeners(env.Listeners); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	waker, err := fdpoll.NewWaker()
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer waker.Close()
	stop := waker.WakeOnDone(ctx)
	defer stop()

	l := &loop{
		env:   env,
		srv:   env.Engine(),
		beat:  workers.BeatInterval(env.Config.Timeout),
		waker: waker,
		fds:   make([]unix.PollFd, 1+len(env.Listeners)),
		tid:   unix.Gettid(),
	}
	l.fds[0] = unix.PollFd{Fd: int32(waker.FD()), Events: unix.POLLIN}
	for i, ln := range env.Listeners {
		l.fds[1+i] = unix.PollFd{Fd: int32(ln.FD), Events: unix.POLLIN}
		a, err := newAcceptor(ln, env.Config)
		if err != nil {
			return err
		}
		l.acceptors = append(l.acceptors, a)
	}
	l.srv.DisableKeepAlive = true // the class's contract: one request per connection
	err = l.run(ctx)
	h1.WaitLingering()
	return err
}

// newAcceptor makes ln's Acceptor, with the kernel timeouts of the first
// deadlines every connection sets (serve's read deadline, the engine's
// rolling write deadline) put on the listener once. That read timeout
// also bounds an accept on a listener left blocking, which stalls nothing
// here but the heartbeat, so the per-accept mode check is skipped.
func newAcceptor(ln *workers.Listener, cfg *config.Config) (*fdconn.Acceptor, error) {
	a, err := fdconn.NewAcceptor(ln.FD)
	if err == nil {
		a.SkipModeCheck()
		err = a.SetTimeouts(cfg.HeaderTimeout, h1.WriteStall(cfg))
	}
	if err != nil {
		return nil, fmt.Errorf("sync: listener %s: %w", ln.Name, err)
	}
	return a, nil
}

type loop struct {
	env   *workers.Env
	srv   *h1.Server
	beat  time.Duration
	waker *fdpoll.Waker
	fds   []unix.PollFd // [0] is the waker, then the listeners in Env order
	// acceptors are the listeners in Env order
	acceptors []*fdconn.Acceptor
	tid       int       // the OS thread the loop is locked to, which serves its connections
	pauseTo   time.Time // accepting paused (out of descriptors) until then
	yielded   time.Time // the last pass through the scheduler (yieldIfDue)
	backoff   workers.Backoff
}

func (l *loop) run(ctx context.Context) error {
	ready := false
	// hot: the last pass accepted a connection, so the queues may hold
	// more; accepting again costs what a poll would (one system call when
	// they are empty) and nothing when they are not, so poll only after a
	// pass found them empty.
	hot := false
	for {
		l.env.Beat()
		if ctx.Err() != nil {
			return nil
		}
		fds := l.fds
		wait := l.beat
		now := time.Now()
		if now.Before(l.pauseTo) {
			fds, wait = l.fds[:1], min(wait, l.pauseTo.Sub(now))
		}
		l.yieldIfDue(now)
		if !ready {
			// The listeners are already listening: from here on the
			// kernel queues connections for this poll.
			l.env.Ready()
			ready = true
		}
		if !hot || len(fds) == 1 {
			n, err := unix.Poll(fds, fdpoll.Millis(wait))
			if err == unix.EINTR || n == 0 {
				continue
			}
			if err != nil {
				return fmt.Errorf("sync: poll: %w", err)
			}
			if fds[0].Revents != 0 {
				l.waker.Drain()
			}
		}
		var err error
		if hot, err = l.acceptReady(ctx, fds[1:]); err != nil {
			return err
		}
	}
}

// yieldEvery is how often the loop passes through the Go scheduler.
// The runtime's monitor treats a goroutine that has not done so for 10ms
// as running too long: it preempts it, or takes its P while it is in a
// system call, and then polls every 20us again for a while; the loop,
// which blocks only in system calls, would never pass otherwise.
const yieldEvery = 5 * time.Millisecond

// yieldIfDue passes through the scheduler when yieldEvery has passed
// since the last time. The loop is unlocked from its thread for that
// moment (a locked goroutine's yield hands its P to another thread and
// back, waking both); it may resume on another thread, so tid is read
// again.
func (l *loop) yieldIfDue(now time.Time) {
	if now.Sub(l.yielded) < yieldEvery {
		return
	}
	l.yielded = now
	runtime.UnlockOSThread()
	runtime.Gosched()
	runtime.LockOSThread()
	l.tid = unix.Gettid()
}

// acceptReady takes one connection from each readable listener and serves
// it to completion, one after the other. A listener that gave one stays
// marked readable (POLLIN) for the next pass; hot reports whether any did.
func (l *loop) acceptReady(ctx context.Context, fds []unix.PollFd) (hot bool, err error) {
	for i := range fds {
		pfd := &fds[i]
		if pfd.Revents == 0 || ctx.Err() != nil {
			continue
		}
		ln := l.env.Listeners[i]
		if pfd.Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
			return false, fmt.Errorf("sync: listener %s: poll revents %#x", ln.Name, pfd.Revents)
		}
		pfd.Revents = 0
		c, err := l.acceptors[i].Accept()
		if err != nil {
			if err := l.acceptFailed(ln, err); err != nil {
				return false, err
			}
			continue
		}
		pfd.Revents, hot = unix.POLLIN, true
		l.serve(ctx, c)
		l.env.Beat()
	}
	return hot, nil
}

func (l *loop) acceptFailed(ln *workers.Listener, err error) error {
	switch workers.ClassifyAccept(err) {
	case workers.AcceptDrained, workers.AcceptRetry:
		// A sibling worker won the race, or that one connection died.
	case workers.AcceptBackoff:
		l.pauseTo = l.backoff.Pause(l.env.Log, time.Now(), ln.Name, err)
	default:
		return fmt.Errorf("sync: listener %s: %w", ln.Name, err)
	}
	return nil
}

// serve answers the one request of a connection and closes it. The read
// deadline set here bounds how long a silent client can hold the worker;
// the engine refines it per request (header_timeout) but this guarantees it
// even before the engine's first read.
func (l *loop) serve(ctx context.Context, c *fdconn.Conn) {
	c.SetThread(l.tid)
	if ht := l.env.Config.HeaderTimeout; ht > 0 {
		_ = c.SetReadDeadline(time.Now().Add(ht))
	}
	hc := l.srv.NewConn(c)
	l.env.ServeConn(ctx, hc, false, c.RemoteAddr())
	_ = hc.Close()
}

var _ workers.Worker = (*Worker)(nil)
