// Package workers is the contract between the arbiter and the worker classes:
// the Worker interface, the registry of classes keyed by --worker-class name
// (the database/sql driver pattern) with each class's descriptor (Class),
// the Env a class is handed, what every class shares (Env.Engine,
// Env.ServeConn, Backoff, BeatInterval, ConnSet) and Main, the runtime of a
// worker process (it maps the scoreboard slot and meters every request).
//
// Dependencies point one way: workers/<class> packages import this package and
// register themselves from init(); the arbiter, config (through the catalog
// this package installs, see config.Catalog) and the banner ask the registry
// what a class is, and never name one; only cmd/multiserve (and the library
// entry point, or a program of your own: examples/customclass) blank-import
// the concrete classes.
package workers

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/scoreboard"
)

// Worker serves HTTP on the listeners it inherited, inside one worker process.
// A Worker is built by its Class's New, run once, and then the process exits.
type Worker interface {
	// Serve blocks until ctx is cancelled or a fatal error occurs.
	// Cancellation means a graceful stop (the worker retires,
	// docs/deploy.md): stop accepting, finish in-flight requests
	// (answering them with Connection: close), answer a request arriving
	// on an idle kept-alive connection within Config.RetireIdle the same
	// way, then close the connections still idle, return nil. Serve calls env.Ready once it is accepting,
	// and env.Beat at least every second from the loop whose progress
	// proves liveness (docs/http-behaviour.md, "Heartbeats, per class").
	Serve(ctx context.Context, env *Env) error
}

// Env is everything the worker runtime hands a Worker.
type Env struct {
	// Listeners are the inherited listening sockets, in --bind order.
	Listeners []*Listener
	// Handler is the application, already wrapped with the shared
	// middleware (access log, max_requests accounting). The classes' HTTP
	// engine adds panic recovery.
	Handler http.Handler
	// App is the application as loaded, before any middleware: what a
	// class may inspect, never serve (auto reads a ServeMux's patterns
	// from it). May be nil (tests): then Handler is the application.
	App http.Handler
	// Config is the resolved configuration; read-only.
	Config *config.Config
	// Log is tagged with pid, age and class.
	Log *slog.Logger
	// Age is the spawn sequence number of this worker (gunicorn's age).
	Age int
	// Beat touches the heartbeat file. Cheap, never blocks, safe for
	// concurrent use.
	Beat func()
	// Ready tells the arbiter that the class is serving. Call it once, after
	// the listeners are being accepted on. Safe to call more than once.
	Ready func()
	// Draining becomes true when the arbiter begins a graceful stop
	// (proc.SignalDrain), before the worker gets TERM. From then on every
	// response must carry Connection: close and close its connection;
	// idle connections stay open. Classes on h1 pass it as
	// h1.Server.Draining. May be nil (tests): never draining.
	Draining *atomic.Bool
	// ListenersDone may be called by a class, after ctx is cancelled, once
	// it will never use the listener fds again (it stopped accepting and
	// holds no other descriptor of them): the runtime then closes the
	// worker's own reuse_port sockets at once, so they leave the kernel's
	// group, instead of when Serve returns (after the requests in flight).
	// Optional; safe to call more than once. May be nil (tests).
	ListenersDone func()
	// Rejected, if set, hears the requests the engine refuses with an
	// error status (h1.Server.Rejected): the access log records them.
	// May be nil.
	Rejected func(remote string, status int, head []byte)
	// Slot is the worker's scoreboard slot (the zero Slot, which ignores
	// writes, without one). The runtime meters requests into it; a class
	// reports connections through Observer and may publish more (SetRoutes).
	Slot scoreboard.Slot
}

// Observer is told about connections opening, closing and reading request
// heads: the worker's scoreboard slot, nil without one. Engine wires it; a
// class with its own engine passes it on.
func (e *Env) Observer() h1.ConnObserver {
	if e.Slot.IsZero() {
		return nil
	}
	return e.Slot
}

// Engine returns the shared HTTP/1.1 engine wired to this worker once:
// handler, config, log, observer and drain flag. A class sets its own
// options on the result (DisableKeepAlive, WatchClient, a wrapped Handler)
// before it serves the first connection.
func (e *Env) Engine() *h1.Server {
	return &h1.Server{Handler: e.Handler, Config: e.Config, Log: e.Log, Observer: e.Observer(), Draining: e.Draining,
		Rejected: e.Rejected}
}

// DoneListening calls ListenersDone when it is set: what a class calls once
// it stopped accepting for good.
func (e *Env) DoneListening() {
	if e.ListenersDone != nil {
		e.ListenersDone()
	}
}

// ServeConn runs the engine on hc until the connection closes or, with
// park, goes idle between requests. The engine recovers handler panics
// itself; this keeps an engine bug from killing the worker with its
// connections open: the panic is logged with its stack, and the
// connection counts as closed. remote names it in that log line.
func (e *Env) ServeConn(ctx context.Context, hc *h1.Conn, park bool, remote net.Addr) (st h1.State) {
	defer func() {
		if v := recover(); v != nil {
			e.Log.Error("panic serving connection", "remote", remote.String(), "panic", v, "stack", string(debug.Stack()))
			st = h1.StateClosed
		}
	}()
	return hc.Serve(ctx, park)
}
