//go:build chaos

package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testwait"
)

// hostile runs misbehaving connections until its context ends.
type hostile struct {
	addr string
	wg   stdsync.WaitGroup

	connected atomic.Int64 // successful dials
	dropped   atomic.Int64 // connections the server closed or answered (timeout)
}

// spawn runs fn in n goroutines, each repeating it until ctx ends (a
// bound of 10,000 rounds each).
func (h *hostile) spawn(ctx context.Context, n int, fn func(ctx context.Context) bool) {
	for range n {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for i := 0; i < 10_000 && ctx.Err() == nil; i++ {
				if !fn(ctx) {
					// Dial failed: do not spin.
					sleepCtx(ctx, 50*time.Millisecond)
				}
			}
		}()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (h *hostile) dial(ctx context.Context) net.Conn {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil
	}
	h.connected.Add(1)
	return c
}

// waitClosed waits up to d (or ctx) for the server to close or answer c;
// it reports whether it did.
func (h *hostile) waitClosed(ctx context.Context, c net.Conn, d time.Duration) bool {
	end := time.Now().Add(d)
	buf := make([]byte, 512)
	for ctx.Err() == nil && time.Now().Before(end) {
		_ = c.SetReadDeadline(time.Now().Add(min(200*time.Millisecond, time.Until(end))))
		if _, err := c.Read(buf); err == nil || !isTimeout(err) {
			h.dropped.Add(1)
			return true
		}
	}
	return false
}

// slowloris sends a request head one byte per second; when the server
// drops it, it reconnects.
func (h *hostile) slowloris(ctx context.Context) bool {
	c := h.dial(ctx)
	if c == nil {
		return false
	}
	defer c.Close()
	req := []byte("GET /slow HTTP/1.1\r\nHost: chaos\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n")
	for i := 0; i < len(req) && ctx.Err() == nil; i++ {
		if _, err := c.Write(req[i : i+1]); err != nil {
			h.dropped.Add(1)
			return true
		}
		if h.waitClosed(ctx, c, time.Second) { // also the 1 byte/s pace
			return true
		}
	}
	return true
}

// silent connects and never sends.
func (h *hostile) silent(ctx context.Context) bool {
	c := h.dial(ctx)
	if c == nil {
		return false
	}
	defer c.Close()
	h.waitClosed(ctx, c, time.Hour)
	return true
}

// slowReader asks for a large response and reads it 1 KiB per 100 ms
// through a small receive buffer.
func (h *hostile) slowReader(ctx context.Context) bool {
	d := net.Dialer{Timeout: 2 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return false
	}
	h.connected.Add(1)
	defer c.Close()
	if _, err := io.WriteString(c, "GET /?size=64m HTTP/1.1\r\nHost: chaos\r\n\r\n"); err != nil {
		return true
	}
	buf := make([]byte, 1024)
	for ctx.Err() == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			h.dropped.Add(1)
			return true
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return true
}

// resetMidUpload sends half of a declared 1 MiB body, then resets.
func (h *hostile) resetMidUpload(ctx context.Context) bool {
	c := h.dial(ctx)
	if c == nil {
		return false
	}
	_, _ = io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: chaos\r\nContent-Length: 1048576\r\n\r\n")
	_, _ = c.Write(make([]byte, 512<<10))
	abort(c)
	sleepCtx(ctx, 50*time.Millisecond)
	return true
}

// resetMidResponse reads the start of a large response, then resets.
func (h *hostile) resetMidResponse(ctx context.Context) bool {
	c := h.dial(ctx)
	if c == nil {
		return false
	}
	_, _ = io.WriteString(c, "GET /?size=4m HTTP/1.1\r\nHost: chaos\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.ReadFull(c, make([]byte, 4096))
	abort(c)
	sleepCtx(ctx, 50*time.Millisecond)
	return true
}

// abort closes c with an RST (SO_LINGER 0).
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// TestSlowClients: connections sending their request a byte a second
// while a normal client measures latency. goroutine, evloop and threaded
// keep serving; sync (one request per process by design) is protected by
// header_timeout, so it runs with --header-timeout 2s and as many slow
// clients as it has workers, twice over.
func TestSlowClients(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		const nWorkers = 2
		nSlow := pick(200, 500)
		args := []string{"-w", "2", "echo"}
		note := ""
		if class == "sync" {
			nSlow = 2 * nWorkers
			args = []string{"-w", "2", "--header-timeout", "2s", "echo"}
			note = fmt.Sprintf("(%d slow conns, header_timeout 2s)", nSlow)
		}
		s := start(t, class, args...)
		dumpLogOnFailure(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		h := &hostile{addr: s.Addr}
		t.Cleanup(func() { cancel(); h.wg.Wait() })
		h.spawn(ctx, nSlow, h.slowloris)
		// Let the slow connections arrive before measuring.
		testwait.For(10*time.Second, func() bool { return h.connected.Load() >= int64(nSlow) })
		load, stop := startLoad(t, s.Addr, loadOpts{clients: 2, timeout: 10 * time.Second})
		time.Sleep(pick(3*time.Second, 5*time.Second)) // measurement window
		stop()
		cancel()
		h.wg.Wait()
		lat := load.latencies()
		p50, p99 := percentile(lat, 50), percentile(lat, 99)
		t.Logf("%s: %d slow clients (%d dials, %d dropped by the server): normal client p50 %v p99 %v; %v",
			class, nSlow, h.connected.Load(), h.dropped.Load(), p50.Round(time.Microsecond), p99.Round(time.Microsecond), load)
		addLoad(class, load)
		if len(lat) == 0 {
			note = strings.TrimSpace("no answer " + note)
		}
		summaryOf(class, func(cs *classSummary) { cs.slowP99, cs.slowNote = p99, note })
		if load.sent.Load() == 0 || load.failed.Load() != 0 {
			t.Errorf("normal client under %d slow clients: %v", nSlow, load)
		}
	})
}

