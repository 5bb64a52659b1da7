// Package fdconn owns connections made from raw socket descriptors: the
// accepting of them without the net package's work per connection, and
// net.Conns over them. Conn (this file) is a raw, blocking socket, for
// the worker classes whose model is "one OS thread blocks on one socket"
// (sync, threaded); PollConn (poll.go) a non-blocking one whose calls wait
// in Go's netpoller, for a goroutine per connection; PollListener's
// AcceptFDs hands bare non-blocking descriptors to an event loop.
//
// Read and Write are plain read(2)/write(2) system calls on a descriptor in
// blocking mode: the calling goroutine holds its OS thread for as long as the
// kernel makes it wait, exactly like a thread in a C or Python server. Go's
// netpoller is never involved. Deadlines are carried out by the kernel through
// SO_RCVTIMEO and SO_SNDTIMEO, recomputed from SetReadDeadline and
// SetWriteDeadline before each call. As with a netpoller connection, moving
// a deadline earlier also reaches a call already blocked in the kernel (the
// engine relies on this to stop waiting on an idle connection at shutdown):
// see deadline.go.
//
// Threading: Read, Write and the deadline setters may be called from
// different goroutines (one reader, one writer), Close from any goroutine.
// Close wakes blocked calls (it shuts the socket down first).
package fdconn

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	stdsync "sync"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a connected socket in blocking mode. It implements net.Conn.
type Conn struct {
	lifetime
	network string // "tcp" or "unix"
	raddr   net.Addr
	peer    tcpAddrBuf // raddr's storage when it is a TCP address

	laddrOnce stdsync.Once
	laddr     net.Addr

	rd, wr direction
	// thread is the OS thread Read and Write run on, when the caller
	// declared it (SetThread; 0: ask gettid per call)
	thread int
}

// New takes ownership of the connected socket fd, switches it to blocking
// mode and returns it as a Conn. On error fd is left open for the caller.
func New(fd int) (*Conn, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, fmt.Errorf("fdconn: clear O_NONBLOCK on fd %d: %w", fd, err)
	}
	rsa, n, err := sockaddr(unix.SYS_GETPEERNAME, fd)
	if err != nil {
		return nil, fmt.Errorf("fdconn: getpeername fd %d: %w", fd, err)
	}
	c := newConn(fd, rsa, n)
	if c.network == "tcp" {
		setNoDelay(fd)
	}
	return c, nil
}

// newConn wraps the connected socket fd; peer is its peer's address, n
// bytes of it filled in by the kernel.
func newConn(fd int, peer *unix.RawSockaddrAny, n uint32) *Conn {
	c := &Conn{lifetime: lifetime{fd: fd}, network: "tcp"}
	c.rd.opt, c.wr.opt = unix.SO_RCVTIMEO, unix.SO_SNDTIMEO
	if peer.Addr.Family == unix.AF_UNIX {
		c.network = "unix"
	}
	c.raddr = rawToAddr(peer, n, c.network, &c.peer)
	return c
}

// Readable reports, without blocking (poll(2) with a zero timeout),
// whether a Read would return at once: data is there, the peer closed, or
// the socket failed. It implements h1.Readable, so the threaded class
// never blocks a thread on a partial request head.
func (c *Conn) Readable() (bool, error) {
	if !c.acquire() {
		return false, c.opError("poll", net.ErrClosed)
	}
	defer c.release()
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, c.opError("poll", os.NewSyscallError("poll", err))
		}
		return n > 0 && fds[0].Revents != 0, nil
	}
}

// SetThread declares that Read and Write run on OS thread tid, whose
// goroutine is locked to it, until the next SetThread (0: undeclared).
// A thread-per-request class calls it as it takes the connection, from
// that goroutine. A deadline moved while a call is blocked interrupts that
// thread, which then need not be looked up (gettid) on every call. A call
// made from another thread anyway (a handler writing from a goroutine of
// its own) still works; only an earlier deadline set while it is blocked
// reaches it no sooner than the kernel timeout already armed.
func (c *Conn) SetThread(tid int) { c.thread = tid }

