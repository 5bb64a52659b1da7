// Package sockgatetest is test support for code that gates listening
// sockets: a raw listening socket like the ones the arbiter makes.
package sockgatetest

import (
	"net"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// ListenTCP binds a blocking listening socket on 127.0.0.1:0 with raw
// syscalls, as the arbiter makes them: with SO_REUSEPORT (a worker's own
// socket in reuse_port mode) or without (a shared one). It returns the fd
// and the address; the caller closes the fd (a test of code that closes
// it must not have it closed twice).
func ListenTCP(t testing.TB, reusePort bool) (fd int, addr string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	fail := func(what string, err error) {
		_ = unix.Close(fd)
		t.Fatalf("%s: %v", what, err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			fail("SO_REUSEPORT", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		fail("bind", err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		fail("getsockname", err)
	}
	return fd, net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
}
