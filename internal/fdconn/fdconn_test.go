package fdconn

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/testwait"
	"github.com/multiserve/multiserve/workers/workerstest"
)

// pair returns a Conn over one end of a unix socketpair (created
// non-blocking, so New must switch it) and the raw fd of the other end.
func pair(t *testing.T) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

func assertBlocking(t *testing.T, fd int) {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("fd %d still O_NONBLOCK", fd)
	}
}

func assertTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a net.Error with Timeout(), got %v", err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want os.ErrDeadlineExceeded, got %v", err)
	}
}

func TestReadWriteEOF(t *testing.T) {
	c, peer := pair(t)
	assertBlocking(t, c.FD())
	if _, err := unix.Write(peer, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := c.Write([]byte("pong")); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	n, _ = unix.Read(peer, buf)
	if string(buf[:n]) != "pong" {
		t.Fatalf("peer read %q", buf[:n])
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read = %d, %v", n, err)
	}
	unix.Shutdown(peer, unix.SHUT_WR)
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("Read after peer shutdown = %v, want io.EOF", err)
	}
}

// A Read blocks in the kernel until the deadline, then reports a timeout;
// clearing the deadline removes the kernel timeout again.
func TestReadDeadline(t *testing.T) {
	c, peer := pair(t)
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	assertTimeout(t, err)
	if time.Since(start) < 30*time.Millisecond {
		t.Fatalf("timed out before the deadline (%v)", time.Since(start))
	}
	tv, err := unix.GetsockoptTimeval(c.FD(), unix.SOL_SOCKET, unix.SO_RCVTIMEO)
	if err != nil || tv.Sec != 0 || tv.Usec == 0 {
		t.Fatalf("SO_RCVTIMEO = %+v, %v; want the sub-second timeout", tv, err)
	}

	// Past deadline: no syscall wait at all.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, err = c.Read(make([]byte, 1))
	assertTimeout(t, err)

	c.SetReadDeadline(time.Time{})
	unix.Write(peer, []byte("x"))
	if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("Read after clearing deadline = %d, %v", n, err)
	}
	tv, _ = unix.GetsockoptTimeval(c.FD(), unix.SOL_SOCKET, unix.SO_RCVTIMEO)
	if time.Duration(tv.Nano()) != forever {
		t.Fatalf("SO_RCVTIMEO = %+v after clearing the deadline, want %v", tv, forever)
	}
}

// Moving the deadline earlier reaches a Read already blocked in the kernel
// (with no deadline, or a far one), as with a netpoller conn; the Conn
// stays usable afterwards.
func TestDeadlineInterruptsBlockedRead(t *testing.T) {
	for _, far := range []time.Duration{0, time.Hour} {
		c, peer := pair(t)
		if far > 0 {
			c.SetReadDeadline(time.Now().Add(far))
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		interruptBlockedRead(t, c, done)
		c.SetReadDeadline(time.Time{})
		unix.Write(peer, []byte("y"))
		if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Fatalf("Read after the interrupt = %d, %v", n, err)
		}
	}
}

// interruptBlockedRead waits until a Read is blocked in c, moves the read
// deadline to now and expects that Read to report a timeout on done.
func interruptBlockedRead(t *testing.T, c *Conn, done <-chan error) {
	t.Helper()
	waitBlocked(t, &c.rd)
	c.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		assertTimeout(t, err)
	case <-time.After(10 * time.Second):
		c.Close()
		t.Fatal("SetReadDeadline(now) did not interrupt the blocked Read")
	}
}

// waitBlocked waits until a call has entered the kernel side of d.
func waitBlocked(t *testing.T, d *direction) {
	t.Helper()
	testwait.Until(t, 5*time.Second, "a blocked call", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.tid != 0
	})
}

// A Write the peer never drains stops at the deadline with a partial count.
func TestWriteDeadline(t *testing.T) {
	big := make([]byte, 16<<20)
	// A deadline that passed before Write started (a loaded machine can
	// hold this goroutine off the CPU for longer than a short deadline)
	// rightly writes nothing; the case under test is a Write cut while it
	// waits in the kernel, so try longer deadlines until one is observed.
	for _, d := range []time.Duration{50 * time.Millisecond, 250 * time.Millisecond, time.Second} {
		c, _ := pair(t)
		start := time.Now()
		c.SetWriteDeadline(start.Add(d))
		n, err := c.Write(big)
		assertTimeout(t, err)
		if n == len(big) {
			t.Fatalf("Write wrote all %d bytes to a peer that does not read", n)
		}
		if n > 0 {
			return
		}
	}
	t.Fatal("Write wrote nothing before its deadline, even with 1s")
}

