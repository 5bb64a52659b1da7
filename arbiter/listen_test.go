package arbiter

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// accept proves a bound listener works: a client connects and the socket,
// adopted as a net.Listener, accepts it.
func accept(t *testing.T, ln *listener) {
	t.Helper()
	nl, err := net.FileListener(ln.file)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	c, err := net.Dial(ln.addr.Network(), ln.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := nl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestBindTCP(t *testing.T) {
	for _, bind := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		t.Run(bind, func(t *testing.T) {
			ln, err := bind1(t, bind)
			if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EAFNOSUPPORT) {
				t.Skipf("no such address here: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if ln.addr.(*net.TCPAddr).Port == 0 {
				t.Fatal("port 0 not resolved")
			}
			if strings.HasSuffix(ln.workerName(), ":0") {
				t.Fatalf("worker name %q keeps port 0", ln.workerName())
			}
			accept(t, ln)
		})
	}
}

func bind1(t *testing.T, b string) (*listener, error) {
	lns, err := bindAll([]string{b}, 16)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { closeAll(lns) })
	return lns[0], nil
}

func TestBindPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// The first bind succeeds, the second fails; bindAll closes the first.
	_, err = bindAll([]string{"127.0.0.1:0", taken.Addr().String()}, 16)
	want := "bind " + taken.Addr().String() + ": address already in use"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestBindUnixStaleAndLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	// A stale socket file (nobody listening) is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err := bind1(t, "unix:"+path)
	if err != nil {
		t.Fatalf("stale socket not cleaned: %v", err)
	}
	accept(t, ln)
	// A live socket is never stolen.
	_, err = bindAll([]string{"unix:" + path}, 16)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("bind over a live socket: %v", err)
	}
	// A regular file is not a socket to remove.
	reg := filepath.Join(t.TempDir(), "file")
	os.WriteFile(reg, nil, 0o644)
	if _, err := bindAll([]string{"unix:" + reg}, 16); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("bind over a regular file: %v", err)
	}
	// Closing removes the path.
	ln.close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket path left after close: %v", err)
	}
}

func TestAdoptFD(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	ln, err := bind1(t, fmt.Sprintf("fd://%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	if ln.network != "tcp" || ln.addr.(*net.TCPAddr).Port == 0 {
		t.Fatalf("adopted %s %v", ln.network, ln.addr)
	}
	accept(t, ln)
	if _, err := bindAll([]string{"fd://99999"}, 16); err == nil {
		t.Fatal("adopting a closed fd succeeded")
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, 0}, {2, 250 * time.Millisecond}, {3, 500 * time.Millisecond}, {9, 30 * time.Second}, {100, 30 * time.Second}} {
		if got := backoff(tc.n); got != tc.want {
			t.Errorf("backoff(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("bind: address already in use"), 1},
		{withCode(2, errors.New("x")), 2},
		{fmt.Errorf("wrapped: %w", withCode(4, errors.New("x"))), 4},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestGomaxprocs(t *testing.T) {
	if got := gomaxprocs("sync", 1); got != 2 {
		t.Errorf("sync: %d, want 2", got)
	}
	if got := gomaxprocs("goroutine", 1000); got != 1 {
		t.Errorf("1000 workers: %d, want 1", got)
	}
}

// The options the arbiter sets on a TCP listener reach every accepted
// socket without a worker setting them: read back with getsockopt on a
// socket accepted with a bare accept4 (net's Accept would set some itself).
func TestAcceptedSocketsInheritOptions(t *testing.T) {
	ln, err := bind("127.0.0.1:0", 16)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.close()
	rfd, err := reusePortSocket("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	if err := unix.Listen(rfd, 16); err != nil {
		t.Fatal(err)
	}
	for name, lfd := range map[string]int{"bound": int(ln.file.Fd()), "reuse_port": rfd} {
		sa, err := unix.Getsockname(lfd)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", toNetAddr(sa).String())
		if err != nil {
			t.Fatal(err)
		}
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range inheritedOptions {
			got, err := unix.GetsockoptInt(fd, o.level, o.opt)
			if err != nil || (got != 0) != (o.value != 0) || (o.value > 1 && got != o.value) {
				t.Errorf("%s: accepted socket option %d/%d = %d, %v; want %d", name, o.level, o.opt, got, err, o.value)
			}
		}
		unix.Close(fd)
		c.Close()
	}
}
