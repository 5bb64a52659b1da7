package evloop

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/socket"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/workers"
)

// The accept loop (package doc, "Listeners"): one goroutine per listener
// gnet's acceptor does not serve. It waits on Go's netpoller, drains the
// accept queue with raw accept4 (non-blocking, close-on-exec; TCP_NODELAY
// comes from the listener, where the arbiter set it), and posts what it
// took to the loops as one task per loop, so a burst wakes each loop once.
// On the loop each descriptor becomes a gnet connection directly
// (gnetconn.go): no dup, no Go socket, no waiting goroutine. Every accept
// error is triaged here (workers.ClassifyAccept): none stops the worker.

// acceptBatch bounds the connections one drain takes before handing them
// over, so the loops see the first ones while a long queue is drained.
const acceptBatch = 64

// acceptLoop serves one listener.
type acceptLoop struct {
	s     *server
	name  string
	proto string   // gnet's name for the connections: "tcp" or "unix"
	laddr net.Addr // every accepted socket's local address, as gnet's acceptor gives it
	f     *os.File // a dup of the inherited listener, on Go's netpoller; closing it stops the loop
}

// newAcceptLoop dups l's descriptor (closing the dup leaves l.FD open) and
// puts it on Go's netpoller, which needs it non-blocking.
func newAcceptLoop(s *server, l *workers.Listener) (*acceptLoop, error) {
	fd, err := unix.FcntlInt(uintptr(l.FD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("set O_NONBLOCK: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	proto := "tcp"
	if l.Network == "unix" {
		proto = "unix"
	}
	return &acceptLoop{s: s, name: l.Name, proto: proto, laddr: localAddr(sa),
		f: os.NewFile(uintptr(fd), l.Name)}, nil
}

// localAddr is the listener's address as the connections' local address,
// without an IPv6 zone: gnet returns a connection's address zones to a
// buffer pool of its own when the connection closes, so one zone string
// shared by every connection would be handed out again while in use.
// evloop reads no connection's local address.
func localAddr(sa unix.Sockaddr) net.Addr {
	a := socket.SockaddrToTCPOrUnixAddr(sa)
	if ta, ok := a.(*net.TCPAddr); ok && ta.Zone != "" {
		return &net.TCPAddr{IP: ta.IP, Port: ta.Port}
	}
	return a
}

// run accepts until the listener's dup is closed (stopAcceptLoops).
func (a *acceptLoop) run() {
	defer a.s.regWG.Done()
	rc, err := a.f.SyscallConn()
	if err != nil {
		a.s.log.Error("evloop: listener unusable", "listener", a.name, "err", err)
		return
	}
	var backoff workers.Backoff
	for {
		var took []accepted
		var aerr error
		err := rc.Read(func(fd uintptr) bool {
			took, aerr = drainAccept(int(fd))
			return len(took) > 0 || aerr != nil // else wait until readable
		})
		if err != nil {
			closeAccepted(took)
			return // closed: the worker stops accepting
		}
		a.s.handOff(a, took)
		if aerr != nil {
			// EMFILE and friends: back off (do not spin), log at the
			// shared rate; keep accepting whatever the error.
			backoff.Sleep(a.s.log, a.name, aerr)
		}
	}
}

// accepted is a socket taken from the accept queue, not yet gnet's.
type accepted struct {
	fd int
	sa unix.Sockaddr
}

// drainAccept accepts from lfd until its queue is empty (nil error), up
// to acceptBatch, or until an error that is not one connection's
// (returned with what was taken before it).
func drainAccept(lfd int) ([]accepted, error) {
	var took []accepted
	for len(took) < acceptBatch {
		fd, sa, err := accept4(lfd)
		if err == nil {
			took = append(took, accepted{fd, sa})
			continue
		}
		switch workers.ClassifyAccept(err) {
		case workers.AcceptDrained:
			return took, nil
		case workers.AcceptRetry:
			continue
		}
		return took, os.NewSyscallError("accept4", err)
	}
	return took, nil
}

// accept4 accepts one connection from lfd, non-blocking and
// close-on-exec. Unlike x/sys/unix's Accept4 it decodes the peer address
// itself: Accept4 asks the kernel for the socket's protocol (getsockopt
// SO_PROTOCOL) with every IPv4 or IPv6 address, to tell L2TP sockets
// apart, which an accepted stream socket never is.
func accept4(lfd int) (int, unix.Sockaddr, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	fd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)),
		uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, nil, e
	}
	return int(fd), peerSockaddr(&rsa, n), nil
}

// peerSockaddr decodes the first n bytes of rsa as the kernel filled them.
func peerSockaddr(rsa *unix.RawSockaddrAny, n uint32) unix.Sockaddr {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return &unix.SockaddrInet4{Port: netPort(in.Port), Addr: in.Addr}
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return &unix.SockaddrInet6{Port: netPort(in.Port), ZoneId: in.Scope_id, Addr: in.Addr}
	}
	// A unix-domain peer: usually unnamed; a named one keeps its path.
	su := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
	off := uint32(unsafe.Offsetof(su.Path))
	path := unsafe.Slice((*byte)(unsafe.Pointer(&su.Path[0])), min(int(max(n, off)-off), len(su.Path)))
	if i := bytes.IndexByte(path, 0); i > 0 {
		path = path[:i]
	}
	return &unix.SockaddrUnix{Name: string(path)}
}

// netPort decodes a port in network byte order as the raw struct holds it.
func netPort(p uint16) int {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return int(b[0])<<8 | int(b[1])
}

// handOff gives the accepted sockets to the loops round-robin, one task
// per loop. A task the engine no longer takes (it is stopping) closes its
// sockets.
func (s *server) handOff(a *acceptLoop, took []accepted) {
	n := len(s.gloops)
	per := make([][]accepted, n)
	for _, c := range took {
		i := int(s.nextLoop.Add(1) % uint64(n))
		per[i] = append(per[i], c)
	}
	for i, cs := range per {
		if len(cs) == 0 {
			continue
		}
		gl := s.gloops[i]
		err := gl.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			for _, c := range cs {
				if err := gl.enroll(a.proto, c.fd, c.sa, a.laddr); err != nil {
					s.log.Debug("evloop: connection not taken by its loop", "listener", a.name, "err", err)
				}
			}
			return nil
		}))
		if err != nil {
			closeAccepted(cs)
		}
	}
}

func closeAccepted(cs []accepted) {
	for _, c := range cs {
		_ = unix.Close(c.fd) // never handed to gnet: nothing else refers to it
	}
}
