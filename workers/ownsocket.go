package workers

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/sockgate"
)

// reuse_port mode: the arbiter gives each worker its own SO_REUSEPORT
// listening socket per TCP bind (arbiter/reuseport.go). Closing it is how
// the worker leaves the kernel's group; whatever is still in its accept
// queue then is reset (unless net.ipv4.tcp_migrate_req=1), and while it
// stays open after the class stopped accepting, every connection hashed
// to it waits there to be reset at exit. So the runtime, for every class,
// on a graceful stop (TERM, the arbiter gone, max_requests):
//
//  1. gates the own sockets (sockgate.DropSYN: a new client's SYN is
//     dropped, retransmitted about a second later and by then hashed to
//     a sibling; handshakes under way still join the queue),
//  2. waits, while the class still accepts, until their accept queues
//     stayed empty for sockgate.Quiet (bounded by ownDrainMax and the
//     graceful deadline),
//  3. cancels the class's context (the class stops accepting), and
//  4. closes the inherited fds once the class no longer uses them: when
//     it calls Env.ListenersDone, or else when Serve returned.
//
// Shared sockets (the default mode, unix and adopted ones) are never
// touched: the arbiter gates those (arbiter/drain.go).

// ownDrainMax bounds how long a stopping worker waits for its own accept
// queues to empty; a class takes a queued connection within a loop
// iteration, so this is reached only when it cannot accept (out of
// descriptors, or every thread busy with slow requests).
var ownDrainMax = time.Second // a var for tests

// OwnSocket reports whether l is this worker's own socket rather than one
// shared with the arbiter and siblings: reuse_port is on, l is TCP, it was
// not adopted (fd://, systemd: those stay shared in every mode) and it has
// SO_REUSEPORT set, which the arbiter never sets on a shared socket.
func OwnSocket(cfg *config.Config, l *Listener) bool {
	if !cfg.ReusePort || l.Network != "tcp" ||
		strings.HasPrefix(l.Name, "fd://") || strings.HasPrefix(l.Name, "systemd:") {
		return false
	}
	return sockgate.ReusePort(l.FD)
}

// ownSockets are a worker's own reuse_port sockets. A nil *ownSockets has
// none.
type ownSockets struct {
	lns       []*Listener
	log       *slog.Logger
	closeOnce sync.Once
}

func newOwnSockets(cfg *config.Config, lns []*Listener, log *slog.Logger) *ownSockets {
	o := &ownSockets{log: log}
	for _, l := range lns {
		if OwnSocket(cfg, l) {
			o.lns = append(o.lns, l)
		}
	}
	return o
}

func (o *ownSockets) empty() bool { return o == nil || len(o.lns) == 0 }

// gate closes the own sockets to new connections (step 1 above) and
// returns their fds, for wait.
func (o *ownSockets) gate() []int {
	if o.empty() {
		return nil
	}
	fds := make([]int, 0, len(o.lns))
	for _, l := range o.lns {
		if err := sockgate.DropSYN(l.FD); err != nil {
			o.log.Warn("workers: cannot gate own reuse_port socket before closing it; new connections may be reset",
				"listener", l.Name, "err", err)
		}
		fds = append(fds, l.FD)
	}
	return fds
}

// drainEnd is when a drain starting now gives up: ownDrainMax from now,
// or the graceful deadline if that is sooner.
func drainEnd(deadline time.Time) time.Time {
	if end := time.Now().Add(ownDrainMax); end.Before(deadline) {
		return end
	}
	return deadline
}

// wait waits until the class, still accepting, has emptied the gated
// queues of fds (step 2 above), until end. abort ends the wait early (the
// class returned: nobody accepts any more).
func (o *ownSockets) wait(fds []int, end time.Time, abort <-chan struct{}) {
	if n := sockgate.WaitEmpty(fds, end, abort); n > 0 {
		o.log.Warn(fmt.Sprintf("workers: own reuse_port sockets still hold %d queued connections; they will be reset", n))
	}
}

// close closes the inherited fds of the own sockets, once, so they leave
// the group (step 4). The caller guarantees the class no longer uses them.
func (o *ownSockets) close() {
	if o.empty() {
		return
	}
	o.closeOnce.Do(func() {
		for _, l := range o.lns {
			if err := unix.Close(l.FD); err != nil {
				o.log.Error("workers: close own reuse_port socket", "listener", l.Name, "err", err)
			}
		}
	})
}
