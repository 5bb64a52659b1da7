package fdconn

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	stdsync "sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PollListener accepts connections for goroutines that wait in Go's
// netpoller, as a net.Listener from net.FileListener does, without the
// net package's work per connection: it sets no socket option (the
// arbiter sets TCP_NODELAY and keep-alive probing on the listening
// socket, and Linux copies them to every accepted socket), asks no
// address (the local one is the listener's unless that is a wildcard, the
// remote one comes with accept4(2)), and registers a connection with the
// netpoller only when it first has to wait (see PollConn).
//
// The listener waits for connections in the netpoller. Accept is one
// accept4(2) per connection while the queue holds any, then one that
// finds it empty before the goroutine parks.
type PollListener struct {
	f     *os.File // a dup of the inherited socket, registered with the netpoller
	rc    syscall.RawConn
	fd    int
	laddr net.Addr // nil: a wildcard address, asked per connection
	// nodelay: the listener has TCP_NODELAY, so accepted sockets do;
	// otherwise (a socket not bound by the arbiter) each gets it.
	nodelay bool
	addr    net.Addr // the listener's own address, for Addr
	closed  atomic.Bool
}

// NewPollListener returns a PollListener on a dup of the listening socket
// lfd (left open for the caller; closing the PollListener closes the
// dup). It sets O_NONBLOCK on the socket, which every sibling shares.
func NewPollListener(lfd int) (*PollListener, error) {
	fd, err := unix.FcntlInt(uintptr(lfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fdconn: listener fd %d: dup: %w", lfd, err)
	}
	a, err := NewAcceptor(fd)
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fdconn: listener fd %d: %w", lfd, err)
	}
	l := &PollListener{f: os.NewFile(uintptr(fd), "listener"), fd: fd, laddr: a.laddr, nodelay: a.nodelay}
	if l.rc, err = l.f.SyscallConn(); err != nil {
		l.f.Close()
		return nil, fmt.Errorf("fdconn: listener fd %d: %w", lfd, err)
	}
	l.addr = l.laddr
	if l.addr == nil {
		rsa, n, err := sockaddr(unix.SYS_GETSOCKNAME, fd)
		if err != nil {
			l.f.Close()
			return nil, fmt.Errorf("fdconn: listener fd %d: getsockname: %w", lfd, err)
		}
		l.addr = rawToAddr(rsa, n, "tcp", nil)
	}
	return l, nil
}

// Accept waits for the next connection and returns it as a *PollConn.
// After Close it returns an error satisfying errors.Is(err,
// net.ErrClosed); accept(2)'s own errors are returned wrapped, with their
// errno reachable through errors.Is (workers.ClassifyAccept triages them).
//
// Another process may clear O_NONBLOCK on the shared socket (see
// ensureNonblock): Accept checks it once per call, so that the accept4
// before the goroutine parks never waits in the kernel.
func (l *PollListener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err // a nil *PollConn in an interface would not be nil
	}
	return c, nil
}

