package arbiter

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
)

// reuse_port mode. Each worker gets its own listening socket for every TCP
// bind, in one SO_REUSEPORT group per address, so the kernel spreads new
// connections evenly across workers (no thundering herd, no busiest-worker
// bias). The arbiter holds no listening socket in the group: a connection
// must never hash to a socket nobody accepts on. It keeps only a bound,
// non-listening socket that reserves the port (and resolves port 0). The
// per-worker sockets are made by the arbiter at spawn and handed over; the
// arbiter closes its copy at once, so the socket lives exactly as long as
// its worker (which closes it when it stops accepting). Unix and adopted
// (fd://, systemd) sockets stay shared.
//
// The arbiter, not the worker, makes them, for every class: a worker
// binding its own would get another ephemeral port for port 0, could not
// bind a privileged port once it runs as user=, and the kernel admits a
// socket to a SO_REUSEPORT group only from the uid that made the group
// (the reservation, root's). That is why the evloop class does not let
// gnet bind its own SO_REUSEPORT listeners in this mode (for gnet's
// native accept path): it gets its socket here and
// swaps it into gnet's listener slot as it does a shared socket in the
// default mode, so gnet still accepts from it directly, at the same cost.
//
// How a worker leaves the group on a graceful stop, every class, is the
// worker runtime's (workers/ownsocket.go).
// docs/deploy.md says when to prefer this mode.

// reservePorts turns the TCP listeners into port reservations.
func (a *arbiter) reservePorts(cfg *config.Config) error {
	if !cfg.ReusePort {
		return nil
	}
	for _, ln := range a.lns {
		if err := reservePort(ln); err != nil {
			return err
		}
	}
	return nil
}

// reservePort turns one TCP listener into a port reservation; unix and
// adopted sockets stay shared.
func reservePort(ln *listener) error {
	if ln.network != "tcp" || ln.adopted {
		return nil
	}
	name := ln.workerName()
	ln.file.Close()
	fd, err := reusePortSocket(name)
	if err != nil {
		return err
	}
	ln.file, ln.perWorker = os.NewFile(uintptr(fd), name), true
	return nil
}

// reusePortSocket binds a SO_REUSEPORT socket to name (HOST:PORT, port
// resolved) without listening.
func reusePortSocket(name string) (int, error) {
	sa, family, err := resolveTCP(name)
	if err != nil {
		return -1, fmt.Errorf("arbiter: reuse_port %s: %w", name, err)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("arbiter: reuse_port %s: socket: %w", name, err)
	}
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("arbiter: reuse_port %s: setsockopt: %w", name, err)
		}
	}
	if err := setInheritedOptions(fd); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("arbiter: reuse_port %s: %w", name, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("arbiter: reuse_port %s: bind: %w", name, err)
	}
	return fd, nil
}

// workerFile is the socket a new worker of generation cfg gets for ln; own
// is true when it was made for that worker (the caller closes it once the
// worker started).
func workerFile(ln *listener, cfg *config.Config) (f *os.File, own bool, err error) {
	if !ln.perWorker {
		return ln.file, false, nil
	}
	name := ln.workerName()
	fd, err := reusePortSocket(name)
	if err != nil {
		return nil, false, err
	}
	backlog := cfg.Backlog
	if backlog <= 0 {
		backlog = unix.SOMAXCONN
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return nil, false, fmt.Errorf("arbiter: reuse_port %s: listen: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), true, nil
}
