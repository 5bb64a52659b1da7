//go:build chaos

package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	stdsync "sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/rawload"
	"github.com/multiserve/multiserve/internal/testwait"
)

// TestBoundedUnderHostileClients: one worker per class (and the goroutine
// class on the net/http engine) faces raw-socket clients that misbehave,
// one kind at a time: clients that pipeline requests for large responses
// and read nothing, clients that upload as fast as they can to a handler
// that does not read, clients that stop sending their body, and requests
// that smuggle with Content-Length plus Transfer-Encoding. Each case
// asserts a bound on the worker's RSS (a generous multiple of the
// per-connection budget, never a timing) and that a normal client is
// served afterwards; the worker's RSS before and at its peak goes into the
// suite's summary. TestFDBurst is the accept-burst case.
func TestBoundedUnderHostileClients(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v variant) {
		// worker_connections 16: the slow bodies fill every slot, so a
		// normal client is served only once they are cut.
		args := append([]string{"-w", "1", "--header-timeout", "1s", "--worker-connections", "16"}, v.args...)
		s := start(t, v.class, append(args, "sim")...)
		dumpLogOnFailure(t, s)
		mustGet(t, s.Addr, "/")
		pid := workers(s.Pid())
		if len(pid) != 1 {
			t.Fatalf("want one worker, have %v", pid)
		}
		n := 4
		if v.class == "sync" {
			n = 2 // each holds the only process until header_timeout cuts it
		}
		var stalled []net.Conn // the slow bodies: open until a normal client was served
		for _, c := range []struct {
			name string
			run  func(ctx context.Context, addr string)
		}{
			{"non-reader", func(ctx context.Context, addr string) { nonReaders(ctx, addr, n) }},
			{"fast-upload", func(ctx context.Context, addr string) { fastUploads(ctx, addr, n) }},
			{"slow-body", func(ctx context.Context, addr string) { stalled = slowBodies(ctx, addr, 4*n) }},
		} {
			before := totalRSSKB(pid)
			peak := exposeRSS(pid[0], pick(1500*time.Millisecond, 4*time.Second), func(ctx context.Context) { c.run(ctx, s.Addr) })
			noteRSS(v.name, c.name, before, peak)
			t.Logf("%s %s: worker RSS %d KiB -> peak %d KiB", v.name, c.name, before, peak)
			// The per-connection budget is about 1 MiB (evloop_conn_buffer)
			// plus a response buffer; 16 MiB per hostile connection over a
			// 32 MiB allowance is far above it and far below what an
			// unbounded buffer reaches in the same window (hundreds of MiB).
			if grow := peak - before; grow > int64(32+16*n)<<10 {
				t.Errorf("%s: worker RSS grew %d KiB with %d hostile connections", c.name, grow, n)
			}
			if !procAlive(pid[0]) {
				t.Fatalf("%s: the worker died", c.name)
			}
			servedSoon(t, s.Addr, c.name)
		}
		closeAll(stalled)
		smuggling(t, s.Addr)
		if got := workers(s.Pid()); len(got) != 1 || got[0] != pid[0] {
			t.Errorf("worker %d replaced by %v during the hostile clients", pid[0], got)
		}
	})
}

// variant is a class with the flags that select an engine or mode.
type variant struct {
	name, class string
	args        []string
}

var variants = []variant{
	{"sync", "sync", nil},
	{"threaded", "threaded", []string{"--threads", "4"}},
	{"evloop", "evloop", nil},
	{"auto", "auto", nil},
	{"goroutine", "goroutine", nil},
	{"goroutine+net/http", "goroutine", []string{"--http-engine", "net/http"}},
}

// forEachVariant runs fn as one subtest per variant.
func forEachVariant(t *testing.T, fn func(t *testing.T, v variant)) {
	for _, v := range variants {
		t.Run(strings.ReplaceAll(v.name, "/", "-"), func(t *testing.T) {
			summaryOf(v.class, func(*classSummary) {})
			t.Cleanup(func() {
				if t.Failed() {
					noteFailure(v.class, strings.TrimPrefix(t.Name(), "Test"))
				}
			})
			fn(t, v)
		})
	}
}

// exposeRSS runs hostile for d and returns pid's peak RSS (KiB) meanwhile,
// sampled every 50 ms; hostile's connections close when it returns.
func exposeRSS(pid int, d time.Duration, hostile func(ctx context.Context)) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); hostile(ctx) }()
	peak := totalRSSKB([]int{pid})
	for ctx.Err() == nil {
		peak = max(peak, totalRSSKB([]int{pid}))
		sleepCtx(ctx, 50*time.Millisecond)
	}
	<-done
	return max(peak, totalRSSKB([]int{pid}))
}

// servedSoon asserts a normal client is answered once hostile clients are
// gone (a sync worker may still be finishing with one: a generous wait).
func servedSoon(t *testing.T, addr, after string) {
	t.Helper()
	var r result
	ok := testwait.For(30*time.Second, func() bool {
		cl := &client{Client: rawload.Client{Addr: addr, Timeout: 10 * time.Second}}
		defer cl.close()
		r = cl.once("/")
		return r.Err == nil
	})
	if !ok {
		t.Errorf("after %s: a normal client is not served: %s (%v)", after, errKind(r), r.Err)
	}
}

