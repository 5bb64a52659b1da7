// Package fdpolltest is test support for the blocking-IO worker classes and
// their plumbing: raw listening sockets like the ones a worker inherits, an
// Env with an observable heartbeat, a handler that measures how many
// requests run at once, and a harness that runs a Worker until the test ends.
package fdpolltest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

// ListenTCP binds a non-blocking listening socket on 127.0.0.1:0 with raw
// syscalls, as the arbiter does, and returns its fd and address. The
// socket is closed when the test ends.
func ListenTCP(t testing.TB) (fd int, addr string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Listen(fd, 1024); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	in := sa.(*unix.SockaddrInet4)
	return fd, "127.0.0.1:" + strconv.Itoa(in.Port)
}

// Heart counts heartbeats and records readiness.
type Heart struct {
	beats atomic.Int64
	once  stdsync.Once
	ready chan struct{}
}

// Beats is the number of heartbeats so far.
func (h *Heart) Beats() int64 { return h.beats.Load() }

// Ready is closed when the worker called Env.Ready.
func (h *Heart) Ready() <-chan struct{} { return h.ready }

// NewEnv returns an Env serving handler on one fresh TCP listener, with the
// listener's address and the Heart behind Beat and Ready.
func NewEnv(t testing.TB, handler http.Handler, cfg *config.Config) (*workers.Env, string, *Heart) {
	t.Helper()
	fd, addr := ListenTCP(t)
	if cfg == nil {
		cfg = config.Default()
	}
	h := &Heart{ready: make(chan struct{})}
	env := &workers.Env{
		Listeners: []*workers.Listener{{FD: fd, Name: addr, Network: "tcp"}},
		Handler:   handler,
		Config:    cfg,
		Log:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Beat:      func() { h.beats.Add(1) },
		Ready:     func() { h.once.Do(func() { close(h.ready) }) },
	}
	return env, addr, h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Start runs w.Serve(ctx, env) in a goroutine and waits (up to 10 s) for it
// to report ready. stop cancels the worker and returns Serve's result; it
// also runs at the end of the test if the test did not call it.
func Start(t testing.TB, w workers.Worker, env *workers.Env, h *Heart) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, env) }()
	var once stdsync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("worker did not return within 20s of cancel")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-h.Ready():
	case err := <-done:
		t.Fatalf("Serve returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("worker not ready within 10s")
	}
	return stop
}

// Gauge is a handler that records how many requests it runs at once. Each
// request blocks until Step lets it (one request) or Release (all) is
// called, so a test controls overlap without timing.
type Gauge struct {
	mu      stdsync.Mutex
	cur     int
	max     int
	total   int
	entered chan struct{}
	hold    chan struct{}
	tokens  chan struct{}
	release stdsync.Once
}

// NewGauge returns a Gauge whose requests wait for Release.
func NewGauge() *Gauge {
	return &Gauge{entered: make(chan struct{}, 1024), hold: make(chan struct{}), tokens: make(chan struct{})}
}

// ServeHTTP counts, signals Entered, waits for Release, answers "ok".
func (g *Gauge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	g.mu.Lock()
	g.cur++
	g.total++
	g.max = max(g.max, g.cur)
	g.mu.Unlock()
	g.entered <- struct{}{}
	select {
	case <-g.tokens:
	case <-g.hold:
	}
	g.mu.Lock()
	g.cur--
	g.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

// Entered receives once per request that reached the handler.
func (g *Gauge) Entered() <-chan struct{} { return g.entered }

// Step lets one waiting request finish; it blocks until one takes it.
func (g *Gauge) Step() { g.tokens <- struct{}{} }

// Release lets every waiting and future request finish.
func (g *Gauge) Release() { g.release.Do(func() { close(g.hold) }) }

// Max is the largest number of requests that were in the handler at once.
func (g *Gauge) Max() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

// Current is the number of requests in the handler now.
func (g *Gauge) Current() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur
}
