package evloop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/multiserve/multiserve/internal/testwait"
)

// connBuffers returns the largest inbound and outbound bytes gnet holds
// for any one connection of hs, read on each connection's loop.
func connBuffers(t *testing.T, hs *harness) (in, out int) {
	t.Helper()
	for _, ls := range hs.s.loopList() {
		done := make(chan [2]int, 1)
		err := ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			var m [2]int
			for hc := range ls.conns {
				m[0] = max(m[0], hc.c.InboundBuffered())
				m[1] = max(m[1], hc.c.OutboundBuffered())
			}
			done <- m
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-done:
			in, out = max(in, m[0]), max(out, m[1])
		case <-time.After(20 * time.Second):
			t.Fatal("loop did not answer")
		}
	}
	return in, out
}

// rawClient dials with a small receive buffer, so that a client that does
// not read leaves the server's output queued in the server.
func rawClient(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := nc.(*net.TCPConn)
	_ = tc.SetReadBuffer(4096)
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// TestEpollFD: the reflection into gnet finds each loop's epoll
// descriptor (the layout is gnet v2.9.7's; see TestGnetVersionPinned).
func TestEpollFD(t *testing.T) {
	hs := startServer(t, testConfig(), pathHandler)
	c := dial(t, hs.addrs[0])
	c.send(get("/x"))
	c.read()
	for _, ls := range hs.s.loopList() {
		link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(ls.epfd))
		if err != nil || link != "anon_inode:[eventpoll]" {
			t.Fatalf("epfd %d: %q %v", ls.epfd, link, err)
		}
	}
}

// bigHandler answers ?size bytes in 32 KiB writes.
var bigHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("size"))
	chunk := []byte(strings.Repeat("x", 32<<10))
	w.Header().Set("Content-Length", strconv.Itoa(n))
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := w.Write(chunk[:k]); err != nil {
			return
		}
		n -= k
	}
})

// TestNonReadingClientBounded: a client that pipelines requests for large
// responses and reads nothing holds at most about evloop_conn_buffer of
// output in the server (off the loop; inline, inlineCap times that), is
// cut (inline: at the cap; off the loop: once its output made no progress
// for header_timeout), and a normal client is served on the same loop.
func TestNonReadingClientBounded(t *testing.T) {
	const bound = 256 << 10
	for _, threads := range []int{0, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			cfg := testConfig()
			cfg.Threads = threads
			cfg.EvloopConnBuffer = bound
			cfg.HeaderTimeout = time.Second
			hs := startServer(t, cfg, bigHandler)
			bad := rawClient(t, hs.addrs[0])
			req := "GET /?size=" + strconv.Itoa(8<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n"
			if _, err := io.WriteString(bad, strings.Repeat(req, 10)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			peak := 0
			for range 5 {
				_, out := connBuffers(t, hs)
				peak = max(peak, out)
				time.Sleep(50 * time.Millisecond)
			}
			limit := bound + 2*flushAt // an off-loop handler waits above the bound
			if threads == 0 {
				limit = inlineCap*bound + 2*flushAt // an inline one is cut at its cap
			}
			if peak > limit {
				t.Errorf("a non-reading client has %d bytes queued in the server, limit %d", peak, limit)
			}
			c := dial(t, hs.addrs[0])
			c.send(get("/?size=10"))
			if r := c.read(); r.StatusCode != 200 {
				t.Fatalf("normal client: %d", r.StatusCode)
			}
			// Still reading nothing past header_timeout, the client is cut:
			// only the normal client's connection is left.
			testwait.Until(t, waitLimit, "the stalled client cut", func() bool { return hs.s.conns.Load() == 1 })
			if _, out := connBuffers(t, hs); out != 0 {
				t.Fatalf("%d bytes still queued", out)
			}
		})
	}
}

// slowReader reads its body 16 KiB at a time with a pause between.
var slowReader = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 16<<10)
	var n int64
	for {
		k, err := r.Body.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	_, _ = fmt.Fprintf(w, "read %d", n)
})

// TestFastUploaderBounded: a client uploading faster than its handler
// reads leaves at most about evloop_conn_buffer buffered in the server
// (the socket stops being read), and the whole body still arrives.
func TestFastUploaderBounded(t *testing.T) {
	const bound, size = 256 << 10, 16 << 20
	cfg := testConfig()
	cfg.EvloopConnBuffer = bound
	hs := startServer(t, cfg, slowReader)
	c := dial(t, hs.addrs[0])
	c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n")
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(c.nc, io.LimitReader(zeros{}, size))
		sent <- err
	}()
	peak := 0
	for i := 0; i < 20; i++ {
		in, _ := connBuffers(t, hs)
		peak = max(peak, in)
		time.Sleep(20 * time.Millisecond)
	}
	if peak > bound+2*pauseAt {
		t.Errorf("%d bytes of upload buffered in the server, bound %d", peak, bound)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got := body(c.read()); got != "read "+strconv.Itoa(size) {
		t.Fatalf("got %q", got)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestSlowBodyCut: a client that stops sending its body is cut once
// nothing arrived for header_timeout, as the blocking classes' read
// deadline does, instead of holding the connection and its handler.
func TestSlowBodyCut(t *testing.T) {
	for _, threads := range []int{0, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			cfg := testConfig()
			cfg.Threads = threads
			cfg.HeaderTimeout = time.Second
			hs := startServer(t, cfg, slowReader)
			c := dial(t, hs.addrs[0])
			c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")
			start := time.Now()
			_, _ = io.Copy(io.Discard, c.nc) // a response, if any, then EOF
			if d := time.Since(start); d > 15*time.Second {
				t.Fatalf("a stalled body held the connection %v", d)
			}
			in, _ := connBuffers(t, hs)
			if in != 0 {
				t.Fatalf("connection still buffered %d", in)
			}
		})
	}
}
