// Package threaded is the threaded worker class, gunicorn's gthread worker
// in Go: a fixed pool of --threads OS threads runs requests with blocking
// IO, and a poller holds the connections that are between requests, so an
// idle keep-alive connection costs a descriptor and a little memory, never
// a thread.
//
//	poller (one goroutine locked to its thread; the heartbeat comes from here):
//	  epoll_wait(listeners, parked connections, waker; timeout ≤ beat interval)
//	  listener readable   → accept4 (up to worker_connections open) → park,
//	                        or queue at once if the request already arrived
//	  parked conn readable → queue
//	  sweep: close parked conns idle longer than keepalive (header_timeout
//	         for a connection that has not sent its first request, and
//	         header_timeout from its first byte for a partial head)
//	queue (bounded: worker_connections) → threads (each locked to its OS
//	  thread): blocking read, parse, handle, write until the connection is
//	  between requests, or mid-head with nothing more to read (a slow
//	  client never holds a thread) → re-armed in the poller
//	  (EPOLLONESHOT) → next one
//
// Concurrency is exactly --threads requests per worker. When every thread
// is busy, readable connections wait in the queue, and a new connection
// is not accepted: the listeners leave the poller until a thread is free,
// so an idle sibling worker takes it instead of it waiting here behind a
// slow request (or a slow reader); when worker_connections
// connections are open, the poller stops accepting (the kernel's backlog
// holds newcomers) until one closes. A request longer than --timeout does
// not stop the heartbeat (the poller still runs): as in gunicorn's gthread,
// --timeout here polices a wedged worker, not a slow request.
//
// Slow clients: a partial request head never holds a thread (the engine
// returns mid-head when nothing more is readable; the poller closes it
// header_timeout after its first byte). A client that stops reading its
// response is cut off once a write makes no progress for header_timeout
// (30 s when 0). A slow but steady reader holds its thread until its
// response is written: connections this worker already accepted (kept
// alive, or accepted before their request arrived) wait behind it, so
// size --threads above the slow downloads expected, or buffer responses
// in a proxy.
//
// The engine's client watch (h1.Server.WatchClient) is off: it would block
// one more OS thread per long request, beyond the fixed pool, so a
// handler's context is not cancelled when its client goes away.
package threaded

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	stdsync "sync"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/workers"
)

// Worker is the threaded class. The zero value is ready to Serve once.
type Worker struct{}

// CheckConfig rejects a pool or a connection cap that could serve nothing.
func (w *Worker) CheckConfig(cfg *config.Config) error {
	if cfg.Threads < 1 {
		return &config.UsageError{Setting: "threads", Value: fmt.Sprint(cfg.Threads), Reason: "the threaded class needs at least 1 thread"}
	}
	if cfg.WorkerConnections < 1 {
		return fmt.Errorf("threaded: worker_connections must be at least 1 (got %d)", cfg.WorkerConnections)
	}
	return nil
}

// Serve runs the poller on the calling goroutine (locked to its thread)
// and the thread pool beside it, until ctx is done: then it stops
// accepting, closes parked connections, lets the threads finish the
// requests in progress and the connections already queued (each answered
// with Connection: close), and returns nil.
func (w *Worker) Serve(ctx context.Context, env *workers.Env) error {
	if err := w.CheckConfig(env.Config); err != nil {
		return err
	}
	if len(env.Listeners) == 0 {
		return errors.New("threaded: no listeners")
	}
	if err := workers.NonblockListeners(env.Listeners); err != nil {
		return fmt.Errorf("threaded: %w", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a fatal poller error stops the threads' requests too
	p, err := newPoller(env)
	if err != nil {
		return err
	}
	defer p.close()
	stop := p.waker.WakeOnDone(ctx)
	defer stop()

	var threads stdsync.WaitGroup
	for range env.Config.Threads {
		threads.Go(func() { p.thread(ctx) })
	}
	go func() {
		threads.Wait()
		close(p.threadsDone)
		p.waker.Wake()
	}()
	err = p.run(ctx)
	if err != nil {
		cancel()
		p.abandon()
		<-p.threadsDone
	}
	h1.WaitLingering()
	return err
}

// thread is one pool thread: it serves queued connections with blocking
// IO until the queue is closed and drained.
func (p *poller) thread(ctx context.Context) {
	// Locked for good: the blocking reads and writes in the engine hold
	// this OS thread, which is the point of the class.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	for c := range p.queue {
		p.busy.Add(1)
		c.nc.SetThread(tid)
		p.handle(ctx, c)
		p.threadIdle()
	}
}

// handle serves c until it goes idle and is parked, or closes.
func (p *poller) handle(ctx context.Context, c *conn) {
	st := p.serve(ctx, c, true)
	if st == h1.StateIdle && p.parkIdle(c) {
		return
	}
	if st == h1.StateIdle && ctx.Err() != nil {
		// The stop is closing the queue (nothing else is parked): the
		// connection waits for its next request on this thread instead,
		// for retire_idle_timeout as the engine does, rather than being
		// closed under a client that may be sending it.
		p.serve(ctx, c, false)
	}
	p.forget(c)
}

// serve runs the engine on c until it closes or goes idle. The engine
// recovers handler panics; this keeps an engine bug from killing the
// worker.
func (p *poller) serve(ctx context.Context, c *conn, park bool) h1.State {
	return p.env.ServeConn(ctx, c.hc, park, c.nc.RemoteAddr())
}

var (
	_ workers.Worker = (*Worker)(nil)
)
