package goroutine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/fdconn"
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
	// engine needs the bare connection to wait on idle ones without
	// holding buffers.
	lns, err := pollListeners(env.Listeners)
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
	var conns workers.ConnSet
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- acceptNative(stopCtx, ln, srv, &conns, slots, env) }()
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
	conns.Drain(cfg.GracefulTimeout, env.Log)
	h1.WaitLingering()
	return serveErr
}

// pollListeners accepts from every inherited listener without the net
// package's work per connection (see fdconn.PollListener).
func pollListeners(ls []*workers.Listener) ([]net.Listener, error) {
	out := make([]net.Listener, 0, len(ls))
	for _, l := range ls {
		ln, err := fdconn.NewPollListener(l.FD)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("goroutine: listener %s: %w", l.Name, err)
		}
		out = append(out, ln)
	}
	return out, nil
}

// acceptNative accepts until ln is closed; every connection gets a
// goroutine of its own running the engine (from serverPool). Temporary accept errors (EMFILE...) back
// off instead of spinning or failing the worker.
func acceptNative(ctx context.Context, ln net.Listener, srv *h1.Server, conns *workers.ConnSet, slots chan struct{}, env *workers.Env) error {
	var backoff workers.Backoff
	release := func() {
		if slots != nil {
			<-slots
		}
	}
	pool := &serverPool{ctx: ctx, next: make(chan *h1.Conn), serve: func(c *h1.Conn) {
		defer release()
		defer conns.Done(c)
		c.Serve(ctx, false)
	}}
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
		conns.Add(c)
		pool.start(c)
	}
}

// maxIdleServers bounds the goroutines a serverPool keeps waiting for a
// connection.
const maxIdleServers = 32

// serverPool runs each connection on a goroutine that finished an earlier
// one and waits for the next, when there is one, instead of on a new
// goroutine: a new one starts with a small stack and grows it (a copy)
// within its first request, on every connection.
type serverPool struct {
	ctx   context.Context // idle goroutines exit when it is done
	next  chan *h1.Conn   // unbuffered: a connection goes only to a goroutine waiting
	idle  atomic.Int32
	serve func(*h1.Conn)
}

// start serves c on an idle goroutine, or on a new one if none waits.
func (p *serverPool) start(c *h1.Conn) {
	select {
	case p.next <- c:
	default:
		go p.run(c)
	}
}

func (p *serverPool) run(c *h1.Conn) {
	for {
		p.serve(c)
		if p.idle.Add(1) > maxIdleServers {
			p.idle.Add(-1)
			return
		}
		select {
		case c = <-p.next:
			p.idle.Add(-1)
		case <-p.ctx.Done():
			p.idle.Add(-1)
			return
		}
	}
}
