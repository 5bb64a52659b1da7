// Package workerstest is the conformance suite every worker class runs, so
// all classes show the same HTTP semantics (docs/http-behaviour.md) and the same worker
// contract (Ready, Beat, graceful stop). A class adds, in its own package:
//
//	func TestConformance(t *testing.T) {
//		workerstest.Run(t, "sync", workerstest.Options{NoKeepAlive: true})
//	}
//
// Start runs one class in-process on a fresh 127.0.0.1:0 listening socket
// (created with raw syscalls and handed over blocking as a
// workers.Listener, exactly as the arbiter does) for class-specific tests, and H1Probe runs the shared h1probe
// corpus against an address.
package workerstest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

// Options tune the suite for a class.
type Options struct {
	// NoKeepAlive: the class closes the connection after every response
	// (sync). Keep-alive and pipelining cases then expect Connection: close.
	NoKeepAlive bool
	// Config adjusts the configuration every instance starts with (after
	// the suite's own defaults), e.g. threads or worker_connections.
	Config func(*config.Config)
	// Skip lists case names not to run (say why in the class's test).
	Skip []string
}

// Instance is a class serving in-process.
type Instance struct {
	Addr    string         // host:port of the listening socket
	Handler *TestHandler   // the suite's handler (progress counters)
	Env     *workers.Env   // what the class was handed
	Config  *config.Config // resolved config
	cancel  context.CancelFunc
	errc    chan error
	beats   atomic.Int64
	logs    *lockedBuffer
	stopped atomic.Bool
	err     error
}

// Beats returns how many times the class called env.Beat.
func (in *Instance) Beats() int64 { return in.beats.Load() }

// Logs returns what the class logged so far.
func (in *Instance) Logs() string { return in.logs.String() }

// Stop cancels the worker's context (graceful stop) and waits for Serve to
// return, up to the deadline; it returns Serve's error. Safe to call twice.
func (in *Instance) Stop(deadline time.Duration) error {
	if in.stopped.Swap(true) {
		return in.err
	}
	in.cancel()
	select {
	case in.err = <-in.errc:
	case <-time.After(deadline):
		in.err = fmt.Errorf("workerstest: Serve did not return within %v of cancel", deadline)
	}
	return in.err
}

// Start runs class on a fresh loopback listener with the suite's handler.
// The instance is stopped (and Serve's nil return checked) at cleanup.
func Start(t testing.TB, class string, opt Options) *Instance {
	t.Helper()
	c, err := workers.Lookup(class)
	if err != nil {
		t.Fatal(err)
	}
	fd, addr := ListenTCP(t) // blocking, as the arbiter hands it over
	cfg := config.Default()
	cfg.WorkerClass = class
	cfg.Bind = []string{addr}
	cfg.Threads = 4
	cfg.HeaderTimeout = 5 * time.Second
	cfg.GracefulTimeout = 10 * time.Second
	if opt.Config != nil {
		opt.Config(cfg)
	}
	in := &Instance{Addr: addr, Handler: NewTestHandler(), Config: cfg, logs: &lockedBuffer{}, errc: make(chan error, 1)}
	ready := make(chan struct{})
	var readyOnce sync.Once
	in.Env = &workers.Env{
		Listeners: []*workers.Listener{{FD: fd, Name: addr, Network: "tcp"}},
		Handler:   in.Handler,
		Config:    cfg,
		Log:       slog.New(slog.NewTextHandler(in.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Age:       1,
		Beat:      func() { in.beats.Add(1) },
		Ready:     func() { readyOnce.Do(func() { close(ready) }) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	w := c.New()
	go func() { in.errc <- w.Serve(ctx, in.Env) }()
	t.Cleanup(func() {
		if err := in.Stop(20 * time.Second); err != nil {
			t.Errorf("%s: Serve after graceful stop: %v", class, err)
		}
		if t.Failed() {
			t.Logf("%s worker log:\n%s", class, in.logs.String())
		}
	})
	select {
	case <-ready:
	case err := <-in.errc:
		in.stopped.Store(true)
		in.err = err
		t.Fatalf("%s: Serve returned before Ready: %v", class, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: env.Ready not called within 10s", class)
	}
	return in
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
