package evloop

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// The fd swap (see the package doc for why): gnet is started on dummy
// loopback listeners nobody connects to, and in OnBoot — which gnet v2.9.7
// calls after it has bound its listeners and before it adds them to epoll —
// the inherited listening socket is dup3'ed onto each dummy's fd number, so
// gnet's own accept loop accepts from the shared socket at native cost.

// dummyAddr is the gnet address of the i-th dummy listener. Each dummy gets
// its own loopback address (all of 127/8 is local on Linux) because
// Engine.DupListener finds a listener by the address string it was given,
// and several "127.0.0.1:0" would be indistinguishable.
func dummyAddr(i int) string {
	return "127.0.0." + strconv.Itoa(i+1) + ":0"
}

// maxListeners bounds the number of shared sockets by the dummy addresses
// 127.0.0.1 .. 127.0.0.250.
const maxListeners = 250

// locateSlot returns the fd number gnet uses for the listener it bound on
// addr. gnet exposes only a dup of it, so the original is found by matching
// the dup's inode among this process's open fds.
func locateSlot(eng gnet.Engine, addr string) (int, error) {
	dup, err := eng.DupListener("tcp", addr)
	if err != nil {
		return -1, fmt.Errorf("evloop: dup gnet listener %s: %w", addr, err)
	}
	defer unix.Close(dup)
	var want unix.Stat_t
	if err := unix.Fstat(dup, &want); err != nil {
		return -1, fmt.Errorf("evloop: fstat gnet listener dup: %w", err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, fmt.Errorf("evloop: list fds: %w", err)
	}
	slot := -1
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == dup {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Dev != want.Dev || st.Ino != want.Ino {
			continue
		}
		if slot >= 0 {
			return -1, fmt.Errorf("evloop: gnet listener %s: two fds (%d, %d) share its socket", addr, slot, fd)
		}
		slot = fd
	}
	if slot < 0 {
		return -1, fmt.Errorf("evloop: gnet listener %s: fd not found", addr)
	}
	return slot, nil
}

// swapInto makes slot (a gnet listener fd) refer to the inherited listening
// socket, then checks that it did: getsockname of the slot must equal the
// inherited socket's and the slot must be listening. On a failed check the
// caller seals the slot and falls back to the accept loop.
func swapInto(slot, inherited int) error {
	want, err := sockName(inherited)
	if err != nil {
		return fmt.Errorf("evloop: inherited fd %d: %w", inherited, err)
	}
	// gnet's acceptor drains the queue until EAGAIN; the flag lives on the
	// shared file description, which every class must treat as
	// non-blocking anyway (see workers.Listener).
	if err := unix.SetNonblock(inherited, true); err != nil {
		return fmt.Errorf("evloop: set non-blocking on fd %d: %w", inherited, err)
	}
	if err := unix.Dup3(inherited, slot, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("evloop: dup3 %d onto %d: %w", inherited, slot, err)
	}
	return selfTest(slot, want)
}

// selfTest is the start-up check the swap depends on.
func selfTest(slot int, want string) error {
	got, err := sockName(slot)
	if err != nil {
		return fmt.Errorf("evloop: self-test: swapped fd %d: %w", slot, err)
	}
	if got != want {
		return fmt.Errorf("evloop: self-test: swapped fd %d is bound to %s, want %s", slot, got, want)
	}
	acc, err := unix.GetsockoptInt(slot, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || acc != 1 {
		return fmt.Errorf("evloop: self-test: swapped fd %d is not listening (%v)", slot, err)
	}
	return nil
}

// park replaces whatever slot refers to with a fresh listening socket on
// 127.0.0.1:0 that nobody connects to. It is how evloop stops accepting
// without touching the shared socket: gnet keeps its fd number and still
// closes it at shutdown, its acceptor gets EAGAIN, and the socket the slot
// referred to is closed in this process only. (A spurious edge-triggered
// wake-up per connection arriving on the shared socket may still reach the
// acceptor until the engine stops; it accepts nothing.)
func park(slot int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("evloop: park socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("evloop: park bind: %w", err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		return fmt.Errorf("evloop: park listen: %w", err)
	}
	if err := unix.Dup3(fd, slot, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("evloop: park dup3 onto %d: %w", slot, err)
	}
	return nil
}

// seal replaces whatever slot refers to with an eventfd nobody signals.
// Only before gnet adds the slot to epoll (OnBoot): the acceptor then never
// wakes for it, so it never calls accept on it. (Later, park: a stale
// wake-up from the socket the slot used to be would reach accept, which
// on an eventfd fails, and gnet stops the engine on that.)
func seal(slot int) error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("evloop: seal eventfd: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Dup3(fd, slot, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("evloop: seal dup3 onto %d: %w", slot, err)
	}
	return nil
}

// sockName renders getsockname of fd for comparison.
func sockName(fd int) (string, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String(), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String() + "%" + strconv.Itoa(int(a.ZoneId)), nil
	case *unix.SockaddrUnix:
		return "unix:" + a.Name, nil
	}
	return "", errors.New("unsupported socket family")
}

// setNoDelay turns TCP_NODELAY on for a TCP listening socket; Linux copies it
// to every accepted connection, which is how gnet does it for the sockets it
// binds itself (and Go's net package sets it on every accepted conn).
func setNoDelay(fd int) {
	if sa, err := unix.Getsockname(fd); err == nil {
		if _, isUnix := sa.(*unix.SockaddrUnix); !isUnix {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
	}
}
