package workers

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Listener is one inherited listening socket. FD is the raw descriptor the
// worker process inherited: classes that use blocking syscalls (sync,
// threaded) or an event loop (evloop) use it directly; classes that use Go's
// netpoller call NetListener.
//
// The open file description is shared with the arbiter and every sibling
// worker, so a class must not rely on its blocking mode: treat it as
// non-blocking (accept may return EAGAIN when a sibling won the race).
type Listener struct {
	FD      int    // inherited descriptor
	Name    string // the --bind entry it came from, e.g. "127.0.0.1:8000" or "unix:/tmp/s"
	Network string // "tcp" or "unix"
}

// NetListener returns a net.Listener on a dup of the inherited descriptor, so
// closing it leaves FD open.
func (l *Listener) NetListener() (net.Listener, error) {
	fd, err := unix.FcntlInt(uintptr(l.FD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("workers: dup listener %s: %w", l.Name, err)
	}
	f := os.NewFile(uintptr(fd), l.Name)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("workers: listener %s: %w", l.Name, err)
	}
	return ln, nil
}

// NetListeners returns NetListener for every listener, in order; on an
// error it closes those it made.
func NetListeners(ls []*Listener) ([]net.Listener, error) {
	out := make([]net.Listener, 0, len(ls))
	for _, l := range ls {
		ln, err := l.NetListener()
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, ln)
	}
	return out, nil
}
