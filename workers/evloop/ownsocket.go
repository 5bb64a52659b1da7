package evloop

import (
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

// reuse_port mode: the arbiter gives each worker its own SO_REUSEPORT
// listening socket per TCP bind (arbiter/reuseport.go). It is swapped into
// gnet's slot like a shared socket; only the stop differs, because closing
// it is what removes it from the kernel's group, and whatever is still in
// its own accept queue then is reset (unless net.ipv4.tcp_migrate_req=1).

// ownSocket reports whether l is this worker's own socket rather than one
// shared with the arbiter and siblings: reuse_port is on, l is TCP, it was
// not adopted (fd://, systemd: sockets stay shared in every mode) and it
// has SO_REUSEPORT set, which the arbiter never sets on a shared socket.
func ownSocket(cfg *config.Config, l *workers.Listener) bool {
	if !cfg.ReusePort || l.Network != "tcp" ||
		strings.HasPrefix(l.Name, "fd://") || strings.HasPrefix(l.Name, "systemd:") {
		return false
	}
	v, err := unix.GetsockoptInt(l.FD, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	return err == nil && v == 1
}

func (s *server) ownCount() int {
	n := 0
	for _, o := range s.own {
		if o {
			n++
		}
	}
	return n
}

// ownDrainMax bounds how long a stopping worker waits for its own accept
// queues to empty; gnet (or the Register accept loop) takes a queued
// connection within a loop iteration, so this is reached only when the
// worker cannot accept (out of descriptors).
const ownDrainMax = time.Second

// ownDrainPoll is how often the queue length is read while draining.
const ownDrainPoll = 2 * time.Millisecond

// ownDrainQuiet is how long the accept queues must stay empty before the
// sockets close. Linux exposes the accept queue's length, not the SYN
// queue's, so this is what covers handshakes still under way: a round trip
// on loopback or a LAN, and most behind a load balancer. It delays only a
// stopping worker's exit, in reuse_port mode.
const ownDrainQuiet = 100 * time.Millisecond

// drainOwn lets the worker accept what is already queued on its own
// sockets before they are closed: each gets a socket filter that drops new
// clients' SYNs (unanswered, a SYN is retransmitted, and by then the socket
// has left the group and the kernel hashes it to a sibling: a delay of
// about a second instead of a reset), then the worker keeps accepting
// until the accept queues are empty, bounded by the graceful deadline and
// ownDrainMax. The handshakes under way finish (their final ACK passes
// the filter) and join the queue; the wait covers them too
// (ownDrainQuiet), except on a link whose round trip is longer.
func (s *server) drainOwn(deadline time.Time) {
	var fds []int
	for i, l := range s.env.Listeners {
		if !s.own[i] {
			continue
		}
		if err := gate(l.FD); err != nil {
			s.log.Warn("evloop: cannot gate own reuse_port socket before closing it; new connections may be reset", "listener", l.Name, "err", err)
		}
		fds = append(fds, l.FD)
	}
	if len(fds) == 0 {
		return
	}
	end := time.Now().Add(ownDrainMax)
	if deadline.Before(end) {
		end = deadline
	}
	// Empty for ownDrainQuiet: a handshake under way at the gate (a round
	// trip) has reached the queue by then.
	var emptySince time.Time
	for now := time.Now(); now.Before(end); now = time.Now() {
		if queued(fds) > 0 {
			emptySince = time.Time{}
		} else if emptySince.IsZero() {
			emptySince = now
		} else if now.Sub(emptySince) >= ownDrainQuiet {
			break
		}
		time.Sleep(ownDrainPoll)
	}
	if n := queued(fds); n > 0 {
		s.log.Warn("evloop: closing own reuse_port socket with connections still queued", "queued", n)
	}
}

// closeOwn closes the inherited fds of the worker's own sockets; with
// their gnet slots parked, that closes the sockets and they leave the
// group.
func (s *server) closeOwn() {
	for i, l := range s.env.Listeners {
		if s.own[i] {
			if err := unix.Close(l.FD); err != nil {
				s.log.Error("evloop: close own reuse_port socket", "listener", l.Name, "err", err)
			}
		}
	}
}

// dropSYN is a classic BPF socket filter that drops a packet opening a
// connection (SYN without ACK) and passes every other one, the final ACK
// of a handshake already under way included. A TCP socket filter sees the
// packet from its TCP header on: byte 13 holds the flags.
var dropSYN = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},
	{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12}, // SYN|ACK
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jt: 0, Jf: 1},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}

// gate makes listening socket fd ignore every new connection attempt;
// connections already queued, or whose handshake is under way, still get
// into its accept queue.
func gate(fd int) error {
	prog := unix.SockFprog{Len: uint16(len(dropSYN)), Filter: &dropSYN[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog)
}

// queued is the number of connections waiting in the listening sockets'
// accept queues (TCP_INFO's unacked is a listener's accept queue length).
func queued(fds []int) int {
	n := 0
	for _, fd := range fds {
		if info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n += int(info.Unacked)
		}
	}
	return n
}
