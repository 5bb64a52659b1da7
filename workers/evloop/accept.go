package evloop

import (
	"context"
	"errors"
	"net"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/fdconn"
	"github.com/multiserve/multiserve/workers"
)

// The accept loop (package doc, "Listeners"): one goroutine per listener
// gnet's acceptor does not serve. It waits on Go's netpoller and drains
// the accept queue with fdconn's raw accept4 (non-blocking, close-on-exec;
// TCP_NODELAY comes from the listener, where the arbiter set it), and
// posts what it took to the loops as one task per loop, so a burst wakes
// each loop once. On the loop each descriptor becomes a gnet connection
// directly (gnetconn.go): no dup, no Go socket, no waiting goroutine.
// Every accept error is triaged here (workers.ClassifyAccept): none stops
// the worker.

// acceptBatch bounds the connections one drain takes before handing them
// over, so the loops see the first ones while a long queue is drained.
const acceptBatch = 64

// acceptLoop serves one listener.
type acceptLoop struct {
	s     *server
	name  string
	ln    *fdconn.PollListener // a dup of the inherited listener; closing it stops the loop
	laddr net.Addr             // every accepted socket's local address, as gnet's acceptor gives it
}

func newAcceptLoop(s *server, l *workers.Listener) (*acceptLoop, error) {
	ln, err := fdconn.NewPollListener(l.FD)
	if err != nil {
		return nil, err
	}
	return &acceptLoop{s: s, name: l.Name, ln: ln, laddr: localAddr(ln.Addr())}, nil
}

// localAddr is the listener's address as the connections' local address,
// without an IPv6 zone: gnet gives a connection's address zones to a
// buffer pool of its own when the connection closes, so one zone string
// shared by every connection would be handed out while still in use.
// evloop reads no connection's local address. (A peer address's zone is
// the connection's own, and evloop keeps only a copy: hconn.remote.)
func localAddr(a net.Addr) net.Addr {
	if ta, ok := a.(*net.TCPAddr); ok && ta.Zone != "" {
		return &net.TCPAddr{IP: ta.IP, Port: ta.Port}
	}
	return a
}

// run accepts until the listener is closed (stopAcceptLoops).
func (a *acceptLoop) run() {
	defer a.s.regWG.Done()
	var backoff workers.Backoff
	for {
		took, err := a.ln.AcceptFDs(acceptBatch)
		a.s.handOff(a, took)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// EMFILE and friends: back off (do not spin), log at the
			// shared rate; keep accepting whatever the error. One
			// connection's failure (ECONNABORTED...) is not waited on.
			backoff.Sleep(a.s.log, a.name, err)
		}
	}
}

// handOff gives the accepted sockets to the loops round-robin, one task
// per loop. A task the engine no longer takes (it is stopping) closes its
// sockets.
func (s *server) handOff(a *acceptLoop, took []fdconn.Accepted) {
	if len(took) == 0 {
		return
	}
	n := len(s.gloops)
	per := make([][]fdconn.Accepted, n)
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
				if err := gl.enroll(c.FD, a.laddr, c.Peer); err != nil {
					s.log.Debug("evloop: connection not taken by its loop", "listener", a.name, "err", err)
				}
			}
			return nil
		}))
		if err != nil {
			for _, c := range cs {
				_ = unix.Close(c.FD) // never handed to gnet: nothing else refers to it
			}
		}
	}
}