// FD returns the socket descriptor, for registering it with a poller. It
// stays valid until Close.
func (c *Conn) FD() int { return c.fd }

// Read reads from the socket with one blocking read(2) (retried on EINTR).
// It returns io.EOF when the peer has closed its side.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if !c.acquire() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer c.release()
	tid := c.lockThread()
	defer runtime.UnlockOSThread()
	for {
		if err := c.rd.enter(c.fd, tid); err != nil {
			return 0, c.opError("read", err)
		}
		n, err := unix.Read(c.fd, b)
		c.rd.leave()
		switch {
		case err == nil && n == 0:
			if err := c.closedOr(io.EOF); err != io.EOF {
				return 0, c.opError("read", err) // Close's shutdown woke us
			}
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && !c.rd.expired():
			continue // no deadline, or woke a little early: wait the rest
		case err == unix.EAGAIN:
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		default:
			return 0, c.opError("read", c.closedOr(os.NewSyscallError("read", err)))
		}
	}
}

// Write writes all of b with blocking write(2) calls; it returns fewer bytes
// only together with an error.
func (c *Conn) Write(b []byte) (int, error) {
	if !c.acquire() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer c.release()
	tid := c.lockThread()
	defer runtime.UnlockOSThread()
	done := 0
	for done < len(b) {
		if err := c.wr.enter(c.fd, tid); err != nil {
			return done, c.opError("write", err)
		}
		n, err := unix.Write(c.fd, b[done:])
		c.wr.leave()
		if n > 0 {
			done += n
		}
		switch {
		case err == nil, err == unix.EINTR:
		case err == unix.EAGAIN && !c.wr.expired():
		case err == unix.EAGAIN:
			return done, c.opError("write", os.ErrDeadlineExceeded)
		default:
			return done, c.opError("write", c.closedOr(os.NewSyscallError("write", err)))
		}
	}
	return done, nil
}

// Close closes the socket. It is idempotent; calls blocked in Read or Write
// return net.ErrClosed.
func (c *Conn) Close() error {
	// A thread blocked in read or write is woken by shutdown(2), not by
	// close(2); the last release closes.
	err := c.close(func() { _ = unix.Shutdown(c.fd, unix.SHUT_RDWR) })
	if err != nil {
		return c.opError("close", err)
	}
	return nil
}

// CloseWrite shuts down the writing side (the peer reads EOF), as
// net.TCPConn.CloseWrite does.
func (c *Conn) CloseWrite() error { return c.shutdown(unix.SHUT_WR, "shutdown write") }

// CloseRead shuts down the reading side, as net.TCPConn.CloseRead does.
func (c *Conn) CloseRead() error { return c.shutdown(unix.SHUT_RD, "shutdown read") }

func (c *Conn) shutdown(how int, op string) error {
	if !c.acquire() {
		return c.opError(op, net.ErrClosed)
	}
	defer c.release()
	if err := unix.Shutdown(c.fd, how); err != nil {
		return c.opError(op, os.NewSyscallError("shutdown", err))
	}
	return nil
}

// LocalAddr returns the local address (getsockname, looked up once, lazily:
// many connections never ask).
func (c *Conn) LocalAddr() net.Addr {
	c.laddrOnce.Do(func() {
		if !c.acquire() {
			return
		}
		defer c.release()
		if rsa, n, err := sockaddr(unix.SYS_GETSOCKNAME, c.fd); err == nil {
			c.laddr = rawToAddr(rsa, n, c.network, nil)
		}
	})
	if c.laddr == nil {
		return nilAddr(c.network)
	}
	return c.laddr
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wr.set(t)
	return nil
}

// SetReadDeadline sets the deadline for future Read calls; zero means none.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline sets the deadline for future Write calls; zero means none.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wr.set(t); return nil }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Addr: c.raddr, Err: err}
}

var _ net.Conn = (*Conn)(nil)
