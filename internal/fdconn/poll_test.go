package fdconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/workers/workerstest"
)

func pollListen(t *testing.T) (*PollListener, int, string) {
	t.Helper()
	lfd, addr := workerstest.ListenTCP(t)
	l, err := NewPollListener(lfd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, lfd, addr
}

// pollDial connects to addr and accepts the connection from l.
func pollDial(t *testing.T, l *PollListener, network, addr string) (*PollConn, net.Conn) {
	t.Helper()
	client, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, client
}

func (c *PollConn) joined() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f != nil
}

// A connection whose data is there reads and writes without joining the
// netpoller, has both addresses without asking the kernel, and is
// non-blocking with TCP_NODELAY.
func TestPollAcceptAddressesAndRawIO(t *testing.T) {
	l, _, addr := pollListen(t)
	if l.Addr().String() != addr {
		t.Fatalf("Addr %v, want %s", l.Addr(), addr)
	}
	c, client := pollDial(t, l, "tcp", addr)
	if c.RemoteAddr().String() != client.LocalAddr().String() {
		t.Fatalf("RemoteAddr %v, client is %v", c.RemoteAddr(), client.LocalAddr())
	}
	if c.LocalAddr().String() != addr || c.LocalAddr().Network() != "tcp" {
		t.Fatalf("LocalAddr %v/%s, want %s/tcp", c.LocalAddr(), c.LocalAddr().Network(), addr)
	}
	fl, _ := unix.FcntlInt(uintptr(c.fd), unix.F_GETFL, 0)
	if fl&unix.O_NONBLOCK == 0 {
		t.Fatal("accepted socket is blocking")
	}
	if v, _ := unix.GetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); v == 0 {
		t.Fatal("accepted socket without TCP_NODELAY")
	}
	client.Write([]byte("ping"))
	time.Sleep(20 * time.Millisecond) // let it arrive: the read must not wait
	b := make([]byte, 4)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "ping" {
		t.Fatalf("Read = %q, %v", b[:n], err)
	}
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if c.joined() {
		t.Fatal("joined the netpoller without waiting")
	}
	if _, err := io.ReadFull(client, b); err != nil || string(b) != "pong" {
		t.Fatalf("client read %q, %v", b, err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(b); err != io.EOF {
		t.Fatalf("client Read after CloseWrite = %d, %v; want EOF", n, err)
	}
	client.Close()
	if n, err := c.Read(b); err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want EOF", n, err)
	}
}

// Accept on an empty queue waits in the netpoller for the next connection
// (no error for EAGAIN), and Close ends that wait with net.ErrClosed.
func TestPollAcceptWaitsAndClose(t *testing.T) {
	l, _, addr := pollListen(t)
	got := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("Accept returned %v on an empty queue", err)
	default:
	}
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := <-got; err != nil {
		t.Fatalf("Accept: %v", err)
	}
	closeEndsAccept(t, l, addr)
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed listener = %v, want net.ErrClosed", err)
	}
}

// Another process switching the shared socket back to blocking mode (a
// new arbiter adopting it in a USR2 upgrade) must not leave Accept waiting
// in accept4(2), where Close could not reach it.
func TestPollAcceptOnBlockingListener(t *testing.T) {
	l, lfd, addr := pollListen(t)
	if err := unix.SetNonblock(lfd, false); err != nil {
		t.Fatal(err)
	}
	closeEndsAccept(t, l, addr)
}

// closeEndsAccept closes l while an Accept waits on an empty queue and
// expects that Accept to return net.ErrClosed; one stuck in accept4(2) is
// freed by a connection to addr.
func closeEndsAccept(t *testing.T, l *PollListener, addr string) {
	t.Helper()
	accept := func() error { _, err := l.Accept(); return err }
	acceptEnds(t, accept, func() { l.Close() }, net.ErrClosed, addr)
}

