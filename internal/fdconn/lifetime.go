package fdconn

import (
	"errors"
	"net"
	"os"
	stdsync "sync"

	"golang.org/x/sys/unix"
)

// lifetime guards a connection's descriptor: calls in progress on it hold
// a reference, so that Close never lets the number be reused under them
// (a new connection accepted meanwhile would get it); the last reference
// closes a descriptor Close found in use. Conn and PollConn embed it.
type lifetime struct {
	fd      int
	mu      stdsync.Mutex // guards the fields below, and the owner's that say so
	f       *os.File      // PollConn: the netpoller's file once joined, owning fd
	refs    int
	closing bool
	closed  bool
}

// acquire takes a reference; false once Close was called.
func (l *lifetime) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acquireLocked()
}

func (l *lifetime) acquireLocked() bool {
	if l.closing {
		return false
	}
	l.refs++
	return true
}

func (l *lifetime) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked()
}

func (l *lifetime) releaseLocked() {
	l.refs--
	if l.refs == 0 && l.closing && !l.closed {
		_ = l.closeLocked()
	}
}

// close closes the descriptor now if no call holds it; otherwise it calls
// wake (under mu) to end the calls in progress, and the last release
// closes. Only the first call does anything.
func (l *lifetime) close(wake func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return nil
	}
	l.closing = true
	if l.refs > 0 {
		wake()
		return nil
	}
	return l.closeLocked()
}

func (l *lifetime) closeLocked() error {
	l.closed = true
	if l.f != nil {
		return l.f.Close()
	}
	return os.NewSyscallError("close", unix.Close(l.fd))
}

// closedOr reports net.ErrClosed for a call that failed because Close
// ended it (a joined file reports os.ErrClosed), and err otherwise.
func (l *lifetime) closedOr(err error) error {
	if err == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing || errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}
