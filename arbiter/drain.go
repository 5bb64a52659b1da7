package arbiter

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/internal/sockgate"
)

// A graceful stop is load-balancer safe. It goes through three phases:
//
//	phaseDelay   shutdown_delay: the workers keep serving while the arbiter
//	             reports not-ready (stats /readyz says "draining"), so a
//	             load balancer stops sending new connections.
//	phaseQueue   new connections are refused at the listening sockets, while
//	             the workers, still running, accept and serve what is
//	             already queued. TCP: a socket filter that drops SYNs only
//	             (sockgate.DropSYN): a new client's SYN goes unanswered, so
//	             it never enters the accept queue, while the final ACK of a
//	             handshake already under way passes and that connection
//	             joins the queue and is served. (A drop-everything filter,
//	             used before, dropped that ACK too: the client believed it
//	             was connected, sent its request, and was lost.) Unix: the
//	             socket's path is unlinked (a connect fails at once with
//	             ENOENT, before anything was sent). The phase ends when
//	             every gated accept queue has stayed empty for
//	             sockgate.Quiet (a round trip: the handshakes under way at
//	             the gate have joined the queue by then), or at
//	             graceful_timeout/2.
//	phaseRetire  the workers get TERM: they stop accepting, finish
//	             in-flight requests with Connection: close, close idle
//	             kept-alive connections; SIGKILL after graceful_timeout.
//
// From the start of the stop (phaseDelay, or phaseQueue without a delay)
// every ready worker is told with proc.SignalDrain: each response from
// then on carries Connection: close and closes its connection, so busy
// kept-alive clients move to new connections while the server still
// serves, and at phaseRetire almost only truly idle connections are left
// for the workers to close.
//
// Only then does the arbiter close its copies of the sockets. Without the
// queue phase, connections that arrived after the last worker stopped
// accepting sat in the backlog and were reset when the arbiter closed it.
//
// In reuse_port mode the TCP sockets here are only port reservations (no
// queue); each worker gates and drains its own socket itself when it gets
// TERM, before it stops accepting (workers/ownsocket.go, same filter).
//
// Sockets the arbiter does not own alone are never gated: ones it adopted
// (fd://, systemd socket activation: systemd keeps them and their queue
// for the next instance) and all of them while another arbiter serves on
// them (a USR2 child it started, or the old arbiter that started it).
type stopPhase int

const (
	phaseDelay stopPhase = iota
	phaseQueue
	phaseRetire
)

type stopState struct {
	graceful bool
	phase    stopPhase
	deadline time.Time       // end of the current phase; in phaseRetire, the SIGKILL deadline
	queueEnd time.Time       // phaseQueue gives up waiting for an empty queue then
	settle   sockgate.Settle // phaseQueue: have the gated queues stayed empty for sockgate.Quiet
	killed   bool
	err      error // what Run returns
}

// queuePoll is how often the accept queues are measured in phaseQueue; the
// phase lasts as long as the workers take to accept what is queued.
const queuePoll = 10 * time.Millisecond

// beginDrain starts a graceful stop with shutdown_delay, if any.
func (a *arbiter) beginDrain(now time.Time) {
	for _, w := range a.workers {
		a.tellDraining(w)
	}
	d := a.gen.cfg.ShutdownDelay
	if d > 0 && a.booted && len(a.workers) > 0 {
		a.stop.phase, a.stop.deadline = phaseDelay, now.Add(d)
		a.log.Info(fmt.Sprintf("draining: reporting not ready, serving for shutdown_delay %s", d))
		return
	}
	a.beginQueuePhase(now)
}

// tellDraining sends proc.SignalDrain to a ready worker while a graceful
// stop has not retired it yet; a worker that becomes ready later is told
// then (until it reported ready, its handler may not be installed, and
// USR2's default action is to exit).
func (a *arbiter) tellDraining(w *worker) {
	if w.ready && !w.retiring && a.stop != nil && a.stop.graceful && a.stop.phase != phaseRetire {
		a.signal(w, proc.SignalDrain)
	}
}

// beginQueuePhase closes the gates and lets the workers empty the queues.
func (a *arbiter) beginQueuePhase(now time.Time) {
	if !a.booted || len(a.workers) == 0 || a.handedOver() {
		a.retireGracefully(now)
		return
	}
	a.stop.phase = phaseQueue
	a.stop.deadline = now
	a.stop.queueEnd = now.Add(a.gen.cfg.GracefulTimeout / 2)
	a.log.Info("draining: refusing new connections, serving the accept queues")
	for _, ln := range a.lns {
		if err := ln.gate(); err != nil {
			a.log.Warn("cannot refuse new connections before the stop", "bind", ln.name, "err", err)
		}
	}
}

// advanceDrain moves a graceful stop to its next phase when it is due.
func (a *arbiter) advanceDrain(now time.Time) {
	switch a.stop.phase {
	case phaseDelay:
		if now.Before(a.stop.deadline) {
			return
		}
		a.beginQueuePhase(now)
	case phaseQueue:
		if !a.queuesSettled(now) && now.Before(a.stop.queueEnd) && len(a.workers) > 0 {
			a.stop.deadline = now.Add(queuePoll)
			return
		}
		a.retireGracefully(now)
	}
}

// queuesSettled reports whether the gated accept queues have been empty
// for sockgate.Quiet.
func (a *arbiter) queuesSettled(now time.Time) bool {
	return a.stop.settle.Observe(now, queued(a.lns))
}

func (a *arbiter) retireGracefully(now time.Time) {
	a.stop.deadline = now.Add(a.gen.cfg.GracefulTimeout)
	a.retireAll(syscall.SIGTERM)
}

// gate makes a listener refuse every new connection from now on;
// connections already queued, or (TCP) whose handshake is under way, are
// unaffected. A TCP listener drops the SYNs (sockgate.DropSYN, see the
// phaseQueue note above for why only those). A unix listener's path is
// unlinked (only one this arbiter bound or was handed whole: unlink is
// set), so cleanup has nothing left to remove. Adopted sockets are left
// alone.
func (l *listener) gate() error {
	switch {
	case l.adopted:
		return nil
	case l.network == "unix" && l.unlink != "":
		path := l.unlink
		l.unlink, l.gated = "", true
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("arbiter: unlink %s: %w", path, err)
		}
		return nil
	case l.network != "tcp":
		return nil
	}
	if err := sockgate.DropSYN(int(l.file.Fd())); err != nil {
		return fmt.Errorf("arbiter: gate %s: %w", l.name, err)
	}
	l.gated = true
	return nil
}

// queued is the number of connections waiting in the accept queues: the
// TCP listeners' (sockgate.QueueLen) and the gated unix ones' (counted as
// 1 while not empty: sockgate.Pending).
func queued(lns []*listener) int {
	n := 0
	for _, ln := range lns {
		switch {
		case ln.network == "tcp":
			q, _ := sockgate.QueueLen(int(ln.file.Fd()))
			n += q
		case ln.gated && sockgate.Pending(int(ln.file.Fd())):
			n++
		}
	}
	return n
}

// handedOver: another arbiter serves on the same sockets, so this one must
// neither gate nor unlink them: a USR2 child arbiter it started, or, in a
// USR2 child, the old arbiter that started it while it still runs (a
// roll-back: the new one is stopped, the old one serves on). A child's
// parent is that old arbiter until it exits (the child is then reparented).
func (a *arbiter) handedOver() bool {
	return a.upgrade != nil && a.upgrade.pid > 0 ||
		a.upgradeParent > 0 && os.Getppid() == a.upgradeParent
}
