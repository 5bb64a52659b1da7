package workerstest

// The harness for a class's own tests: raw listening sockets like the ones
// a worker inherits, an Env with an observable heartbeat, a handler that
// measures how many requests run at once, and Serve, which runs a Worker
// until the test ends.

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

// ListenTCP binds a listening socket on 127.0.0.1:0 with raw syscalls, in
// blocking mode, exactly as the arbiter hands it to workers, and returns its
// fd and address. The socket is closed when the test ends.
func ListenTCP(t testing.TB) (fd int, addr string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
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

// ServesEveryListener runs w with two listeners (as two --bind entries
// give) and checks that requests on each are answered; wantClose is the
// class's keep-alive policy.
func ServesEveryListener(t testing.TB, w workers.Worker, wantClose bool) {
	t.Helper()
	g := NewGauge()
	g.Release()
	env, addr, heart := NewEnv(t, g, nil)
	fd, addr2 := ListenTCP(t)
	env.Listeners = append(env.Listeners, &workers.Listener{FD: fd, Name: addr2, Network: "tcp"})
	Serve(t, w, env, heart)
	for _, a := range []string{addr, addr2, addr} {
		GetAll(t, a, "/", 1, wantClose)()
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Running is a Worker serving in a goroutine.
type Running struct {
	cancel   context.CancelFunc
	finished chan struct{} // closed when Serve returned
	err      error         // Serve's result, set before finished closes
}

// Serve runs w.Serve(ctx, env) in a goroutine and waits (up to 10 s) for it
// to report ready. The worker is stopped at the end of the test if the test
// did not stop it.
func Serve(t testing.TB, w workers.Worker, env *workers.Env, h *Heart) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, finished: make(chan struct{})}
	go func() {
		r.err = w.Serve(ctx, env)
		close(r.finished)
	}()
	t.Cleanup(func() {
		r.Cancel()
		if _, ok := r.WaitTimeout(20 * time.Second); !ok {
			t.Errorf("worker did not return within 20s of cancel")
		}
	})
	select {
	case <-h.Ready():
	case <-r.finished:
		t.Fatalf("Serve returned before ready: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("worker not ready within 10s")
	}
	return r
}

// Cancel asks for a graceful stop (ctx cancellation).
func (r *Running) Cancel() { r.cancel() }

// WaitTimeout waits up to d for Serve to return and gives its result; ok is
// false if it had not returned.
func (r *Running) WaitTimeout(d time.Duration) (err error, ok bool) {
	select {
	case <-r.finished:
		return r.err, true
	case <-time.After(d):
		return nil, false
	}
}

// Stop cancels the worker and fails the test unless Serve returns nil
// within 20 s.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	r.Cancel()
	err, ok := r.WaitTimeout(20 * time.Second)
	if !ok {
		t.Fatal("worker did not return within 20s of cancel")
	}
	if err != nil {
		t.Fatalf("Serve returned %v, want nil", err)
	}
}

// Get sends "GET path" on a new connection and returns the response with
// its body read. Connection: close is not requested; the caller sees what
// the server chose.
func Get(t testing.TB, addr, path string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Errorf("dial %s: %v", addr, err)
		return nil, ""
	}
	defer c.Close()
	return Do(t, c, bufio.NewReader(c), "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
}

// GetAll sends GET path from n clients at once, each on its own
// connection, and returns a function that waits for all of them and fails
// the test unless every one got 200 "ok". Their Connection header is
// checked against wantClose.
func GetAll(t testing.TB, addr, path string, n int, wantClose bool) (wait func()) {
	var wg stdsync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, body := Get(t, addr, path)
			if resp == nil || resp.StatusCode != 200 || body != "ok" || resp.Close != wantClose {
				t.Errorf("GET %s: %v %q (Close=%v), want 200 ok, Close=%v", path, resp, body, resp != nil && resp.Close, wantClose)
			}
		})
	}
	return wg.Wait
}

// Do writes a raw request on c and reads one response from br (deadline
// 20 s). Errors are reported with t.Errorf, so it may run in goroutines.
func Do(t testing.TB, c net.Conn, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, raw); err != nil {
		t.Errorf("write request: %v", err)
		return nil, ""
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Errorf("read response: %v", err)
		return nil, ""
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("read body: %v", err)
	}
	return resp, string(body)
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

// Await waits (up to 20 s) for one more request to reach the handler.
func (g *Gauge) Await(t testing.TB, what string) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s to reach the handler", what)
	}
}

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

// Accepted reports whether the server side of client (a connection dialled
// to a listener in this process) has been accept(2)ed: in /proc/net/tcp a
// connection still in the accept queue has inode 0, an accepted one has
// its socket's inode. It lets a test wait for "the worker took this
// connection" without a hook in the worker.
func Accepted(t testing.TB, client net.Conn) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatalf("read /proc/net/tcp: %v", err)
	}
	srv := client.RemoteAddr().(*net.TCPAddr).Port
	cli := client.LocalAddr().(*net.TCPAddr).Port
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		if hexPort(f[1]) == srv && hexPort(f[2]) == cli {
			return f[9] != "0"
		}
	}
	return false
}

func hexPort(addr string) int {
	_, p, ok := strings.Cut(addr, ":")
	if !ok {
		return -1
	}
	n, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return -1
	}
	return int(n)
}
