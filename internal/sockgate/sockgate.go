// Package sockgate closes a listening socket to new connections while it
// keeps what is already on its way in, and measures what is left in its
// accept queue, so that the socket is closed only once nothing queued on
// it would be reset. Two users: the arbiter's queue phase, on the shared
// sockets, before the workers get TERM (arbiter/drain.go), and the worker
// runtime, on a worker's own reuse_port sockets, before the class stops
// accepting (workers/ownsocket.go).
package sockgate

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// dropSYN is a classic BPF socket filter that drops a packet opening a
// connection (SYN without ACK) and passes every other one. A TCP socket
// filter sees the packet from its TCP header on: byte 13 holds the flags.
//
// Why not drop everything: a listening socket also receives the final ACK
// of a handshake under way (SYN received, SYN-ACK sent); dropped, the
// connection never reaches the accept queue while the client believes it
// is established and sends its request into the void, until it times out.
// Passing it lets that connection join the queue, where the worker still
// accepts it. A dropped SYN costs the client nothing but a retransmission
// (about a second later), by when the socket is closed and the kernel
// sends it elsewhere (a sibling in the SO_REUSEPORT group) or refuses it.
var dropSYN = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},
	{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12}, // SYN|ACK
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jt: 0, Jf: 1},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
}

// DropSYN makes TCP listening socket fd ignore every new connection
// attempt from now on; connections already queued, and those whose
// handshake is under way, still get into its accept queue. The filter is
// attached to the socket, so every process sharing it is gated.
func DropSYN(fd int) error {
	prog := unix.SockFprog{Len: uint16(len(dropSYN)), Filter: &dropSYN[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("sockgate: attach SYN filter to fd %d: %w", fd, err)
	}
	return nil
}

// QueueLen is the number of connections waiting in the accept queue of TCP
// listening socket fd (TCP_INFO's unacked is a listener's accept queue
// length). Handshakes still under way (the SYN queue) are not counted:
// Linux does not expose that; see Quiet.
func QueueLen(fd int) (int, error) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, fmt.Errorf("sockgate: TCP_INFO of fd %d: %w", fd, err)
	}
	return int(info.Unacked), nil
}

// Pending reports whether listening socket fd, of any family (unix too,
// which has no TCP_INFO), has a connection waiting to be accepted, without
// waiting: a listening socket polls readable iff its accept queue is not
// empty.
func Pending(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0 && pfd[0].Revents&unix.POLLIN != 0
}

// ReusePort reports whether socket fd has SO_REUSEPORT set.
func ReusePort(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT)
	return err == nil && v == 1
}

// Quiet is how long gated accept queues must stay empty before their
// sockets may close. Since the SYN queue is not visible, this is what
// covers the handshakes under way at the gate: their final ACK arrives
// within a round trip (loopback, a LAN, most load balancers) and puts
// them in the accept queue, where they are counted again.
const Quiet = 100 * time.Millisecond

// pollEvery is how often WaitEmpty reads the queue lengths.
const pollEvery = 2 * time.Millisecond

// WaitEmpty waits, while someone else accepts, until the accept queues of
// the gated TCP listening sockets fds have stayed empty for Quiet, until
// end, or until abort is closed, and returns how many connections are
// still queued then.
func WaitEmpty(fds []int, end time.Time, abort <-chan struct{}) int {
	var s Settle
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for now := time.Now(); now.Before(end); now = time.Now() {
		if s.Observe(now, total(fds)) {
			return 0
		}
		select {
		case <-abort:
			return total(fds)
		case <-t.C:
		}
	}
	return total(fds)
}

// Settle tells from successive readings of accept queue lengths when the
// queues have stayed empty for Quiet; for a caller that polls on its own
// schedule (the arbiter's event loop) as WaitEmpty does. The zero value
// has seen nothing yet.
type Settle struct{ emptySince time.Time }

// Observe records that queued connections were waiting at now and reports
// whether the queues have been empty for Quiet since.
func (s *Settle) Observe(now time.Time, queued int) bool {
	switch {
	case queued > 0:
		s.emptySince = time.Time{}
		return false
	case s.emptySince.IsZero():
		s.emptySince = now
	}
	return now.Sub(s.emptySince) >= Quiet
}

// total is the sum of the queue lengths of fds; an unreadable one counts 0.
func total(fds []int) int {
	n := 0
	for _, fd := range fds {
		q, _ := QueueLen(fd)
		n += q
	}
	return n
}
