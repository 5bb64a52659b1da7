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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/testwait"
	"github.com/multiserve/multiserve/workers"
)

func TestMain(m *testing.M) {
	// gnet's process-wide ants pool (started at gnet's init; its workers
	// idle until purged) is not evloop's.
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
	if gnetAcceptor != nil {
		cfg.EvloopGnetAcceptor = *gnetAcceptor
	}
	if len(socks) == 0 {
		socks = []sockSpec{"tcp"}
	}
	hs := &harness{errc: make(chan error, 1)}
	env := &workers.Env{
		Handler: h, Config: cfg, Age: 1,
		Log:  slog.New(slog.NewTextHandler(syncWriter{mu: &hs.logMu, w: &hs.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Beat: func() { hs.beats.Add(1) },
	}
	var own []int
	for _, sp := range socks {
		fd, name, network := listenSock(t, sp)
		env.Listeners = append(env.Listeners, &workers.Listener{FD: fd, Name: name, Network: network})
		hs.addrs = append(hs.addrs, strings.TrimPrefix(name, "unix:"))
		if sp == "reuseport" {
			own = append(own, fd)
		} else {
			t.Cleanup(func() { _ = unix.Close(fd) })
		}
	}
	// As the worker runtime does: own reuse_port sockets are closed when
	// the class says it is done with the listeners, else after Serve.
	var closeOwn sync.Once
	env.ListenersDone = func() {
		closeOwn.Do(func() {
			for _, fd := range own {
				_ = unix.Close(fd)
			}
		})
	}
	t.Cleanup(env.ListenersDone) // runs after the stop below (LIFO)
	ready := make(chan struct{})
	var once atomic.Bool
	env.Ready = func() {
		if !once.Swap(true) {
			close(ready)
		}
	}
	w := &Worker{auto: cfg.WorkerClass == "auto"}
	if err := w.CheckConfig(cfg); err != nil {
		t.Fatal(err)
	}
	hs.s = newServer(env, w.auto)
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

// listenSock creates a listening socket with raw syscalls, as the arbiter:
// "tcp" (127.0.0.1), "tcp6" (::1), "reuseport" (a worker's own reuse_port
// socket: SO_REUSEPORT on 127.0.0.1, in a group with a bound, non-listening
// reservation socket like the arbiter's) or a unix socket path.
func listenSock(t *testing.T, sp sockSpec) (fd int, name, network string) {
	t.Helper()
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	family, network := unix.AF_INET, "tcp"
	reuse := false
	switch sp {
	case "tcp":
	case "reuseport":
		reuse, sa = true, reservePort(t)
	case "tcp6":
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	default:
		family, network, sa = unix.AF_UNIX, "unix", &unix.SockaddrUnix{Name: string(sp)}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			t.Fatal(err)
		}
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
	sa, err = unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return fd, "127.0.0.1:" + strconv.Itoa(a.Port), network
	case *unix.SockaddrInet6:
		return fd, "[::1]:" + strconv.Itoa(a.Port), network
	}
	t.Fatal("unexpected socket address")
	return
}

// reservePort binds a SO_REUSEPORT socket on 127.0.0.1:0 without listening,
// as the arbiter reserves a reuse_port bind, and returns its address.
func reservePort(t *testing.T) *unix.SockaddrInet4 {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*unix.SockaddrInet4)
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
			// A head arriving a byte at a time (separate segments, so
			// usually separate events) is kept buffered until complete.
			for _, b := range []byte(get("/split")) {
				c.send(string(b))
			}
			if got := body(c.read()); got != "path=/split" {
				t.Fatalf("byte-wise head: %q", got)
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

// TestSeveralListeners serves IPv4, IPv6 and unix sockets from one engine;
// the unix path must survive the worker (gnet never owns it).
func TestSeveralListeners(t *testing.T) {
	forAcceptModes(t, func(t *testing.T, mode string) {
		path := filepath.Join(t.TempDir(), "s.sock")
		hs := startServer(t, testConfig(), pathHandler, "tcp", "tcp6", sockSpec(path))
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
		if m := hs.s.mode(); m != mode {
			t.Fatalf("mode %s, want %s", m, mode)
		}
	})
}

// forAcceptModes runs fn with our accept loop (the default, mode
// "accept-loop") and with gnet's acceptor (mode "fd-swap").
func forAcceptModes(t *testing.T, fn func(t *testing.T, mode string)) {
	for _, gnetAcc := range []bool{false, true} {
		mode := map[bool]string{false: "accept-loop", true: "fd-swap"}[gnetAcc]
		t.Run(mode, func(t *testing.T) {
			useGnetAcceptor(t, gnetAcc)
			fn(t, mode)
		})
	}
}

// gnetAcceptor, when set, overrides evloop_gnet_acceptor in every config
// startServer is given, so a test runs under either accept path.
var gnetAcceptor *bool

// useGnetAcceptor sets gnetAcceptor for the test.
func useGnetAcceptor(t *testing.T, on bool) {
	was := gnetAcceptor
	gnetAcceptor = &on
	t.Cleanup(func() { gnetAcceptor = was })
}

func TestAcceptLoopByDefault(t *testing.T) {
	useGnetAcceptor(t, false)
	hs := startServer(t, testConfig(), pathHandler)
	if m := hs.s.mode(); m != "accept-loop" {
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

// TestReusePort: in reuse_port mode the worker's own SO_REUSEPORT socket
// (made by the arbiter) is swapped into gnet's slot like a shared one. On
// stop the worker parks the slot and calls Env.ListenersDone, on which the
// harness closes the inherited fd as the runtime does: then nothing in the
// process refers to the socket any more, so it leaves the kernel's group
// at once (here the only listening member: connect is refused, the
// reservation does not listen) while the request in flight still
// finishes. (Gating and draining it before the stop is the runtime's,
// tested in workers and arbiter.)
func TestReusePort(t *testing.T) {
	forAcceptModes(t, func(t *testing.T, mode string) {
		cfg := testConfig()
		cfg.ReusePort, cfg.EvloopLoops, cfg.Threads = true, 2, 2
		var log orderLog
		release := make(chan struct{})
		hs := startServer(t, cfg, blockingHandler(&log, release), "reuseport")
		addr := hs.addrs[0]
		if m, own := hs.s.mode(), hs.s.ownCount(); m != mode || own != 1 {
			t.Fatalf("mode %s, %d own sockets: want %s and the own socket", m, own, mode)
		}
		for range 4 {
			c := dial(t, addr)
			c.send(get("/rp"))
			if got := body(c.read()); got != "rp" {
				t.Fatalf("got %q", got)
			}
		}
		busy := dial(t, addr)
		busy.send(get("/block"))
		testwait.Until(t, waitLimit, "block-enter", func() bool { return log.has("block-enter") })
		hs.cancel()
		testwait.Until(t, waitLimit, "connect refused", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err != nil
		})
		close(release)
		if r := busy.read(); body(r) != "block" || !r.Close {
			t.Fatalf("in-flight response: close=%v", r.Close)
		}
	})
}

// orderLog records handler events in the order they happen.
type orderLog struct {
	mu     sync.Mutex
	events []string
}

func (o *orderLog) add(e string) {
	o.mu.Lock()
	o.events = append(o.events, e)
	o.mu.Unlock()
}

func (o *orderLog) has(e string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Contains(o.events, e)
}

func (o *orderLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.events, ",")
}

// blockingHandler: /block waits for release, anything else answers at once.
func blockingHandler(log *orderLog, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		log.add(name + "-enter")
		if name == "block" {
			<-release
		}
		log.add(name + "-exit")
		_, _ = io.WriteString(w, name)
	})
}

// TestInlineHandlerBlocksLoop: with threads=0 and one loop, a handler that
// blocks stalls every connection of the loop, and the heartbeat stops.
func TestInlineHandlerBlocksLoop(t *testing.T) {
	var log orderLog
	release := make(chan struct{})
	hs := startServer(t, testConfig(), blockingHandler(&log, release))
	a := dial(t, hs.addrs[0])
	a.send(get("/block"))
	testwait.Until(t, waitLimit, "block-enter", func() bool { return log.has("block-enter") })

	b := dial(t, hs.addrs[0])
	b.send(get("/fast"))
	// Two ticks without a beat after b's request was sent prove the loop
	// has been stuck all along, so b cannot have been served meanwhile.
	m0 := hs.s.missed.Load()
	testwait.Until(t, waitLimit, "two missed beats", func() bool { return hs.s.missed.Load() >= m0+2 })
	beats := hs.beats.Load()
	if log.has("fast-enter") {
		t.Fatalf("second connection served while the loop was blocked: %s", &log)
	}
	close(release)
	if got := body(a.read()); got != "block" {
		t.Fatalf("a: %q", got)
	}
	if got := body(b.read()); got != "fast" {
		t.Fatalf("b: %q", got)
	}
	if got, want := log.String(), "block-enter,block-exit,fast-enter,fast-exit"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	testwait.Until(t, waitLimit, "beats to resume", func() bool { return hs.beats.Load() > beats })
}

// TestPoolHandlerDoesNotBlockLoop: with threads=4 the second connection is
// answered while the first handler is still blocked, and beats go on.
func TestPoolHandlerDoesNotBlockLoop(t *testing.T) {
	var log orderLog
	release := make(chan struct{})
	cfg := testConfig()
	cfg.Threads = 4
	hs := startServer(t, cfg, blockingHandler(&log, release))
	a := dial(t, hs.addrs[0])
	a.send(get("/block"))
	testwait.Until(t, waitLimit, "block-enter", func() bool { return log.has("block-enter") })
	beats := hs.beats.Load()

	b := dial(t, hs.addrs[0])
	b.send(get("/fast"))
	if got := body(b.read()); got != "fast" {
		t.Fatalf("b: %q", got)
	}
	testwait.Until(t, waitLimit, "beats while a handler blocks", func() bool { return hs.beats.Load() >= beats+2 })
	if log.has("block-exit") {
		t.Fatal("block returned before release")
	}
	close(release)
	if got := body(a.read()); got != "block" {
		t.Fatalf("a: %q", got)
	}
	if got, want := log.String(), "block-enter,fast-enter,fast-exit,block-exit"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
}

// TestConnectionCap: above worker_connections a new connection gets a 503
// and is closed; once a slot frees up, connections are served again.
func TestConnectionCap(t *testing.T) {
	cfg := testConfig()
	cfg.WorkerConnections = 1
	hs := startServer(t, cfg, pathHandler)
	a := dial(t, hs.addrs[0])
	a.send(get("/a"))
	if got := body(a.read()); got != "path=/a" {
		t.Fatalf("a: %q", got)
	}
	b := dial(t, hs.addrs[0])
	if r := b.read(); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the cap: status %d, want 503", r.StatusCode)
	}
	b.expectEOF()
	_ = a.nc.Close()
	testwait.Until(t, waitLimit, "the slot to free", func() bool { return hs.s.conns.Load() == 0 })
	c := dial(t, hs.addrs[0])
	c.send(get("/c"))
	if got := body(c.read()); got != "path=/c" {
		t.Fatalf("c: %q", got)
	}
}

// TestTimeouts: the tick closes a kept-alive connection idle past
// keepalive, one whose head stalls past header_timeout, and one that never
// sends anything past header_timeout.
func TestTimeouts(t *testing.T) {
	cfg := testConfig()
	cfg.Keepalive = 300 * time.Millisecond
	cfg.HeaderTimeout = 300 * time.Millisecond
	hs := startServer(t, cfg, pathHandler)
	idle := dial(t, hs.addrs[0])
	idle.send(get("/i"))
	if r := idle.read(); r.Close {
		t.Fatal("first response closes")
	}
	partial := dial(t, hs.addrs[0])
	partial.send("GET / HTTP/1.1\r\nHost: x\r\n")
	silent := dial(t, hs.addrs[0])
	for name, c := range map[string]*conn{"idle": idle, "partial head": partial, "silent": silent} {
		t.Run(name, func(t *testing.T) { c.t = t; c.expectEOF() })
	}
}

// TestGracefulStop: on cancel, idle connections close at once, the
// in-flight request finishes with Connection: close, and serve returns nil.
func TestGracefulStop(t *testing.T) {
	for _, threads := range []int{0, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			var log orderLog
			release := make(chan struct{})
			cfg := testConfig()
			cfg.Threads = threads
			cfg.EvloopLoops = 2
			hs := startServer(t, cfg, blockingHandler(&log, release))
			idle := dial(t, hs.addrs[0])
			idle.send(get("/i"))
			idle.read()
			busy := dial(t, hs.addrs[0])
			busy.send(get("/block"))
			testwait.Until(t, waitLimit, "block-enter", func() bool { return log.has("block-enter") })
			hs.cancel()
			testwait.Until(t, waitLimit, "draining", hs.s.draining.Load)
			if threads > 0 {
				idle.expectEOF() // with threads=0 the blocked loop may own it
			}
			// Stopped accepting: the gnet slot no longer holds the shared
			// socket, and a new connection stays in the shared accept
			// queue for a sibling (here: the test takes it itself).
			shared := hs.s.env.Listeners[0].FD
			want, _ := sockName(shared)
			testwait.Until(t, waitLimit, "the slot parked", func() bool {
				got, _ := sockName(hs.s.slots[0])
				return got != want
			})
			late := dial(t, hs.addrs[0])
			late.send(get("/late"))
			var nfd int
			testwait.Until(t, waitLimit, "the late connection in the shared queue", func() bool {
				var err error
				nfd, _, err = unix.Accept(shared)
				return err == nil
			})
			_ = unix.Close(nfd)
			close(release)
			r := busy.read()
			if body(r) != "block" || !r.Close {
				t.Fatalf("in-flight response: close=%v", r.Close)
			}
			busy.expectEOF()
			idle.expectEOF()
			if err := hs.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBodies streams a 10 MiB chunked upload and a 1 MiB response, inline
// and on the pool, plus a small body sent after 100 Continue.
func TestBodies(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/count":
			n, err := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d %v %s", n, err, r.Trailer.Get("X-Sum"))
		case "/big":
			chunk := strings.Repeat("x", 1024)
			for range 1024 {
				_, _ = io.WriteString(w, chunk)
			}
		}
	})
	for _, threads := range []int{0, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			cfg := testConfig()
			cfg.Threads = threads
			hs := startServer(t, cfg, h)
			c := dial(t, hs.addrs[0])
			c.send("POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("y", 64<<10))
			for range 32 {
				c.send(chunk)
			}
			c.send("0\r\nX-Sum: ok\r\n\r\n")
			if got, want := body(c.read()), fmt.Sprintf("%d <nil> ok", 32*64<<10); got != want {
				t.Fatalf("upload: %q, want %q", got, want)
			}
			c.send(get("/big"))
			if r := c.read(); r.ContentLength != 1<<20 {
				t.Fatalf("download: %d bytes", r.ContentLength)
			}
			c.send("POST /count HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
			line, err := c.br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
				t.Fatalf("want 100 Continue, got %q %v", line, err)
			}
			if _, err := c.br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			c.send("hello")
			if got := body(c.read()); got != "5 <nil> " {
				t.Fatalf("expect-continue body: %q", got)
			}
		})
	}
}