// smallRecvDial dials with a 4 KiB receive buffer, so that what a client
// does not read stays in the server.
func smallRecvDial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	return d.DialContext(ctx, "tcp", addr)
}

// parallel runs fn n times concurrently and waits for all.
func parallel(n int, fn func()) {
	var wg stdsync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	wg.Wait()
}

// nonReaders: n connections each pipeline 10 requests for 10 MiB and read
// nothing until ctx ends.
func nonReaders(ctx context.Context, addr string, n int) {
	req := strings.Repeat("GET /?size=10m HTTP/1.1\r\nHost: chaos\r\n\r\n", 10)
	parallel(n, func() {
		c, err := smallRecvDial(ctx, addr)
		if err != nil {
			return
		}
		defer abort(c)
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(c, req)
		<-ctx.Done()
	})
}

// fastUploads: n connections each declare a 10 GiB body to a handler that
// waits without reading (sim io=) and send 64 KiB blocks as fast as the
// server takes them until ctx ends.
func fastUploads(ctx context.Context, addr string, n int) {
	block := make([]byte, 64<<10)
	parallel(n, func() {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return
		}
		defer abort(c)
		_, _ = io.WriteString(c, "POST /?io=3s HTTP/1.1\r\nHost: chaos\r\nContent-Length: 10737418240\r\n\r\n")
		for ctx.Err() == nil {
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Write(block); err != nil && !isTimeout(err) {
				return
			}
		}
	})
}

// slowBodies: n connections each send a head declaring a 10-byte body and
// 2 bytes of it, then nothing. They stay open (the caller closes them):
// unless the server cuts them (header_timeout is 1 s), they hold their
// worker_connections slots for good.
func slowBodies(ctx context.Context, addr string, n int) []net.Conn {
	var mu stdsync.Mutex
	var conns []net.Conn
	parallel(n, func() {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		_, _ = io.WriteString(c, "POST /?io=1ms HTTP/1.1\r\nHost: chaos\r\nContent-Length: 10\r\n\r\nab")
	})
	<-ctx.Done()
	return conns
}

// smuggling: Content-Length with Transfer-Encoding, and Transfer-Encoding
// on HTTP/1.0, are refused or end the connection, never let a second
// request through; one leading CRLF is ignored.
func smuggling(t *testing.T, addr string) {
	t.Helper()
	smuggled := "GET /?status=418 HTTP/1.1\r\nHost: chaos\r\n\r\n"
	for _, tc := range []struct{ name, req string }{
		{"CL+TE", "POST / HTTP/1.1\r\nHost: chaos\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"TE+CL", "POST / HTTP/1.1\r\nHost: chaos\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n" + smuggled},
		{"HTTP/1.0+TE", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
	} {
		switch codes := exchange(t, addr, tc.req); {
		case slices.Contains(codes, 418):
			t.Errorf("%s: the smuggled request was served (responses %v)", tc.name, codes)
		case len(codes) == 0 || codes[0] != 400:
			t.Logf("%s: responses %v (no 400, but nothing smuggled)", tc.name, codes)
		}
	}
	if codes := exchange(t, addr, "\r\nGET / HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n\r\n"); len(codes) != 1 || codes[0] != 200 {
		t.Errorf("leading CRLF: responses %v, want [200]", codes)
	}
}

// exchange sends req on a new connection and returns the status of every
// response read until the server closes (or 2 s pass in silence).
func exchange(t *testing.T, addr, req string) []int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var codes []int
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

// TestFDBurst: a worker whose RLIMIT_NOFILE covers worker_connections but
// not a burst on top of them holds worker_connections connections, then
// gets a burst of more. It must not exit (evloop's gnet acceptor stopped
// the engine on EMFILE): the same worker serves once the burst is gone.
func TestFDBurst(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v variant) {
		limit, held, burst := pick(400, 1100), pick(300, 1000), pick(300, 1500)
		args := []string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, limit), serverBin,
			"-b", "127.0.0.1:0", "-k", v.class, "-w", "1", "--worker-connections", fmt.Sprint(held)}
		s := launchReady(t, v.class, "/bin/sh", nil, append(append(args, v.args...), "hello")...)
		dumpLogOnFailure(t, s)
		mustGet(t, s.Addr, "/")
		pid := workers(s.Pid())
		before := totalRSSKB(pid)
		first := openConns(t, s.Addr, held, false)
		more := openConns(t, s.Addr, burst, false)
		time.Sleep(500 * time.Millisecond) // let accept meet the limit
		peak := totalRSSKB(pid)
		noteRSS(v.name, "fd-burst", before, peak)
		t.Logf("%s: %d held + %d burst against RLIMIT_NOFILE %d: worker RSS %d KiB -> %d KiB",
			v.name, len(first), len(more), limit, before, peak)
		closeAll(more)
		closeAll(first)
		if got := workers(s.Pid()); len(got) != 1 || got[0] != pid[0] {
			t.Errorf("worker %v replaced by %v after an accept burst past its descriptors: %s", pid, got,
				strings.Join(logLines(s.Log(), "level=ERROR"), " | "))
		}
		servedSoon(t, s.Addr, "the burst")
	})
}

