package evloop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

func TestMain(m *testing.M) {
	// gnet's process-wide ants pool (started at gnet's init; its workers
	// run Engine.Register and idle until purged) is not evloop's.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"),
	)
}

// harness runs one evloop server in-process on sockets made the way the
// arbiter makes them (raw syscalls), with a counting Beat.
type harness struct {
	s      *server
	addrs  []string // per listener: host:port or unix path
	beats  atomic.Int64
	cancel context.CancelFunc
	errc   chan error
	logs   strings.Builder
	logMu  sync.Mutex
}

// sockSpec is a listener to create: "tcp" or a unix socket path.
type sockSpec string

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.WorkerClass = "evloop"
	cfg.Threads = 0
	cfg.EvloopLoops = 1
	cfg.GracefulTimeout = 10 * time.Second
	return cfg
}

func startServer(t *testing.T, cfg *config.Config, h http.Handler, socks ...sockSpec) *harness {
	t.Helper()
	if len(socks) == 0 && !cfg.ReusePort {
		socks = []sockSpec{"tcp"}
	}
	hs := &harness{errc: make(chan error, 1)}
	env := &workers.Env{
		Handler: h, Config: cfg, Age: 1,
		Log:  slog.New(slog.NewTextHandler(syncWriter{mu: &hs.logMu, w: &hs.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Beat: func() { hs.beats.Add(1) },
	}
	for _, sp := range socks {
		fd, name, network := listenSock(t, sp)
		env.Listeners = append(env.Listeners, &workers.Listener{FD: fd, Name: name, Network: network})
		hs.addrs = append(hs.addrs, strings.TrimPrefix(name, "unix:"))
		t.Cleanup(func() { _ = unix.Close(fd) })
	}
	if cfg.ReusePort {
		hs.addrs = append(hs.addrs, cfg.Bind...)
	}
	ready := make(chan struct{})
	var once atomic.Bool
	env.Ready = func() {
		if !once.Swap(true) {
			close(ready)
		}
	}
	if err := (&Worker{}).CheckConfig(cfg); err != nil {
		t.Fatal(err)
	}
	hs.s = newServer(env)
	ctx, cancel := context.WithCancel(context.Background())
	hs.cancel = cancel
	go func() { hs.errc <- hs.s.serve(ctx) }()
	t.Cleanup(func() {
		if err := hs.stop(); err != nil {
			t.Errorf("serve after stop: %v", err)
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", hs.logText())
		}
	})
	select {
	case <-ready:
	case err := <-hs.errc:
		hs.errc <- err
		t.Fatalf("serve returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready within 10s")
	}
	return hs
}

func (hs *harness) stop() error {
	hs.cancel()
	select {
	case err := <-hs.errc:
		hs.errc <- err
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("serve did not return within 30s of cancel")
	}
}

func (hs *harness) logText() string {
	hs.logMu.Lock()
	defer hs.logMu.Unlock()
	return hs.logs.String()
}

type syncWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// listenSock creates a listening socket with raw syscalls, as the arbiter.
func listenSock(t *testing.T, sp sockSpec) (fd int, name, network string) {
	t.Helper()
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	family, network := unix.AF_INET, "tcp"
	if sp != "tcp" {
		family, network, sa = unix.AF_UNIX, "unix", &unix.SockaddrUnix{Name: string(sp)}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	if network == "unix" {
		return fd, "unix:" + string(sp), network
	}
	got, _ := unix.Getsockname(fd)
	port := got.(*unix.SockaddrInet4).Port
	return fd, "127.0.0.1:" + strconv.Itoa(port), network
}

// conn is a raw client connection with a deadline on every operation.
type conn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	nc, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &conn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *conn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *conn) read() *http.Response {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	resp.ContentLength = int64(len(b))
	return resp
}

func body(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// expectEOF asserts the server closes the connection.
func (c *conn) expectEOF() {
	c.t.Helper()
	b, err := c.br.ReadByte()
	if err == nil {
		c.t.Fatalf("expected the server to close, read %q", b)
	}
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

// pathHandler answers the request path.
var pathHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "path="+r.URL.Path)
})

func TestKeepAliveAndPipelining(t *testing.T) {
	for _, threads := range []int{0, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			cfg := testConfig()
			cfg.Threads = threads
			hs := startServer(t, cfg, pathHandler)
			c := dial(t, hs.addrs[0])
			c.send(get("/one"))
			if r := c.read(); body(r) != "path=/one" || r.Close {
				t.Fatalf("first response: close=%v", r.Close)
			}
			c.send(get("/a") + get("/b") + get("/c"))
			for _, want := range []string{"/a", "/b", "/c"} {
				if got := body(c.read()); got != "path="+want {
					t.Fatalf("pipelined: got %q, want path=%s", got, want)
				}
			}
			c.send("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if r := c.read(); !r.Close {
				t.Fatal("Connection: close request: response does not close")
			}
			c.expectEOF()
		})
	}
}

func TestBadRequestClosed(t *testing.T) {
	hs := startServer(t, testConfig(), pathHandler)
	c := dial(t, hs.addrs[0])
	c.send("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
	if r := c.read(); r.StatusCode != 400 {
		t.Fatalf("status %d, want 400", r.StatusCode)
	}
	c.expectEOF()
}

// TestSeveralListeners serves a TCP and a unix socket from one engine; the
// unix path must survive the worker (gnet never owns it).
func TestSeveralListeners(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	hs := startServer(t, testConfig(), pathHandler, "tcp", sockSpec(path))
	for _, a := range hs.addrs {
		c := dial(t, a)
		c.send(get("/x"))
		if got := body(c.read()); got != "path=/x" {
			t.Fatalf("%s: %q", a, got)
		}
	}
	if err := hs.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("unix socket path gone after the worker stopped: %v", err)
	}
	if m := hs.s.mode(); m != "fd-swap" {
		t.Fatalf("mode %s, want fd-swap", m)
	}
}

func TestRegisterFallback(t *testing.T) {
	forceRegister = true
	t.Cleanup(func() { forceRegister = false })
	hs := startServer(t, testConfig(), pathHandler)
	if m := hs.s.mode(); m != "register-fallback" {
		t.Fatalf("mode %s", m)
	}
	for i := range 3 {
		c := dial(t, hs.addrs[0])
		c.send(get("/r" + strconv.Itoa(i)))
		if got := body(c.read()); got != "path=/r"+strconv.Itoa(i) {
			t.Fatalf("got %q", got)
		}
	}
}

// TestReusePort binds through gnet's own SO_REUSEPORT listeners. The port
// is reserved by a bound, non-listening SO_REUSEPORT socket, which gets no
// connections (only listening sockets join the kernel's accept group).
func TestReusePort(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
	cfg := testConfig()
	cfg.ReusePort, cfg.Bind, cfg.EvloopLoops = true, []string{addr}, 2
	hs := startServer(t, cfg, pathHandler)
	if m := hs.s.mode(); m != "reuse_port" {
		t.Fatalf("mode %s", m)
	}
	for range 4 {
		c := dial(t, addr)
		c.send(get("/rp"))
		if got := body(c.read()); got != "path=/rp" {
			t.Fatalf("got %q", got)
		}
	}
}
