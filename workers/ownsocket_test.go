package workers

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/sockgate"
	"github.com/multiserve/multiserve/internal/sockgate/sockgatetest"
	"github.com/multiserve/multiserve/internal/testwait"
)

// listenOwn is a listening socket on 127.0.0.1:0 as the arbiter makes a
// worker's own one in reuse_port mode (SO_REUSEPORT) or a shared one
// (without); the caller closes the fd.
func listenOwn(t *testing.T, reusePort bool) *Listener {
	fd, addr := sockgatetest.ListenTCP(t, reusePort)
	return &Listener{FD: fd, Name: addr, Network: "tcp"}
}

// TestOwnSocket: only a reuse_port TCP socket with SO_REUSEPORT that was
// not adopted counts as the worker's own.
func TestOwnSocket(t *testing.T) {
	own := listenOwn(t, true)
	shared := listenOwn(t, false)
	t.Cleanup(func() { _ = unix.Close(own.FD); _ = unix.Close(shared.FD) })
	on, off := config.Default(), config.Default()
	on.ReusePort = true
	for _, tc := range []struct {
		cfg  *config.Config
		l    Listener
		want bool
	}{
		{on, *own, true},
		{off, *own, false},
		{on, *shared, false},
		{on, Listener{FD: own.FD, Name: "systemd:http", Network: "tcp"}, false},
		{on, Listener{FD: own.FD, Name: "fd://3", Network: "tcp"}, false},
		{on, Listener{FD: own.FD, Name: own.Name, Network: "unix"}, false},
	} {
		if got := OwnSocket(tc.cfg, &tc.l); got != tc.want {
			t.Errorf("reuse_port=%v %s %s fd %d: own=%v, want %v", tc.cfg.ReusePort, tc.l.Network, tc.l.Name, tc.l.FD, got, tc.want)
		}
	}
}

// TestStopDrainsOwnSocket: a graceful stop of a ready worker gates its own
// socket (a new connect does not complete), keeps ctx alive while a
// connection is still queued on it, cancels ctx once the class accepted
// it, and the socket leaves the group when the class says it is done with
// its listeners (connect refused: it was the group's only member). A
// shared socket in the same worker is neither gated nor closed.
func TestStopDrainsOwnSocket(t *testing.T) {
	saved := ownDrainMax
	ownDrainMax = time.Minute // the test's accept decides, never the cap
	t.Cleanup(func() { ownDrainMax = saved })

	cfg := config.Default()
	cfg.ReusePort = true
	rt, ctx := testRuntime(cfg)
	own, shared := listenOwn(t, true), listenOwn(t, false)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = unix.Close(own.FD)
		}
		_ = unix.Close(shared.FD)
	})
	rt.own = newOwnSockets(cfg, []*Listener{own, shared}, rt.log)
	rt.served = make(chan struct{})
	rt.ready.Store(true)

	early := dialT(t, own.Name)
	testwait.Until(t, waitLimit, "the early connection queued", func() bool { n, _ := sockgate.QueueLen(own.FD); return n == 1 })
	rt.stop("test")
	if !rt.draining.Load() {
		t.Error("a graceful stop did not set draining")
	}
	if late, err := net.DialTimeout("tcp", own.Name, 300*time.Millisecond); err == nil {
		_ = late.Close()
		t.Fatal("a new connection got through the gate")
	}
	if ctx.Err() != nil {
		t.Fatal("ctx cancelled with a connection still queued on the own socket")
	}
	nfd, _, err := unix.Accept(own.FD) // the class, still accepting
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Close(nfd)
	_ = early
	testwait.Until(t, waitLimit, "ctx cancelled after the queue emptied", func() bool { return ctx.Err() != nil })

	shc := dialT(t, shared.Name) // the shared socket still admits connections
	_ = shc
	rt.own.close()
	rt.own.close() // idempotent: the runtime calls it after Serve too
	closed = true
	if c, err := net.Dial("tcp", own.Name); err == nil {
		_ = c.Close()
		t.Fatal("the own socket still accepts connections after close")
	}
	if _, err := sockgate.QueueLen(shared.FD); err != nil {
		t.Fatalf("shared socket closed: %v", err)
	}
}

// TestStopWithoutOwnSocketsCancelsAtOnce: no own sockets (the default
// mode) or a worker not ready yet: ctx is cancelled synchronously.
func TestStopWithoutOwnSocketsCancelsAtOnce(t *testing.T) {
	cfg := config.Default()
	cfg.ReusePort = true
	rt, ctx := testRuntime(cfg)
	own := listenOwn(t, true)
	t.Cleanup(func() { _ = unix.Close(own.FD) })
	rt.own = newOwnSockets(cfg, []*Listener{own}, rt.log) // not ready
	rt.stop("test")
	if ctx.Err() == nil {
		t.Fatal("a worker that was not ready yet did not stop at once")
	}
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitLimit is how long a test waits for a socket state.
const waitLimit = 10 * time.Second
