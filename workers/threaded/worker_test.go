package threaded

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/testwait"
	"github.com/multiserve/multiserve/workers/workerstest"
)

func TestConformance(t *testing.T) {
	workerstest.Run(t, "threaded", workerstest.Options{})
}

// start runs the class with a handler that answers "ok" at once, except
// /hold, which is g's (it blocks until the test lets it go).
func start(t *testing.T, g *workerstest.Gauge, tune func(*config.Config)) (string, *workerstest.Heart, *workerstest.Running) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	if g != nil {
		mux.Handle("/hold", g)
		t.Cleanup(g.Release)
	}
	cfg := config.Default()
	cfg.WorkerClass = "threaded"
	tune(cfg)
	env, addr, heart := workerstest.NewEnv(t, mux, cfg)
	return addr, heart, workerstest.Serve(t, &Worker{}, env, heart)
}

// keptConn is a client connection that keeps the connection alive.
type keptConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKept(t *testing.T, addr string) *keptConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keptConn{c, bufio.NewReader(c)}
}

// get sends GET path and checks for a 200 "ok"-or-held answer that keeps
// the connection open.
func (k *keptConn) get(t *testing.T, path string) {
	t.Helper()
	resp, body := workerstest.Do(t, k.c, k.br, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || body != "ok" || resp.Close {
		t.Fatalf("GET %s: %v %q (Close=%v), want 200 ok kept alive", path, resp, body, resp != nil && resp.Close)
	}
}

// expectClosed waits for the server to close the connection.
func (k *keptConn) expectClosed(t *testing.T) {
	t.Helper()
	k.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := k.br.ReadByte(); err != io.EOF {
		t.Fatalf("want the server to close the connection, got %q, %v", b, err)
	}
}

// Fifty kept-alive idle connections with only two threads: a new client
// is still served, and the idle ones still work afterwards. Each idle
// connection holds no thread.
func TestIdleKeepAliveHoldsNoThread(t *testing.T) {
	addr, _, _ := start(t, nil, func(c *config.Config) { c.Threads = 2 })
	idle := make([]*keptConn, 50)
	for i := range idle {
		idle[i] = dialKept(t, addr)
		idle[i].get(t, "/")
	}
	resp, body := workerstest.Get(t, addr, "/")
	if resp == nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("new client behind 50 idle connections got %v %q", resp, body)
	}
	for _, k := range idle {
		k.get(t, "/")
	}
}

// Four threads run four requests at once (all four are inside the handler
// together); a fifth waits in the queue until a thread is free.
func TestThreadsBoundConcurrency(t *testing.T) {
	g := workerstest.NewGauge()
	addr, _, _ := start(t, g, func(c *config.Config) { c.Threads = 4 })
	wait := workerstest.GetAll(t, addr, "/hold", 5, false)
	for i := range 4 {
		g.Await(t, fmt.Sprintf("request %d of the 4 running together", i+1))
	}
	g.Step() // frees one thread for the fifth request
	g.Await(t, "the queued fifth request")
	g.Release()
	wait()
	if m := g.Max(); m != 4 {
		t.Fatalf("max simultaneous handlers = %d, want 4 (threads)", m)
	}
}

// The poller keeps beating while every thread is busy: in this class
// --timeout polices a wedged worker, not a slow request.
func TestBeatsWhileThreadsBusy(t *testing.T) {
	g := workerstest.NewGauge()
	addr, heart, _ := start(t, g, func(c *config.Config) {
		c.Threads = 1
		c.Timeout = 40 * time.Millisecond
	})
	go workerstest.Get(t, addr, "/hold")
	g.Await(t, "the request")
	b := heart.Beats()
	testwait.Until(t, 10*time.Second, "beats with the only thread busy", func() bool { return heart.Beats() >= b+3 })
	g.Release()
}

// A kept-alive connection idle longer than keepalive is closed by the
// poller; one that never sent a request is closed after header_timeout.
func TestIdleTimeouts(t *testing.T) {
	addr, _, _ := start(t, nil, func(c *config.Config) {
		c.Keepalive = 100 * time.Millisecond
		c.HeaderTimeout = 150 * time.Millisecond
	})
	kept := dialKept(t, addr)
	kept.get(t, "/")
	silent := dialKept(t, addr)
	kept.expectClosed(t)
	silent.expectClosed(t)
}

