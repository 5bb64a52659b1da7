// Package perconn is a worker class written outside multiserve's own set,
// to show that a class is one package and one import: an OS thread per
// connection. Each accepted connection gets a goroutine locked to its own
// OS thread for its whole life, which runs the shared HTTP/1.1 engine with
// blocking-looking IO; the thread ends with the connection.
//
// Trade-off: a connection costs a thread (stack, scheduler entry), so
// worker_connections caps them (a slot is taken before accepting, so the
// excess waits in the kernel's backlog, where a sibling may take it); in
// exchange a handler that blocks in a system call or in cgo holds only its
// own thread. Idle keep-alive connections also hold their thread.
//
// Registration is all multiserve needs: the class's name, summary and
// banner sentence reach --help, --check-config, the banner, the status
// page and the docs through the registry.
package perconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/workers"
)

// Name is the class's --worker-class value.
const Name = "perconn"

func init() {
	workers.Register(workers.Class{
		Name:     Name,
		Summary:  "an OS thread per connection, blocking IO (an example class from examples/customclass)",
		New:      func() workers.Worker { return &Worker{} },
		Settings: []string{"worker_connections", "keepalive"},
		Describe: describe,
	})
}

func describe(c *config.Config) string {
	return fmt.Sprintf("%s, an OS thread per connection, blocking IO: at most %s",
		workers.Plural(c.Workers, "worker"), workers.OpenConns(c))
}

// Worker is the perconn class. The zero value is ready to Serve once.
type Worker struct{}

// Serve accepts on every listener until ctx is cancelled, then stops
// accepting, lets the connections finish (the engine closes idle ones and
// answers the requests in flight with Connection: close) and closes those
// still open after graceful_timeout.
func (w *Worker) Serve(ctx context.Context, env *workers.Env) error {
	lns, err := workers.NetListeners(env.Listeners)
	if err != nil {
		return err
	}
	if len(lns) == 0 {
		return errors.New("perconn: no listeners")
	}
	s := &server{env: env, srv: env.Engine(), slots: make(chan struct{}, max(env.Config.WorkerConnections, 1))}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- s.accept(ctx, ln) }()
	}
	stopBeat := env.BeatInBackground() // connection threads block: none can prove liveness
	defer stopBeat()
	env.Ready()

	var serveErr error
	pending := len(lns)
	select {
	case <-ctx.Done():
	case serveErr = <-errc: // a broken listener stops the worker
		pending--
	}
	for _, ln := range lns {
		ln.Close()
	}
	for ; pending > 0; pending-- {
		<-errc
	}
	env.DoneListening() // the listeners were dups: an own reuse_port socket may leave its group now
	s.conns.Drain(env.Config.GracefulTimeout, env.Log)
	return serveErr
}

type server struct {
	env   *workers.Env
	srv   *h1.Server
	slots chan struct{} // worker_connections
	conns workers.ConnSet
}

// accept runs until ln is closed (nil) or broken (the error).
func (s *server) accept(ctx context.Context, ln net.Listener) error {
	var backoff workers.Backoff
	for {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		nc, err := ln.Accept()
		if err != nil {
			<-s.slots
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if backoff.Sleep(s.env.Log, ln.Addr().String(), err) == workers.AcceptFatal {
				return fmt.Errorf("perconn: accept: %w", err)
			}
			continue
		}
		hc := s.srv.NewConn(nc)
		s.conns.Add(hc)
		go s.serve(ctx, hc, nc.RemoteAddr())
	}
}

// serve runs one connection on a thread of its own: the goroutine stays
// locked to it and exits locked, so the runtime ends the thread with it.
func (s *server) serve(ctx context.Context, hc *h1.Conn, remote net.Addr) {
	runtime.LockOSThread()
	defer func() { <-s.slots }()
	defer s.conns.Done(hc)
	s.env.ServeConn(ctx, hc, false, remote)
	_ = hc.Close()
}
