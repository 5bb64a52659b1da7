package goroutine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/workers"
)

// serveNative serves with the shared HTTP/1.1 engine (package h1), one
// goroutine per connection reading through Go's netpoller: the same parser
// and semantics as every other class. worker_connections caps open
// connections (a semaphore taken before Accept), the ticker beats.
// Graceful stop (the engine's, see h1.Conn): stop accepting, busy
// connections finish their request with Connection: close, idle kept-alive
// ones answer a request that arrives within retire_idle_timeout the same
// way and are closed after it; connections still open after
// graceful_timeout are closed.
func (w *Worker) serveNative(ctx context.Context, env *workers.Env) error {
	cfg := env.Config
	// The cap is enforced here, not by netListeners' wrapping listener: the
	// engine needs the bare *net.TCPConn to wait on idle connections
	// without holding buffers.
	lns, err := netListeners(env.Listeners, 0)
	if err != nil {
		return err
	}
	var slots chan struct{}
	if cfg.WorkerConnections > 0 {
		slots = make(chan struct{}, cfg.WorkerConnections) // shared: the cap is per worker
	}
	srv := env.Engine()
	srv.WatchClient = true
	// stop ends accepting and tells every connection to wind down: the
	// worker's ctx, or an accept loop that failed on its own.
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	conns := &connSet{m: map[*h1.Conn]struct{}{}}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- acceptNative(stopCtx, ln, srv, conns, slots, env) }()
	}
	stopBeat := env.BeatInBackground()
	defer stopBeat()
	env.Ready()

	var serveErr error
	pending := len(lns)
	select {
	case <-ctx.Done():
	case err := <-errc:
		pending--
		if err != nil {
			serveErr = fmt.Errorf("goroutine: accept: %w", err)
		}
	}
	stop()
	for _, ln := range lns {
		ln.Close()
	}
	for ; pending > 0; pending-- {
		<-errc
	}
	// The accept loops are over (the listeners were dups): an own
	// reuse_port socket may leave its group while requests finish.
	env.DoneListening()
	if !conns.wait(cfg.GracefulTimeout) {
		env.Log.Warn("graceful_timeout expired, closing connections", "open", conns.len())
		conns.closeAll()
		conns.wg.Wait()
	}
	h1.WaitLingering()
	return serveErr
}

// acceptNative accepts until ln is closed; every connection gets its own
// goroutine running the engine. Temporary accept errors (EMFILE...) back
// off instead of spinning or failing the worker.
func acceptNative(ctx context.Context, ln net.Listener, srv *h1.Server, conns *connSet, slots chan struct{}, env *workers.Env) error {
	var backoff workers.Backoff
	release := func() {
		if slots != nil {
			<-slots
		}
	}
	for {
		// Wait for a free slot before accepting: excess connections stay
		// in the kernel's backlog, where a sibling worker may take them.
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		nc, err := ln.Accept()
		if err != nil {
			release()
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if backoff.Sleep(env.Log, ln.Addr().String(), err) == workers.AcceptFatal {
				return err
			}
			continue
		}
		c := srv.NewConn(nc)
		conns.add(c)
		go func() {
			defer release()
			defer conns.done(c)
			c.Serve(ctx, false)
		}()
	}
}

// connSet tracks open engine connections so a graceful stop can wait for
// them and, past graceful_timeout, close the stragglers.
type connSet struct {
	mu sync.Mutex
	m  map[*h1.Conn]struct{}
	wg sync.WaitGroup
}

func (s *connSet) add(c *h1.Conn) {
	s.mu.Lock()
	s.m[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
}

func (s *connSet) done(c *h1.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		c.Close()
	}
}

// wait reports whether every connection closed within grace (0: no limit).
func (s *connSet) wait(grace time.Duration) bool {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	if grace <= 0 {
		<-done
		return true
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