// TestGnetVersionPinned guards the fd swap and the accept loop's hand-over:
// the swap relies on gnet v2.9.7 calling OnBoot after binding its
// listeners and before polling them (see the package doc), the hand-over
// on the signatures of the gnet functions gnetconn.go links to and on the
// engine's layout (engineLoops). On a gnet bump, re-check those, then
// update.
func TestGnetVersionPinned(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod") // test binaries carry no dependency list
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/panjf2000/gnet/v2" {
			if f[1] != "v2.9.7" {
				t.Fatalf("gnet %s: the fd swap was verified against v2.9.7 only", f[1])
			}
			return
		}
	}
	t.Fatal("gnet not in go.mod")
}

// TestNoFDLeak: a worker that served and stopped leaves no descriptor
// behind (dummy listeners, parked slots, connections), in every mode.
func TestNoFDLeak(t *testing.T) {
	countFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	serve := func(t *testing.T) {
		cfg := testConfig()
		cfg.ReusePort = true
		hs := startServer(t, cfg, pathHandler, "tcp", "reuseport", sockSpec(filepath.Join(t.TempDir(), "s")))
		for _, a := range hs.addrs {
			c := dial(t, a)
			c.send(get("/x"))
			c.read()
		}
	}
	t.Run("warm-up", serve) // Go's netpoller opens its own fds once
	for _, gnetAcc := range []bool{false, true} {
		before := countFDs()
		was := gnetAcceptor
		gnetAcceptor = &gnetAcc
		t.Run(fmt.Sprintf("gnet-acceptor=%v", gnetAcc), serve)
		gnetAcceptor = was
		if after := countFDs(); after != before {
			t.Fatalf("gnet-acceptor=%v: %d fds before, %d after", gnetAcc, before, after)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want string // substring of the error, "" for none
	}{
		{"defaults", func(*config.Config) {}, ""},
		{"inline", func(c *config.Config) { c.Threads = 0 }, ""},
		{"negative threads", func(c *config.Config) { c.Threads = -1 }, "threads -1"},
		{"negative loops", func(c *config.Config) { c.EvloopLoops = -2 }, "evloop_loops -2"},
		{"tls", func(c *config.Config) { c.Certfile = "c.pem" }, "TLS"},
		{"reuse_port tcp", func(c *config.Config) { c.ReusePort = true }, ""},
		{"reuse_port unix", func(c *config.Config) { // stays a shared socket
			c.ReusePort, c.Bind = true, []string{"127.0.0.1:0", "unix:/tmp/x.sock"}
		}, ""},
		{"unix shared", func(c *config.Config) { c.Bind = []string{"unix:/tmp/x.sock"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			tc.mod(cfg)
			err := (&Worker{}).CheckConfig(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRequestTimeout: h1's request_timeout answers 503 through either sink
// (the loop's buffer inline, AsyncWrite on the pool) and the connection
// closes.
func TestRequestTimeout(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	for _, threads := range []int{0, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			cfg := testConfig()
			cfg.Threads = threads
			cfg.RequestTimeout = 100 * time.Millisecond
			hs := startServer(t, cfg, h)
			c := dial(t, hs.addrs[0])
			c.send(get("/slow"))
			if r := c.read(); r.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503", r.StatusCode)
			}
			c.expectEOF()
		})
	}
}

// waitLimit is how long a test waits for a loop or handler state.
const waitLimit = 10 * time.Second