// AcceptConn is Accept returning the concrete type.
func (l *PollListener) AcceptConn() (*PollConn, error) {
	var c *PollConn
	err := l.accept(1, func(fd int, rsa *unix.RawSockaddrAny, n uint32) {
		c = newPollConn(fd, rsa, n, l.laddr)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Accepted is a connection AcceptFDs took: its descriptor, non-blocking
// and close-on-exec, now the caller's, and its peer's address.
type Accepted struct {
	FD   int
	Peer net.Addr
}

// AcceptFDs is Accept for a caller that serves the descriptors itself (an
// event loop of its own): it waits in the netpoller until connections are
// queued, then takes every one queued, up to max, and returns them. An
// accept(2) error other than EAGAIN and EINTR ends the batch; it is
// returned wrapped, as from Accept, with what was taken before it. One
// F_GETFL per call, not per connection (see Accept).
func (l *PollListener) AcceptFDs(max int) ([]Accepted, error) {
	var took []Accepted
	err := l.accept(max, func(fd int, rsa *unix.RawSockaddrAny, n uint32) {
		took = append(took, Accepted{FD: fd, Peer: rawToAddr(rsa, n, "tcp", nil)})
	})
	return took, err
}

// accept waits in the netpoller until the queue holds connections, then
// accepts up to max of them, handing each to take (TCP_NODELAY set when
// the listener lacks it), and returns once it took one or more and the
// queue is empty, or max were taken, or accept(2) failed otherwise.
func (l *PollListener) accept(max int, take func(fd int, rsa *unix.RawSockaddrAny, n uint32)) error {
	if err := ensureNonblock(l.fd); err != nil {
		return l.opError(err)
	}
	var aerr error
	taken := 0
	err := l.rc.Read(func(fd uintptr) bool {
		for taken < max {
			nfd, rsa, n, err := accept4nb(int(fd))
			switch err {
			case nil:
				if rsa.Addr.Family != unix.AF_UNIX && !l.nodelay {
					setNoDelay(nfd)
				}
				take(nfd, rsa, n)
				taken++
				continue
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return taken > 0 // none yet: park until the listener is readable
			}
			aerr = os.NewSyscallError("accept4", err)
			return true
		}
		return true
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return l.opError(err)
	}
	return nil
}

// Close closes the listener's descriptor (not the inherited one); an
// Accept waiting returns net.ErrClosed.
func (l *PollListener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	if err := l.f.Close(); err != nil {
		return l.opError(err)
	}
	return nil
}

// Addr returns the listener's address.
func (l *PollListener) Addr() net.Addr { return l.addr }

func (l *PollListener) opError(err error) error {
	if l.closed.Load() {
		err = net.ErrClosed
	}
	return &net.OpError{Op: "accept", Net: l.addr.Network(), Addr: l.addr, Err: err}
}

// accept4nb accepts one connection from lfd, non-blocking and
// close-on-exec from the start (no fcntl(2) after).
func accept4nb(lfd int) (int, *unix.RawSockaddrAny, uint32, error) {
	rsa := new(unix.RawSockaddrAny)
	n := uint32(unix.SizeofSockaddrAny)
	fd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&n)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, nil, 0, e
	}
	return int(fd), rsa, n, nil
}

// PollConn is an accepted socket in non-blocking mode, a net.Conn whose
// calls wait in Go's netpoller. It joins the netpoller (an fcntl(2) and
// an epoll_ctl(2) to add it, one more to remove it at Close) only when a
// call first has to wait: until then Read and Write are plain read(2)
// and write(2). A connection whose request is already there when it is
// accepted and whose response fits in the socket buffer never joins: it
// costs accept4, read, write and close, as in a C event loop.
//
// Deadlines are the netpoller's once joined; before, a call that finds
// its deadline passed fails with os.ErrDeadlineExceeded, and a call that
// would wait joins with the deadlines set so far.
//
// Threading: as for a *net.TCPConn (one reader, one writer, deadlines
// and Close from any goroutine).
type PollConn struct {
	lifetime // its f is set when joined; its mu also guards rdl and wdl
	network  string
	raddr    net.Addr

	laddrOnce stdsync.Once
	laddr     net.Addr

	rdl, wdl time.Time // the deadlines, kept here until joined

	frc syscall.RawConn // f's, set with f (under mu), read after raw or join returned f
}

func newPollConn(fd int, peer *unix.RawSockaddrAny, n uint32, laddr net.Addr) *PollConn {
	c := &PollConn{lifetime: lifetime{fd: fd}, network: "tcp"}
	if peer.Addr.Family == unix.AF_UNIX {
		c.network = "unix"
	}
	c.raddr = rawToAddr(peer, n, c.network, nil)
	if laddr != nil {
		c.laddrOnce.Do(func() { c.laddr = laddr })
	}
	return c
}

// NetpollerSocket marks a connection whose SyscallConn waits in Go's
// netpoller (h1 then waits for an idle connection's next request without
// holding a buffer).
func (c *PollConn) NetpollerSocket() {}

// raw returns the file when joined; otherwise it takes a reference for a
// raw call (release it), after checking the deadline dl points to.
func (c *PollConn) raw(dl *time.Time) (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closing:
		return nil, net.ErrClosed
	case c.f != nil:
		return c.f, nil
	case dl != nil && !dl.IsZero() && !time.Now().Before(*dl):
		return nil, os.ErrDeadlineExceeded
	}
	c.refs++
	return nil, nil
}

// join registers the socket with the netpoller, with the deadlines set so
// far, and releases the caller's reference. The caller holds one, so fd
// is still open.
func (c *PollConn) join() (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.releaseLocked()
	if c.closing {
		return nil, net.ErrClosed
	}
	if c.f == nil {
		// os.NewFile sees O_NONBLOCK and registers the socket.
		f := os.NewFile(uintptr(c.fd), c.network)
		if !c.rdl.IsZero() {
			_ = f.SetReadDeadline(c.rdl) // cannot fail on a pollable file
		}
		if !c.wdl.IsZero() {
			_ = f.SetWriteDeadline(c.wdl)
		}
		c.frc, _ = f.SyscallConn() // fails only for a nil file
		c.f = f
	}
	return c.f, nil
}

// Read reads with read(2), waiting in the netpoller when nothing is
// there. It returns io.EOF when the peer has closed its side.
func (c *PollConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	f, err := c.raw(&c.rdl)
	if err != nil {
		return 0, c.opError("read", err)
	}
	if f == nil {
		n, err := readRaw(c.fd, b)
		switch {
		case err == nil && n == 0:
			c.release()
			return 0, io.EOF
		case err == nil:
			c.release()
			return n, nil
		case err != unix.EAGAIN:
			c.release()
			return 0, c.opError("read", os.NewSyscallError("read", err))
		}
		if f, err = c.join(); err != nil {
			return 0, c.opError("read", err)
		}
	}
	n, err := f.Read(b)
	if err == io.EOF {
		return n, err
	}
	return n, c.fileError("read", err)
}

// Write writes all of b with write(2) calls, waiting in the netpoller
// when the socket buffer is full; it returns fewer bytes only together
// with an error.
func (c *PollConn) Write(b []byte) (int, error) {
	f, err := c.raw(&c.wdl)
	if err != nil {
		return 0, c.opError("write", err)
	}
	done := 0
	if f == nil {
		for done < len(b) {
			n, err := writeRaw(c.fd, b[done:])
			if n > 0 {
				done += n
			}
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				c.release()
				return done, c.opError("write", os.NewSyscallError("write", err))
			}
		}
		if done == len(b) {
			c.release()
			return done, nil
		}
		if f, err = c.join(); err != nil {
			return done, c.opError("write", err)
		}
	}
	n, err := f.Write(b[done:])
	return done + n, c.fileError("write", err)
}

