package sockgate

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/sockgate/sockgatetest"
)

// TestMain fails the package if a test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listenTCP is sockgatetest.ListenTCP, closed at cleanup.
func listenTCP(t *testing.T, reusePort bool) (int, string) {
	fd, addr := sockgatetest.ListenTCP(t, reusePort)
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd, addr
}

// dial connects to addr (the kernel completes the handshake and queues
// the connection without anyone accepting) and closes it at cleanup.
func dial(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
}

func queueLen(t *testing.T, fd int) int {
	t.Helper()
	n, err := QueueLen(fd)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitQueued waits until fd's accept queue holds want connections: the
// client's connect may return before the kernel queued the connection.
func waitQueued(t *testing.T, fd, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for queueLen(t, fd) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", queueLen(t, fd), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func accept(t *testing.T, fd int) {
	t.Helper()
	nfd, _, err := unix.Accept(fd)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	_ = unix.Close(nfd)
}

// TestQueueLenCounts: every connection the kernel completed and nobody
// accepted yet is counted, and accepting one takes it off.
func TestQueueLenCounts(t *testing.T) {
	fd, addr := listenTCP(t, false)
	if n := queueLen(t, fd); n != 0 {
		t.Fatalf("fresh listener: %d queued", n)
	}
	for range 3 {
		dial(t, addr)
	}
	waitQueued(t, fd, 3)
	accept(t, fd)
	if n := queueLen(t, fd); n != 2 {
		t.Fatalf("%d queued after one accept, want 2", n)
	}
}

// TestDropSYNKeepsQueue: after the gate a new connect does not complete,
// while the connection queued before it stays acceptable.
func TestDropSYNKeepsQueue(t *testing.T) {
	fd, addr := listenTCP(t, true)
	dial(t, addr)
	waitQueued(t, fd, 1)
	if err := DropSYN(fd); err != nil {
		t.Fatal(err)
	}
	late, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err == nil {
		_ = late.Close()
		t.Fatal("a connection got through the gate")
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("gated connect: %v, want a timeout (SYN dropped, not refused)", err)
	}
	if n := queueLen(t, fd); n != 1 {
		t.Fatalf("%d queued after the gate, want the early one only", n)
	}
	accept(t, fd)
	if n := queueLen(t, fd); n != 0 {
		t.Fatalf("%d queued after accepting", n)
	}
}

// TestPending: a listening socket has a connection pending iff its accept
// queue is not empty, for unix sockets (no TCP_INFO) and TCP alike.
func TestPending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ul, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ul.Close() })
	uf, err := ul.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = uf.Close() })
	ufd := int(uf.Fd())
	tfd, taddr := listenTCP(t, false)
	for _, tc := range []struct {
		name, network, addr string
		fd                  int
	}{{"unix", "unix", path, ufd}, {"tcp", "tcp", taddr, tfd}} {
		if Pending(tc.fd) {
			t.Fatalf("%s: pending before any connect", tc.name)
		}
		c, err := net.Dial(tc.network, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		deadline := time.Now().Add(5 * time.Second)
		for !Pending(tc.fd) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not pending with a connection queued", tc.name)
			}
			time.Sleep(time.Millisecond)
		}
		accept(t, tc.fd)
		if Pending(tc.fd) {
			t.Fatalf("%s: pending after accepting the only connection", tc.name)
		}
	}
}

func TestReusePort(t *testing.T) {
	on, _ := listenTCP(t, true)
	off, _ := listenTCP(t, false)
	if !ReusePort(on) || ReusePort(off) {
		t.Fatalf("ReusePort: with %v, without %v", ReusePort(on), ReusePort(off))
	}
	if ReusePort(-1) {
		t.Fatal("ReusePort(-1) = true")
	}
}

func TestQueueLenNotTCP(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fds[0]); _ = unix.Close(fds[1]) })
	if _, err := QueueLen(fds[0]); err == nil {
		t.Fatal("QueueLen of a unix socket: no error")
	}
}

// TestWaitEmpty: WaitEmpty returns 0 once an accepting goroutine emptied
// the gated queue (and it stayed empty), and what is left when nobody
// accepts by the end or the wait is aborted.
func TestWaitEmpty(t *testing.T) {
	fd, addr := listenTCP(t, true)
	for range 2 {
		dial(t, addr)
	}
	waitQueued(t, fd, 2)
	if err := DropSYN(fd); err != nil {
		t.Fatal(err)
	}
	if n := WaitEmpty([]int{fd}, time.Now().Add(20*time.Millisecond), nil); n != 2 {
		t.Fatalf("nobody accepting: %d left, want 2", n)
	}
	abort := make(chan struct{})
	close(abort)
	if n := WaitEmpty([]int{fd}, time.Now().Add(time.Minute), abort); n != 2 {
		t.Fatalf("aborted: %d left, want 2", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			nfd, _, err := unix.Accept(fd) // blocking socket: waits for each
			if err != nil {
				return
			}
			_ = unix.Close(nfd)
		}
	}()
	if n := WaitEmpty([]int{fd}, time.Now().Add(time.Minute), nil); n != 0 {
		t.Fatalf("accepted meanwhile: %d left, want 0", n)
	}
	<-done
}

// TestSettle: settled only after Quiet of empty readings; a non-empty
// reading starts the wait over.
func TestSettle(t *testing.T) {
	var s Settle
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		at     time.Duration
		queued int
		want   bool
	}{
		{0, 0, false},
		{Quiet / 2, 0, false},
		{Quiet / 2, 3, false},
		{Quiet, 0, false},
		{Quiet + Quiet/2, 0, false},
		{2 * Quiet, 0, true},
		{2*Quiet + 1, 1, false},
	} {
		if got := s.Observe(t0.Add(step.at), step.queued); got != step.want {
			t.Fatalf("at %v with %d queued: settled %v, want %v", step.at, step.queued, got, step.want)
		}
	}
}
