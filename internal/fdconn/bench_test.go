package fdconn

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/workers/workerstest"
)

// BenchmarkAcceptClose: the Conn a connection-per-request class makes
// for each connection (accept, the peer's address, close), its client
// connected by raw system calls so that only the server side allocates.
func BenchmarkAcceptClose(b *testing.B) {
	lfd, _ := workerstest.ListenTCP(b)
	a, err := NewAcceptor(lfd)
	if err != nil {
		b.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := unix.Connect(cfd, sa); err != nil {
			b.Fatal(err)
		}
		c, err := a.Accept()
		if err != nil {
			b.Fatal(err)
		}
		if c.RemoteAddr() == nil {
			b.Fatal("no peer address")
		}
		c.Close()
		unix.Close(cfd)
	}
}