// With worker_connections open, the worker stops accepting; when one
// closes, the waiting client is served.
func TestWorkerConnectionsCap(t *testing.T) {
	addr, _, _ := start(t, nil, func(c *config.Config) {
		c.Threads = 1
		c.WorkerConnections = 2
	})
	a, b := dialKept(t, addr), dialKept(t, addr)
	a.get(t, "/")
	b.get(t, "/")
	third := dialKept(t, addr)
	io.WriteString(third.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	// A round trip on a and b after the third connected: had the
	// listener still been armed, the poller would have accepted the
	// third in the same wakeup.
	a.get(t, "/")
	b.get(t, "/")
	if workerstest.Accepted(t, third.c) {
		t.Fatal("a third connection was accepted with worker_connections=2")
	}
	a.c.Close()
	resp, body := workerstest.Do(t, third.c, third.br, "")
	if resp == nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("third client after a close got %v %q", resp, body)
	}
}

// Every --bind is served.
func TestTwoListeners(t *testing.T) { workerstest.ServesEveryListener(t, &Worker{}, false) }

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		threads, conns int
		ok             bool
	}{{1, 1, true}, {4, 1000, true}, {0, 10, false}, {2, 0, false}} {
		cfg := config.Default()
		cfg.Threads, cfg.WorkerConnections = tc.threads, tc.conns
		if err := (&Worker{}).CheckConfig(cfg); (err == nil) != tc.ok {
			t.Errorf("threads=%d worker_connections=%d: CheckConfig = %v", tc.threads, tc.conns, err)
		}
	}
}

// A connection accepted just before a graceful stop, whose request is
// still in flight, is served (with Connection: close) instead of dropped;
// one that never sends anything is closed after the grace and does not
// hold up the stop.
func TestGracefulStopServesFreshConnection(t *testing.T) {
	addr, _, run := start(t, nil, func(c *config.Config) { c.HeaderTimeout = time.Hour })
	late, silent := dialKept(t, addr), dialKept(t, addr)
	for _, k := range []*keptConn{late, silent} {
		testwait.Until(t, 10*time.Second, "the worker to accept", func() bool { return workerstest.Accepted(t, k.c) })
	}
	run.Cancel()
	resp, body := workerstest.Do(t, late.c, late.br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || body != "ok" || !resp.Close {
		t.Fatalf("request sent just after the stop began: %v %q, want 200 ok with Connection: close", resp, body)
	}
	silent.expectClosed(t)
	if err, ok := run.WaitTimeout(10 * time.Second); !ok || err != nil {
		t.Fatalf("Serve = %v (returned=%v), want nil", err, ok)
	}
}

// TestGracefulStopOnBlockingListener: the same, after another process put
// the shared listening socket back in blocking mode (a new arbiter adopting
// it during a USR2 upgrade does). The poller's accept loop must still end
// at an empty queue instead of sitting in accept4, deaf to the stop and to
// the request of the connection it just accepted.
func TestGracefulStopOnBlockingListener(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	cfg := config.Default()
	cfg.WorkerClass, cfg.HeaderTimeout = "threaded", time.Hour
	env, addr, heart := workerstest.NewEnv(t, mux, cfg)
	run := workerstest.Serve(t, &Worker{}, env, heart)
	t.Cleanup(func() {
		if t.Failed() { // a poller stuck in accept4 returns on the next connection
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
			}
		}
	})
	if err := unix.SetNonblock(env.Listeners[0].FD, false); err != nil {
		t.Fatal(err)
	}
	late := dialKept(t, addr)
	testwait.Until(t, 10*time.Second, "the worker to accept", func() bool { return workerstest.Accepted(t, late.c) })
	run.Cancel()
	resp, body := workerstest.Do(t, late.c, late.br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp == nil || resp.StatusCode != 200 || body != "ok" || !resp.Close {
		t.Fatalf("request on a connection accepted before the stop: %v %q, want 200 ok with Connection: close", resp, body)
	}
	if err, ok := run.WaitTimeout(10 * time.Second); !ok || err != nil {
		t.Fatalf("Serve = %v (returned=%v), want nil", err, ok)
	}
}

// TestGracefulStopFinishesPartialHead: a connection parked mid-head when
// the stop begins may still complete its request (within the first
// request's grace), answered with Connection: close.
func TestGracefulStopFinishesPartialHead(t *testing.T) {
	addr, _, run := start(t, nil, func(c *config.Config) { c.Threads = 1; c.HeaderTimeout = time.Hour })
	head := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	partial := dialKept(t, addr)
	io.WriteString(partial.c, head[:10])
	testwait.Until(t, 10*time.Second, "the worker to accept", func() bool { return workerstest.Accepted(t, partial.c) })
	dialKept(t, addr).get(t, "/") // the one thread is not held by the partial head
	run.Cancel()
	resp, body := workerstest.Do(t, partial.c, partial.br, head[10:])
	if resp == nil || resp.StatusCode != 200 || body != "ok" || !resp.Close {
		t.Fatalf("head completed after the stop began: %v %q, want 200 ok with Connection: close", resp, body)
	}
	if err, ok := run.WaitTimeout(10 * time.Second); !ok || err != nil {
		t.Fatalf("Serve = %v (returned=%v), want nil", err, ok)
	}
}

// TestPartialHeadHoldsNoThread: with one thread and a long
// header_timeout, a client trickling a request head does not stop another
// client from being served (each within workerstest.Do's 20 s); its head,
// parked in pieces, is answered once complete.
func TestPartialHeadHoldsNoThread(t *testing.T) {
	addr, _, _ := start(t, nil, func(c *config.Config) { c.Threads = 1; c.HeaderTimeout = time.Minute })
	slow := dialKept(t, addr)
	head := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, piece := range []string{head[:5], head[5:12], head[12:20]} {
		io.WriteString(slow.c, piece)
		dialKept(t, addr).get(t, "/")
	}
	resp, body := workerstest.Do(t, slow.c, slow.br, head[20:])
	if resp == nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("trickled request: %v %q", resp, body)
	}
}