// readRaw is read(2), retried on EINTR.
func readRaw(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// writeRaw is write(2), retried on EINTR.
func writeRaw(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Write(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// Close closes the socket; calls waiting in the netpoller return
// net.ErrClosed. It is idempotent.
func (c *PollConn) Close() error {
	// A raw call in progress never waits: the last release closes. One
	// waiting in the netpoller meanwhile (joined) is woken by a deadline.
	err := c.close(func() {
		if c.f != nil {
			_ = c.f.SetDeadline(time.Unix(1, 0))
		}
	})
	if err != nil {
		return c.opError("close", err)
	}
	return nil
}

// CloseWrite shuts down the writing side (the peer reads EOF), as
// net.TCPConn.CloseWrite does.
func (c *PollConn) CloseWrite() error { return c.shutdown(unix.SHUT_WR, "shutdown write") }

// CloseRead shuts down the reading side, as net.TCPConn.CloseRead does.
func (c *PollConn) CloseRead() error { return c.shutdown(unix.SHUT_RD, "shutdown read") }

func (c *PollConn) shutdown(how int, op string) error {
	err := c.control(func(fd int) error { return os.NewSyscallError("shutdown", unix.Shutdown(fd, how)) })
	if err != nil {
		return c.opError(op, err)
	}
	return nil
}

// control runs fn on the descriptor, which stays open meanwhile.
func (c *PollConn) control(fn func(fd int) error) error {
	f, err := c.raw(nil)
	if err != nil {
		return err
	}
	if f == nil {
		defer c.release()
		return fn(c.fd)
	}
	var ferr error
	if err := c.frc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return c.closedOr(err)
	}
	return ferr
}

// LocalAddr returns the local address: the listener's, or for a wildcard
// listener getsockname(2)'s, looked up once when first asked.
func (c *PollConn) LocalAddr() net.Addr {
	c.laddrOnce.Do(func() {
		_ = c.control(func(fd int) error {
			rsa, n, err := sockaddr(unix.SYS_GETSOCKNAME, fd)
			if err == nil {
				c.laddr = rawToAddr(rsa, n, c.network, nil)
			}
			return err
		})
	})
	if c.laddr == nil {
		return nilAddr(c.network)
	}
	return c.laddr
}

// RemoteAddr returns the peer's address, as accept4(2) reported it.
func (c *PollConn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets both deadlines.
func (c *PollConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the deadline for Read calls, including one waiting
// now; zero means none.
func (c *PollConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.rdl, t, (*os.File).SetReadDeadline)
}

// SetWriteDeadline sets the deadline for Write calls, including one
// waiting now; zero means none.
func (c *PollConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.wdl, t, (*os.File).SetWriteDeadline)
}

func (c *PollConn) setDeadline(dl *time.Time, t time.Time, set func(*os.File, time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return c.opError("set deadline", net.ErrClosed)
	}
	*dl = t
	if c.f != nil {
		if err := set(c.f, t); err != nil {
			return c.opError("set deadline", err)
		}
	}
	return nil
}

// SyscallConn gives raw access to the socket. Its Read and Write call
// their function once on the socket as it is, and join the netpoller to
// wait only if it returns false.
func (c *PollConn) SyscallConn() (syscall.RawConn, error) { return pollRawConn{c}, nil }

type pollRawConn struct{ c *PollConn }

func (r pollRawConn) Control(fn func(fd uintptr)) error {
	return r.c.control(func(fd int) error { fn(uintptr(fd)); return nil })
}

func (r pollRawConn) Read(fn func(fd uintptr) bool) error {
	return r.wait(fn, syscall.RawConn.Read)
}

func (r pollRawConn) Write(fn func(fd uintptr) bool) error {
	return r.wait(fn, syscall.RawConn.Write)
}

func (r pollRawConn) wait(fn func(fd uintptr) bool, waitFor func(syscall.RawConn, func(uintptr) bool) error) error {
	c := r.c
	f, err := c.raw(nil)
	if err != nil {
		return err
	}
	if f == nil {
		if fn(uintptr(c.fd)) {
			c.release()
			return nil
		}
		if f, err = c.join(); err != nil {
			return err
		}
	}
	return c.closedOr(waitFor(c.frc, fn))
}

// fileError converts an error of the joined file into a net.OpError as
// the net package reports it.
func (c *PollConn) fileError(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return c.opError(op, c.closedOr(err))
}

func (c *PollConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Addr: c.raddr, Err: err}
}

var (
	_ net.Conn     = (*PollConn)(nil)
	_ net.Listener = (*PollListener)(nil)
)