// hostileRSS is the summary's second table: per variant and case, the
// worker's RSS before and at its peak.
var (
	hostileRSS      = map[string]map[string]string{}
	hostileRSSCases = []string{"non-reader", "fast-upload", "slow-body", "fd-burst"}
)

func noteRSS(variant, kase string, before, peak int64) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if hostileRSS[variant] == nil {
		hostileRSS[variant] = map[string]string{}
	}
	hostileRSS[variant][kase] = fmt.Sprintf("%.1f → %.1f", float64(before)/1024, float64(peak)/1024)
}

// printHostileRSS prints the worker RSS table (MiB, before → peak).
func printHostileRSS(w io.Writer) {
	if len(hostileRSS) == 0 {
		return
	}
	fmt.Fprintln(w, "\n=== worker RSS under hostile clients (MiB, before → peak; one worker) ===")
	fmt.Fprintln(w, "| variant | "+strings.Join(hostileRSSCases, " | ")+" |")
	fmt.Fprintln(w, "|---"+strings.Repeat("|---", len(hostileRSSCases))+"|")
	for _, v := range variants {
		row := hostileRSS[v.name]
		if row == nil {
			continue
		}
		cells := make([]string, len(hostileRSSCases))
		for i, k := range hostileRSSCases {
			cells[i] = orDash(row[k])
		}
		fmt.Fprintf(w, "| %s | %s |\n", v.name, strings.Join(cells, " | "))
	}
}

// TestAcceptErrorNotFromBurst: an evloop or auto worker whose accept(2)
// fails for a reason no connection budget foresees keeps the connections
// it holds and serves new ones once the cause is gone. The test lowers
// the worker's RLIMIT_NOFILE below the descriptors it has open (prlimit),
// which makes accept fail with EMFILE exactly as when the application's
// own files fill the table; ENFILE (the system-wide table) and
// ENOBUFS/ENOMEM cannot be provoked safely on a shared machine, and take
// the same path.
func TestAcceptErrorNotFromBurst(t *testing.T) {
	forEachVariant(t, func(t *testing.T, v variant) {
		if v.class != "evloop" && v.class != "auto" {
			t.Skip("the blocking and goroutine classes accept in loops of their own (TestFDExhaustion)")
		}
		s := start(t, v.class, append([]string{"-w", "1"}, v.args...)...)
		dumpLogOnFailure(t, s)
		mustGet(t, s.Addr, "/")
		pid := workers(s.Pid())
		if len(pid) != 1 {
			t.Fatalf("want one worker, have %v", pid)
		}
		held := openConns(t, s.Addr, 8, true)
		restore := starveFDs(t, pid[0])
		pending := openConns(t, s.Addr, 4, false) // queued: the worker cannot accept them now
		for _, c := range pending {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: chaos\r\n\r\n"); err != nil {
				t.Fatalf("pending connection: %v", err)
			}
		}
		time.Sleep(time.Second) // several failed accepts and back-offs
		for i, c := range held {
			if got := askOn(c); got != 200 {
				t.Errorf("held connection %d while accept fails: status %d", i, got)
			}
		}
		restore()
		for i, c := range pending {
			if got := readStatus(c); got != 200 {
				t.Errorf("connection queued while accept failed (%d): status %d", i, got)
			}
		}
		if got := workers(s.Pid()); len(got) != 1 || got[0] != pid[0] {
			t.Fatalf("worker %d replaced by %v after accept failed: %s", pid[0], got,
				strings.Join(logLines(s.Log(), "level=ERROR"), " | "))
		}
		if len(logLines(s.Log(), "too many open files")) == 0 {
			t.Errorf("accept never failed: the test did not starve the worker of descriptors")
		}
		servedSoon(t, s.Addr, "the descriptors came back")
	})
}

// starveFDs sets pid's soft RLIMIT_NOFILE to 3, below every descriptor a
// worker has beyond stdio, so each new one fails with EMFILE; the
// returned function puts the old limit back.
func starveFDs(t *testing.T, pid int) (restore func()) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatalf("read RLIMIT_NOFILE of %d: %v", pid, err)
	}
	starved := old
	starved.Cur = 3
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &starved, nil); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE of %d: %v", pid, err)
	}
	var once stdsync.Once
	restore = func() {
		once.Do(func() {
			if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
				t.Errorf("restore RLIMIT_NOFILE of %d: %v", pid, err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// askOn sends one keep-alive GET on c and returns the answer's status
// (0 if none came).
func askOn(c net.Conn) int {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: chaos\r\n\r\n"); err != nil {
		return 0
	}
	return readStatus(c)
}

// readStatus reads one response from c within a generous deadline and
// returns its status (0 if none came).
func readStatus(c net.Conn) int {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