// TestHostileClients: silent connections, slow readers and connections
// reset mid-body, one kind at a time so a failure names its cause, while a
// normal client keeps being served.
func TestHostileClients(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		s := start(t, class, hostileArgs(class)...)
		dumpLogOnFailure(t, s)
		h := &hostile{addr: s.Addr}
		for _, kind := range []struct {
			name string
			n    int
			fn   func(context.Context) bool
		}{
			{"silent", hostileCount(class, pick(50, 100)), h.silent},
			{"slow-reader", hostileCount(class, 2), h.slowReader},
			{"reset-mid-upload", 2, h.resetMidUpload},
			{"reset-mid-response", 2, h.resetMidResponse},
		} {
			ctx, cancel := context.WithCancel(context.Background())
			h.spawn(ctx, kind.n, kind.fn)
			load, stop := startLoad(t, s.Addr, loadOpts{clients: 2, timeout: 10 * time.Second})
			time.Sleep(pick(1500*time.Millisecond, 3*time.Second)) // exposure window
			stop()
			cancel()
			h.wg.Wait()
			t.Logf("%s: %d %s connections (%d hostile dials so far): normal client %v",
				class, kind.n, kind.name, h.connected.Load(), load)
			addLoad(class, load)
			if load.sent.Load() == 0 || load.failed.Load() != 0 {
				t.Errorf("normal client among %d %s connections: %v", kind.n, kind.name, load)
			}
		}
		if n := len(workers(s.Pid())); n != 3 {
			t.Logf("%s: %d workers after the hostile clients (want 3; a worker may be in replacement)", class, n)
		}
	})
}

// hostileArgs: three workers; sync gets a 2 s header_timeout, since each
// hostile connection holds one of its processes. threaded gets 4 threads:
// a slow reader holds a thread while its response is written (blocking IO,
// as in gunicorn's gthread), so with the default single thread a worker
// holding one is as busy as a sync worker, and a kept-alive client already
// parked on that worker waits for it (seen: 1 timeout in 802 requests).
// The property under test is that free threads keep serving.
func hostileArgs(class string) []string {
	switch class {
	case "sync":
		return []string{"-w", "3", "--header-timeout", "2s", "sim"}
	case "threaded":
		return []string{"-w", "3", "--threads", "4", "sim"}
	}
	return []string{"-w", "3", "sim"}
}

// hostileCount is n, except for sync, where one connection holds a whole
// process (a silent one for header_timeout, a slow reader until its
// response is written): one hostile connection leaves two of three free.
func hostileCount(class string, n int) int {
	if class == "sync" {
		return 1
	}
	return n
}

// TestHugeUploadRefused: a 10 GiB Content-Length is answered 413 at once,
// while the client has sent only its head and a few bytes.
func TestHugeUploadRefused(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		s := start(t, class, "-w", "1", "--limit-request-body", "1048576", "echo")
		dumpLogOnFailure(t, s)
		c, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		head := "POST /upload HTTP/1.1\r\nHost: chaos\r\nContent-Length: 10737418240\r\n\r\n"
		sent, err := io.WriteString(c, head+"0123456789")
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no response after sending %d bytes of a 10 GiB upload: %v", sent, err)
		}
		resp.Body.Close()
		// net/http moves "Connection: close" into resp.Close and deletes
		// it from the header: Header.Get("Connection") is always "".
		t.Logf("%s: %s after the client sent %d bytes (Connection: close %v)", class, resp.Status, sent, resp.Close)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
		if !resp.Close {
			t.Errorf("413 without Connection: close, though the connection will close")
		}
		// The body was not read, so the connection must not be reused:
		// what follows would be parsed as the next request.
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); isTimeout(err) {
			t.Errorf("connection still open after a 413 whose body was not read (Connection: close %v)", resp.Close)
		}
		mustGet(t, s.Addr, "/")
	})
}