func TestCloseIdempotentAndWakesBlockedRead(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	waitBlocked(t, &c.rd)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked Read returned %v after Close, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked Read")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
	// The descriptor is really closed once the reader left.
	if _, err := unix.FcntlInt(uintptr(c.FD()), unix.F_GETFD, 0); err != unix.EBADF {
		// The number may have been reused by a parallel test; only
		// report when it is certainly still ours.
		t.Logf("fd %d still valid after Close (reused?): %v", c.FD(), err)
	}
}

func TestAcceptLoopback(t *testing.T) {
	lfd, addr := workerstest.ListenTCP(t)
	unix.SetNonblock(lfd, true)
	if _, err := Accept(lfd); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("Accept on an empty queue = %v, want EAGAIN", err)
	}
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var c *Conn
	for deadline := time.Now().Add(5 * time.Second); c == nil; {
		c, err = Accept(lfd)
		if err != nil && !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			t.Fatalf("Accept: %v", err)
		}
	}
	defer c.Close()
	assertBlocking(t, c.FD())
	if c.RemoteAddr().String() != client.LocalAddr().String() {
		t.Fatalf("RemoteAddr %v, client is %v", c.RemoteAddr(), client.LocalAddr())
	}
	if c.LocalAddr().String() != addr || c.LocalAddr().Network() != "tcp" {
		t.Fatalf("LocalAddr %v/%s, want %s/tcp", c.LocalAddr(), c.LocalAddr().Network(), addr)
	}
	nodelay, _ := unix.GetsockoptInt(c.FD(), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	if nodelay == 0 {
		t.Fatal("TCP_NODELAY not set")
	}
	client.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(buf); err != io.EOF {
		t.Fatalf("client Read after CloseWrite = %d, %v; want EOF", n, err)
	}
}

// A listener another process switched back to blocking mode (the new
// arbiter adopting it during a USR2 upgrade) must not make Accept wait for
// a connection: the threaded worker's poller stalled in accept4 that way,
// its accepted connections unanswered until their clients timed out.
func TestAcceptOnBlockingListenerDoesNotWait(t *testing.T) {
	lfd, addr := workerstest.ListenTCP(t)
	if err := unix.SetNonblock(lfd, false); err != nil {
		t.Fatal(err)
	}
	acceptReturns(t, func() (*Conn, error) { return Accept(lfd) }, addr)
}

// acceptReturns calls accept on an empty queue and expects EAGAIN within
// 10 s; a stuck call is freed by a connection to addr.
func acceptReturns(t *testing.T, accept func() (*Conn, error), addr string) {
	t.Helper()
	acceptEnds(t, func() error {
		c, err := accept()
		if c != nil {
			c.Close()
		}
		return err
	}, nil, unix.EAGAIN, addr)
}

// acceptEnds calls accept on an empty queue, then (after 50 ms) then when
// not nil, and expects accept to fail with want within 10 s; a stuck call
// is freed by a connection to addr.
func acceptEnds(t *testing.T, accept func() error, then func(), want error, addr string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- accept() }()
	if then != nil {
		time.Sleep(50 * time.Millisecond)
		then()
	}
	select {
	case err := <-done:
		if !errors.Is(err, want) {
			t.Fatalf("Accept on an empty queue = %v, want %v", err, want)
		}
	case <-time.After(10 * time.Second):
		if client, err := net.Dial("tcp", addr); err == nil {
			defer client.Close()
		}
		<-done
		t.Fatal("Accept waited for a connection")
	}
}