// TestPartialHeadTimeout: a head still incomplete header_timeout after its
// first byte is closed, however often one more byte arrives.
func TestPartialHeadTimeout(t *testing.T) {
	addr, _, _ := start(t, nil, func(c *config.Config) { c.Threads = 1; c.HeaderTimeout = 500 * time.Millisecond })
	slow := dialKept(t, addr)
	io.WriteString(slow.c, "GET / HT")
	for _, b := range "TP/1.1\r\nX: " {
		if _, err := io.WriteString(slow.c, string(b)); err != nil {
			break // closed already
		}
		time.Sleep(100 * time.Millisecond) // the trickle's pace, not a wait for the server
	}
	// EOF, or a reset if a byte arrived after the close.
	slow.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := slow.br.ReadByte(); err == nil || os.IsTimeout(err) {
		t.Fatalf("partial head still open: %v", err)
	}
	dialKept(t, addr).get(t, "/")
}

// TestBusyWorkerLeavesNewConnections: while its only thread is busy, the
// worker does not accept (the connection waits in the backlog, where a
// sibling would take it); once the thread is free, it is served.
func TestBusyWorkerLeavesNewConnections(t *testing.T) {
	g := workerstest.NewGauge()
	addr, heart, _ := start(t, g, func(c *config.Config) {
		c.Threads = 1
		c.Timeout = 40 * time.Millisecond // beats every 20 ms: loop turns to count
	})
	go workerstest.Get(t, addr, "/hold")
	g.Await(t, "the request holding the only thread")
	next := dialKept(t, addr)
	io.WriteString(next.c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b := heart.Beats()
	testwait.Until(t, 10*time.Second, "poller turns", func() bool { return heart.Beats() >= b+3 })
	if workerstest.Accepted(t, next.c) {
		t.Fatal("a connection was accepted while the only thread was busy")
	}
	g.Release()
	resp, body := workerstest.Do(t, next.c, next.br, "")
	if resp == nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after the thread was freed: %v %q", resp, body)
	}
}
