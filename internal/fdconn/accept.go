package fdconn

import (
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Acceptor accepts connections from one listening socket. A worker makes
// one per listener when it starts: what Linux copies from a listening
// socket to every socket accepted from it is learned here once, instead of
// being set or asked again for each connection:
//
//   - TCP_NODELAY: when the listener has it (the arbiter sets it on every
//     TCP socket it binds), accepted sockets have it too; otherwise each
//     accepted socket gets it.
//   - the local address: an accepted socket's is the listener's, unless
//     the listener is bound to a wildcard address (0.0.0.0, ::), where
//     only getsockname(2) on the connection can tell which address the
//     client reached; that one is looked up lazily, when asked.
//   - the kernel timeouts (SO_RCVTIMEO, SO_SNDTIMEO) a Conn arms for its
//     deadlines, once SetTimeouts put them on the listener.
type Acceptor struct {
	fd        int
	laddr     net.Addr      // every accepted socket's local address; nil: ask getsockname
	nodelay   bool          // the listener has TCP_NODELAY, so accepted sockets do
	rd, wr    time.Duration // the listener's SO_RCVTIMEO, SO_SNDTIMEO; 0: not set here
	skipCheck bool          // see SkipModeCheck
}

// NewAcceptor reads what sockets accepted from the listening socket lfd
// inherit. lfd stays the caller's.
func NewAcceptor(lfd int) (*Acceptor, error) {
	rsa, n, err := sockaddr(unix.SYS_GETSOCKNAME, lfd)
	if err != nil {
		return nil, fmt.Errorf("fdconn: listener fd %d: getsockname: %w", lfd, err)
	}
	a := &Acceptor{fd: lfd}
	switch addr := rawToAddr(rsa, n, "tcp", nil).(type) {
	case *net.UnixAddr:
		a.laddr = addr
	case *net.TCPAddr:
		if !addr.IP.IsUnspecified() {
			a.laddr = addr
		}
		v, err := unix.GetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		a.nodelay = err == nil && v != 0
	}
	return a, nil
}

// SetTimeouts puts on the listening socket the kernel timeouts that
// accepted sockets' first Read and Write arm for deadlines read and write
// from now (0: no deadline), so those calls find them there instead of
// setting them (see direction.fits). Pass the deadlines the caller's
// protocol sets first on every connection; other deadlines still work,
// at a setsockopt each, as without this.
//
// The socket is shared with sibling workers, which set the same values;
// a worker of another configuration (a reload that changed them, while
// the old generation drains) may overwrite them, and then each side's
// first call waits up to the other's timeout before re-arming its own.
// An accept on a listener left blocking waits at most the read timeout
// too (accept(2) honours SO_RCVTIMEO): see SkipModeCheck.
func (a *Acceptor) SetTimeouts(read, write time.Duration) error {
	for _, t := range []struct {
		opt  int
		d    time.Duration
		into *time.Duration
	}{{unix.SO_RCVTIMEO, read, &a.rd}, {unix.SO_SNDTIMEO, write, &a.wr}} {
		d := t.d
		if d <= 0 {
			d = forever
		}
		if err := setTimeout(a.fd, t.opt, d); err != nil {
			return fmt.Errorf("fdconn: listener fd %d: %w", a.fd, err)
		}
		*t.into = d
	}
	return nil
}

// SkipModeCheck lets Accept rely on the finite read timeout SetTimeouts
// put on the listener, instead of an F_GETFL per accept, for the case
// ensureNonblock guards against. The mode is cleared only by a new arbiter
// adopting the socket in a USR2 upgrade, for microseconds; an accept
// landing in them on an empty queue then waits up to that timeout
// (header_timeout), not until the next connection. Fit for a loop whose
// only other duty during that wait is the heartbeat (sync); not for one
// holding other clients' connections (threaded's poller). It has no effect
// without a finite read timeout.
func (a *Acceptor) SkipModeCheck() { a.skipCheck = true }

// Accept accepts one connection from the listening socket lfd and returns it
// in blocking mode, as Acceptor.Accept does, learning nothing from lfd.
func Accept(lfd int) (*Conn, error) {
	return (&Acceptor{fd: lfd}).Accept()
}

// Accept accepts one connection and returns it in blocking mode. When no
// connection is pending it returns an error satisfying errors.Is(err,
// unix.EAGAIN); other accept(2) errors are returned wrapped, with their
// errno reachable through errors.Is.
//
// It does not wait for a connection, whatever mode the listener was left
// in (see ensureNonblock), unless SkipModeCheck bounded that wait instead.
func (a *Acceptor) Accept() (*Conn, error) {
	if !a.skipCheck || a.rd <= 0 || a.rd >= forever {
		if err := ensureNonblock(a.fd); err != nil {
			return nil, err
		}
	}
	for {
		var rsa unix.RawSockaddrAny // decoded by newConn, so it stays on the stack
		fd, n, err := accept4(a.fd, &rsa)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fdconn: accept: %w", os.NewSyscallError("accept4", err))
		}
		c := newConn(fd, &rsa, n)
		c.rd.kernel, c.wr.kernel = a.rd, a.wr
		if c.network == "tcp" && !a.nodelay {
			setNoDelay(fd)
		}
		if a.laddr != nil {
			c.laddrOnce.Do(func() { c.laddr = a.laddr })
		}
		return c, nil
	}
}

// setNoDelay turns Nagle's algorithm off on a TCP socket. Responses often
// leave in two writes (head, body): without TCP_NODELAY, Nagle plus the
// peer's delayed ACK would add tens of milliseconds to each. Go's own TCP
// conns set it too.
func setNoDelay(fd int) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
}

// accept4 accepts one connection from lfd, close-on-exec, and fills rsa
// with its peer's address (the returned length of it). Without
// SOCK_NONBLOCK the new socket is blocking whatever the listener's mode,
// so no fcntl is needed. The listener is non-blocking (ensureNonblock), so
// the call never waits.
func accept4(lfd int, rsa *unix.RawSockaddrAny) (int, uint32, error) {
	n := uint32(unix.SizeofSockaddrAny)
	fd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&n)), unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, 0, e
	}
	return int(fd), n, nil
}

// ensureNonblock sets O_NONBLOCK on the listening socket lfd if it is
// clear. The flag lives on the open file description, which every worker
// of both arbiters shares during a USR2 upgrade, and another process may
// clear it at any time (the new arbiter puts the sockets it adopts in
// blocking mode). A blocking accept4 after a sibling won the race for the
// connection that woke us would stall the caller until the next one
// arrives: a poller holding accepted connections would leave them
// unanswered, through a graceful stop, until their clients gave up. One
// F_GETFL per accept is the price; a clear between it and accept4 remains
// possible but needs an upgrade to land in those microseconds.
func ensureNonblock(lfd int) error {
	fl, err := unix.FcntlInt(uintptr(lfd), unix.F_GETFL, 0)
	if err == nil && fl&unix.O_NONBLOCK == 0 {
		_, err = unix.FcntlInt(uintptr(lfd), unix.F_SETFL, fl|unix.O_NONBLOCK)
	}
	if err != nil {
		return fmt.Errorf("fdconn: accept: listener fd %d: set O_NONBLOCK: %w", lfd, err)
	}
	return nil
}