// A deadline moved by the same amount before each call reuses the timeout
// already in the kernel (no setsockopt per request); when that kept
// timeout fires before the deadline, Read waits out the rest instead of
// reporting a timeout early.
func TestKernelTimeoutReuse(t *testing.T) {
	c, peer := pair(t)
	for range 3 {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		unix.Write(peer, []byte("z"))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	first := c.rd.kernel
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	unix.Write(peer, []byte("z"))
	c.Read(make([]byte, 1))
	if c.rd.kernel != first {
		t.Fatalf("kernel timeout re-set from %v to %v for the same relative deadline", first, c.rd.kernel)
	}

	c.SetReadDeadline(time.Now().Add(40 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	assertTimeout(t, err)
	start := time.Now()
	c.SetReadDeadline(start.Add(70 * time.Millisecond)) // the 40ms kernel timeout is kept
	_, err = c.Read(make([]byte, 1))
	assertTimeout(t, err)
	if el := time.Since(start); el < 70*time.Millisecond {
		t.Fatalf("Read reported a timeout after %v, before its 70ms deadline", el)
	}
}

// Accept on a unix-domain listener gives a "unix" Conn (no TCP options).
func TestAcceptUnix(t *testing.T) {
	path := t.TempDir() + "/s"
	lfd := listenOn(t, unix.AF_UNIX, &unix.SockaddrUnix{Name: path})
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	assertUnixConn(t, c, client, path)
}

// TestReadable: false while nothing is there, true with data and after
// the peer's close, an error once closed.
func TestReadable(t *testing.T) {
	c, peer := pair(t)
	if ok, err := c.Readable(); ok || err != nil {
		t.Fatalf("empty socket: readable %v, err %v", ok, err)
	}
	if _, err := unix.Write(peer, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Readable(); !ok || err != nil {
		t.Fatalf("with a byte: readable %v, err %v", ok, err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	unix.Shutdown(peer, unix.SHUT_WR)
	if ok, err := c.Readable(); !ok || err != nil {
		t.Fatalf("after the peer's shutdown: readable %v, err %v", ok, err)
	}
	c.Close()
	if _, err := c.Readable(); err == nil {
		t.Fatal("closed conn: no error")
	}
}

// accepted is a Conn accepted by a test, with its client's end.
type accepted struct {
	*Conn
	peer net.Conn
}

// dialAccept connects to addr and accepts the connection from a; both
// ends are closed when the test ends.
func dialAccept(t *testing.T, a *Acceptor, addr string) accepted {
	t.Helper()
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := a.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return accepted{c, client}
}

// An Acceptor takes the local address from a listener bound to one
// address, and still asks the kernel behind a wildcard one; accepted TCP
// sockets have TCP_NODELAY whether the listener passed it on or not.
func TestAcceptorInherits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		host     [4]byte
		nodelay  int
		fromList bool // local address taken from the listener
	}{
		{"one address", [4]byte{127, 0, 0, 1}, 0, true},
		{"one address, TCP_NODELAY", [4]byte{127, 0, 0, 1}, 1, true},
		{"wildcard", [4]byte{}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(lfd)
			unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, tc.nodelay)
			if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: tc.host}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Listen(lfd, 8); err != nil {
				t.Fatal(err)
			}
			a, err := NewAcceptor(lfd)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.laddr != nil; got != tc.fromList {
				t.Fatalf("local address from the listener: %v, want %v", got, tc.fromList)
			}
			sa, _ := unix.Getsockname(lfd)
			addr := "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
			c := dialAccept(t, a, addr)
			if c.LocalAddr().String() != addr {
				t.Fatalf("LocalAddr %v, want %s", c.LocalAddr(), addr)
			}
			if v, _ := unix.GetsockoptInt(c.FD(), unix.IPPROTO_TCP, unix.TCP_NODELAY); v == 0 {
				t.Fatal("accepted socket without TCP_NODELAY")
			}
		})
	}
}

// Timeouts put on the listener reach accepted sockets (Linux copies them),
// so a connection's first deadlines of that length arm nothing; a shorter
// deadline still times out on time.
func TestAcceptorTimeouts(t *testing.T) {
	lfd, addr := workerstest.ListenTCP(t)
	a, err := NewAcceptor(lfd)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetTimeouts(10*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	c := dialAccept(t, a, addr)
	client := c.peer
	for opt, want := range map[int]time.Duration{unix.SO_RCVTIMEO: 10 * time.Second, unix.SO_SNDTIMEO: forever} {
		tv, err := unix.GetsockoptTimeval(c.FD(), unix.SOL_SOCKET, opt)
		if err != nil || time.Duration(tv.Nano()) != want {
			t.Fatalf("accepted socket's option %d = %v, %v; want %v", opt, time.Duration(tv.Nano()), err, want)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	client.Write([]byte("x"))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if c.rd.kernel != 10*time.Second || c.wr.kernel != forever {
		t.Fatalf("kernel timeouts re-armed: read %v, write %v", c.rd.kernel, c.wr.kernel)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	assertTimeout(t, err)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("a 50ms deadline timed out after %v", el)
	}
}

// With the serving thread declared (SetThread), a deadline moved earlier
// still interrupts a Read blocked on that thread.
func TestAcceptorThreadInterrupt(t *testing.T) {
	lfd, addr := workerstest.ListenTCP(t)
	a, err := NewAcceptor(lfd)
	if err != nil {
		t.Fatal(err)
	}
	tids, conns, done := make(chan int), make(chan *Conn), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		_, err := (<-conns).Read(make([]byte, 1))
		done <- err
	}()
	c := dialAccept(t, a, addr)
	c.SetThread(<-tids)
	conns <- c.Conn
	interruptBlockedRead(t, c.Conn, done)
}

// With a read timeout on the listener (SetTimeouts) and no mode check
// (SkipModeCheck), an Accept on a listener another process left blocking
// waits at most that timeout.
func TestAcceptorBoundedOnBlockingListener(t *testing.T) {
	lfd, addr := workerstest.ListenTCP(t)
	a, err := NewAcceptor(lfd)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetTimeouts(200*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	a.SkipModeCheck()
	if err := unix.SetNonblock(lfd, false); err != nil {
		t.Fatal(err)
	}
	acceptReturns(t, a.Accept, addr)
}