// A listener bound to a wildcard address leaves the local address to
// getsockname(2); a unix-domain one gives "unix" connections with the
// listener's path.
func TestPollAcceptWildcardAndUnix(t *testing.T) {
	l, err := NewPollListener(listenOn(t, unix.AF_INET, &unix.SockaddrInet4{}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	if c, _ := pollDial(t, l, "tcp", addr); c.LocalAddr().String() != addr {
		t.Fatalf("LocalAddr %v, want %s", c.LocalAddr(), addr)
	}

	path := t.TempDir() + "/s"
	ul, err := NewPollListener(listenOn(t, unix.AF_UNIX, &unix.SockaddrUnix{Name: path}))
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	c, client := pollDial(t, ul, "unix", path)
	assertUnixConn(t, c, client, path)
}

// listenOn returns a listening stream socket of domain bound to sa,
// closed when the test ends.
func listenOn(t *testing.T, domain int, sa unix.Sockaddr) int {
	t.Helper()
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	return fd
}

// assertUnixConn checks the addresses of c, accepted from a unix-domain
// listener at path, and a byte from its client.
func assertUnixConn(t *testing.T, c, client net.Conn, path string) {
	t.Helper()
	if c.RemoteAddr().Network() != "unix" || c.LocalAddr().String() != path {
		t.Fatalf("addrs %v (%s) / %v, want unix and %s", c.RemoteAddr(), c.RemoteAddr().Network(), c.LocalAddr(), path)
	}
	client.Write([]byte("u"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'u' {
		t.Fatalf("read %q, %v", b, err)
	}
}

// A deadline already passed fails at once; a Read that waits joins the
// netpoller and times out at its deadline; a deadline moved earlier
// reaches a Read already waiting; data arriving ends the wait.
func TestPollConnReadDeadlines(t *testing.T) {
	l, _, addr := pollListen(t)
	c, client := pollDial(t, l, "tcp", addr)
	b := make([]byte, 8)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(b); err == nil {
		t.Fatal("Read past its deadline succeeded")
	} else {
		assertTimeout(t, err)
	}
	if c.joined() {
		t.Fatal("a passed deadline joined the netpoller")
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(b)
	assertTimeout(t, err)
	if el := time.Since(start); el < 40*time.Millisecond {
		t.Fatalf("timed out after %v, before its 50ms deadline", el)
	}
	if !c.joined() {
		t.Fatal("a Read that waited did not join the netpoller")
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := c.Read(b); done <- err }()
	time.Sleep(50 * time.Millisecond)
	c.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		assertTimeout(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("an earlier deadline did not reach a waiting Read")
	}
	c.SetReadDeadline(time.Time{})
	go func() { _, err := c.Read(b); done <- err }()
	time.Sleep(20 * time.Millisecond)
	client.Write([]byte("x"))
	if err := <-done; err != nil {
		t.Fatalf("Read after data arrived: %v", err)
	}
}

// A deadline set before the first wait is the one the netpoller enforces
// once the Read joins it.
func TestPollConnDeadlineBeforeJoin(t *testing.T) {
	l, _, addr := pollListen(t)
	c, _ := pollDial(t, l, "tcp", addr)
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		assertTimeout(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline set before joining was lost")
	}
}

// A Write larger than the socket buffer joins the netpoller for the rest
// and delivers every byte; a write deadline ends a Write the peer does not
// drain.
func TestPollConnWriteJoinsAndDeadline(t *testing.T) {
	l, _, addr := pollListen(t)
	c, client := pollDial(t, l, "tcp", addr)
	// More than loopback's socket buffers can hold, so the Write must wait.
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	got := make(chan []byte, 1)
	go func() {
		// Read only once the Write waits in the netpoller: reading
		// earlier could let it finish without ever waiting.
		for deadline := time.Now().Add(10 * time.Second); !c.joined() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(data))))
		got <- b
	}()
	if n, err := c.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}
	if !c.joined() {
		t.Fatal("a Write that filled the buffer did not join")
	}
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	big := make([]byte, 64<<20) // more than any socket buffers hold
	n, err := c.Write(big)
	if n == len(big) {
		t.Fatal("Write to a peer that does not read completed")
	}
	assertTimeout(t, err)
}

// Close ends a Read waiting in the netpoller with net.ErrClosed, closes
// the descriptor, and is idempotent; later calls fail with net.ErrClosed.
func TestPollConnClose(t *testing.T) {
	l, _, addr := pollListen(t)
	c, _ := pollDial(t, l, "tcp", addr)
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("waiting Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a waiting Read")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
	if err := c.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetDeadline after Close = %v, want net.ErrClosed", err)
	}

	// Never joined: Close closes the descriptor itself.
	c2, client := pollDial(t, l, "tcp", addr)
	c2.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("peer of a closed, never joined connection reads %v, want EOF", err)
	}
}

// SyscallConn's Read calls its function on the socket as it is, and waits
// in the netpoller only when the function asks to.
func TestPollConnSyscallConnRead(t *testing.T) {
	l, _, addr := pollListen(t)
	c, client := pollDial(t, l, "tcp", addr)
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	var got []byte
	read := func(fd uintptr) bool {
		calls++
		b := make([]byte, 8)
		n, err := unix.Read(int(fd), b)
		if err == unix.EAGAIN {
			return false
		}
		got = b[:max(n, 0)]
		return true
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		client.Write([]byte("late"))
	}()
	if err := rc.Read(read); err != nil {
		t.Fatal(err)
	}
	if string(got) != "late" || calls < 2 || !c.joined() {
		t.Fatalf("got %q after %d calls (joined %v), want \"late\" after a wait", got, calls, c.joined())
	}
}

// AcceptFDs takes every queued connection up to its bound, each
// non-blocking with its peer's address, then waits for more; Close ends
// the wait with net.ErrClosed.
func TestPollAcceptFDs(t *testing.T) {
	l, _, addr := pollListen(t)
	peers := map[string]bool{}
	for range 3 {
		client, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		peers[client.LocalAddr().String()] = true
	}
	time.Sleep(20 * time.Millisecond) // all three in the queue
	var took []Accepted
	for _, want := range []int{2, 1} {
		got, err := l.AcceptFDs(2)
		if err != nil || len(got) != want {
			t.Fatalf("AcceptFDs(2) = %d connections, %v; want %d", len(got), err, want)
		}
		took = append(took, got...)
	}
	for _, a := range took {
		t.Cleanup(func() { unix.Close(a.FD) })
		if !peers[a.Peer.String()] {
			t.Errorf("peer %v is none of the clients %v", a.Peer, peers)
		}
		if fl, _ := unix.FcntlInt(uintptr(a.FD), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
			t.Error("accepted socket is blocking")
		}
	}
	got := make(chan error, 1)
	go func() {
		_, err := l.AcceptFDs(2)
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("AcceptFDs returned %v on an empty queue", err)
	default:
	}
	l.Close()
	if err := <-got; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("AcceptFDs after Close = %v, want net.ErrClosed", err)
	}
}
