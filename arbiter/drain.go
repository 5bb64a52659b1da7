package arbiter

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A graceful stop is load-balancer safe. It goes through three phases:
//
//	phaseDelay   shutdown_delay: the workers keep serving while the arbiter
//	             reports not-ready (stats /readyz says "draining"), so a
//	             load balancer stops sending new connections.
//	phaseQueue   new connections are refused at the listening sockets (a
//	             drop-everything socket filter: their SYNs are dropped, so
//	             they never enter the accept queue), while the workers,
//	             still running, accept and serve what is already queued.
//	             The phase ends when every TCP accept queue is empty.
//	phaseRetire  the workers get TERM: they stop accepting, finish
//	             in-flight requests with Connection: close, close idle
//	             kept-alive connections; SIGKILL after graceful_timeout.
//
// Only then does the arbiter close its copies of the sockets. Without the
// queue phase, connections that arrived after the last worker stopped
// accepting sat in the backlog and were reset when the arbiter closed it.
//
// Sockets the arbiter does not own alone are never gated: ones it adopted
// (fd://, systemd socket activation: systemd keeps them and their queue
// for the next instance) and all of them once a USR2 upgrade handed them to
// a new arbiter that is still running.
type stopPhase int

const (
	phaseDelay stopPhase = iota
	phaseQueue
	phaseRetire
)

type stopState struct {
	graceful bool
	phase    stopPhase
	deadline time.Time // end of the current phase; in phaseRetire, the SIGKILL deadline
	queueEnd time.Time // phaseQueue gives up waiting for an empty queue then
	killed   bool
	err      error // what Run returns
}

// queuePoll is how often the accept queues are measured in phaseQueue; the
// phase lasts as long as the workers take to accept what is queued.
const queuePoll = 10 * time.Millisecond

// beginDrain starts a graceful stop with shutdown_delay, if any.
func (a *arbiter) beginDrain(now time.Time) {
	d := a.gen.cfg.ShutdownDelay
	if d > 0 && a.booted && len(a.workers) > 0 {
		a.stop.phase, a.stop.deadline = phaseDelay, now.Add(d)
		a.log.Info(fmt.Sprintf("draining: reporting not ready, serving for shutdown_delay %s", d))
		return
	}
	a.beginQueuePhase(now)
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
		if n := queued(a.lns); n > 0 && now.Before(a.stop.queueEnd) && len(a.workers) > 0 {
			a.stop.deadline = now.Add(queuePoll)
			return
		}
		a.retireGracefully(now)
	}
}

func (a *arbiter) retireGracefully(now time.Time) {
	a.stop.deadline = now.Add(a.gen.cfg.GracefulTimeout)
	a.retireAll(syscall.SIGTERM)
}

// dropAll is a classic BPF program that accepts no packet.
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// gate makes a TCP listener drop every new connection attempt from now on;
// connections already queued (and their packets: each has its own socket)
// are unaffected. Unix sockets and adopted sockets are left alone.
func (l *listener) gate() error {
	if l.network != "tcp" || l.adopted {
		return nil
	}
	prog := unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]}
	if err := unix.SetsockoptSockFprog(int(l.file.Fd()), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("arbiter: attach filter: %w", err)
	}
	return nil
}

// queued is the number of connections waiting in the TCP listeners'
// accept queues (TCP_INFO's unacked is the accept queue of a listener).
func queued(lns []*listener) int {
	n := 0
	for _, ln := range lns {
		if ln.network != "tcp" {
			continue
		}
		info, err := unix.GetsockoptTCPInfo(int(ln.file.Fd()), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			n += int(info.Unacked)
		}
	}
	return n
}

// handedOver: a USR2 child arbiter is running on the same sockets.
func (a *arbiter) handedOver() bool {
	return a.upgrade != nil && a.upgrade.pid > 0
}
