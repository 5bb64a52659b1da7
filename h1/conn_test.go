package h1_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
)

// testServer serves srv on 127.0.0.1:0, a goroutine per connection, until
// cleanup (which waits for every connection goroutine).
func testServer(t *testing.T, h http.Handler, tweak func(*config.Config, *h1.Server)) (string, *bytes.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	logs := &syncBuffer{}
	srv := &h1.Server{Handler: h, Config: cfg, Log: slog.New(slog.NewTextHandler(logs, nil))}
	if tweak != nil {
		tweak(cfg, srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.NewConn(nc).Serve(ctx, false)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), &logs.buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read(method string) (*http.Response, string, error) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func (r *rawConn) closed() bool {
	_, err := r.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

const get = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"

func TestRequestTimeout503(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		io.WriteString(w, "late") // must not reach the client
	}), func(c *config.Config, _ *h1.Server) { c.RequestTimeout = 50 * time.Millisecond })
	c := dialRaw(t, addr)
	c.send(get)
	resp, body, _ := c.read("GET")
	if resp.StatusCode != 503 || !resp.Close || strings.Contains(body, "late") {
		t.Fatalf("status %d close %v body %q", resp.StatusCode, resp.Close, body)
	}
	if !c.closed() {
		t.Fatal("connection kept after a timed-out request")
	}
}

func TestRequestTimeoutAfterCommit(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "early")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}), func(c *config.Config, _ *h1.Server) { c.RequestTimeout = 50 * time.Millisecond })
	c := dialRaw(t, addr)
	c.send(get)
	resp, body, _ := c.read("GET")
	if resp.StatusCode != 200 || body != "early" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

func TestUnreadBodyDrained(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), nil)
	c := dialRaw(t, addr)
	small := strings.Repeat("x", 100<<10)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 102400\r\n\r\n" + small)
	resp, _, _ := c.read("POST")
	if resp.Close {
		t.Fatal("a 100 KiB unread body should be drained, not close the connection")
	}
	c.send(get)
	if resp, _, _ = c.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("next request: %d", resp.StatusCode)
	}
	// Beyond the drain bound: answered, then closed, body never read whole.
	c = dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10485760\r\n\r\n" + small)
	resp, _, _ = c.read("POST")
	if !resp.Close || !c.closed() {
		t.Fatal("a 10 MiB unread body must close the connection")
	}
}

func TestExpectContinueUnreadCloses(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}), nil)
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, _, _ := c.read("POST")
	if resp.StatusCode != 403 || !resp.Close || !c.closed() {
		t.Fatalf("status %d close %v: want 403 and close without waiting for the body", resp.StatusCode, resp.Close)
	}
}

func TestBodyLimit413BeforeHandler(t *testing.T) {
	called := false
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }),
		func(c *config.Config, _ *h1.Server) { c.LimitRequestBody = 10 })
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
	resp, _, _ := c.read("POST")
	// resp.Close: the response said Connection: close (net/http moves
	// that header into Close and deletes it from Header).
	if resp.StatusCode != 413 || !resp.Close || called || !c.closed() {
		t.Fatalf("status %d close %v handler called %v", resp.StatusCode, resp.Close, called)
	}
	// Chunked bodies are counted as they arrive.
	c = dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n")
	if resp, _, _ = c.read("POST"); resp.StatusCode != 413 {
		t.Fatalf("chunked over limit: %d", resp.StatusCode)
	}
}

func TestHeaderAndIdleTimeouts(t *testing.T) {
	addr, _ := testServer(t, http.NotFoundHandler(), func(c *config.Config, _ *h1.Server) {
		c.HeaderTimeout = 100 * time.Millisecond
		c.Keepalive = 100 * time.Millisecond
	})
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.1\r\nHost:") // and stall
	if !c.closed() {
		t.Fatal("a stalled head was not cut by header_timeout")
	}
	c = dialRaw(t, addr)
	c.send(get)
	c.read("GET")
	if !c.closed() {
		t.Fatal("an idle keep-alive connection outlived keepalive")
	}
}

func TestKeepaliveZeroDisables(t *testing.T) {
	addr, _ := testServer(t, http.NotFoundHandler(), func(c *config.Config, s *h1.Server) { c.Keepalive = 0 })
	c := dialRaw(t, addr)
	c.send(get)
	if resp, _, _ := c.read("GET"); !resp.Close {
		t.Fatal("keepalive=0 must close every connection")
	}
}

func TestDisableKeepAlive(t *testing.T) {
	addr, _ := testServer(t, http.NotFoundHandler(), func(_ *config.Config, s *h1.Server) { s.DisableKeepAlive = true })
	c := dialRaw(t, addr)
	c.send(get + get)
	resp, _, _ := c.read("GET")
	if !resp.Close || !c.closed() {
		t.Fatal("DisableKeepAlive: response not closed")
	}
}

func TestHTTP10StreamIsCloseDelimited(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			w.Write(bytes.Repeat([]byte("z"), 5000))
			w.(http.Flusher).Flush()
		}
	}), nil)
	c := dialRaw(t, addr)
	c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body, err := c.read("GET")
	if err != nil || len(body) != 15000 || len(resp.TransferEncoding) != 0 || !resp.Close {
		t.Fatalf("err %v len %d TE %v close %v", err, len(body), resp.TransferEncoding, resp.Close)
	}
}

func TestResponseFraming(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "abc")
		case "/over":
			w.Header().Set("Content-Length", "2")
			if _, err := io.WriteString(w, "abc"); !errors.Is(err, http.ErrContentLength) {
				panic("expected ErrContentLength")
			}
		case "/204":
			w.WriteHeader(204)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic("expected ErrBodyNotAllowed")
			}
		case "/103":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(103)
			io.WriteString(w, "<html>")
		case "/inject":
			w.Header().Set("X-Evil", "a\r\nSet-Cookie: x=1")
			io.WriteString(w, "ok")
		}
	}), nil)
	c := dialRaw(t, addr)
	c.send("GET /over HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, body, _ := c.read("GET"); resp.ContentLength != 2 || body != "" {
		t.Fatalf("/over: CL %d body %q", resp.ContentLength, body)
	}
	c = dialRaw(t, addr)
	c.send("GET /204 HTTP/1.1\r\nHost: h\r\n\r\nGET /103 HTTP/1.1\r\nHost: h\r\n\r\nGET /inject HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, _, _ := c.read("GET"); resp.StatusCode != 204 || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("/204: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _, _ := c.read("GET"); resp.StatusCode != 103 || resp.Header.Get("Link") == "" {
		t.Fatalf("/103 interim: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, body, _ := c.read("GET"); resp.StatusCode != 200 || body != "<html>" || resp.Header.Get("Content-Type") == "" {
		t.Fatalf("/103 final: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _, _ := c.read("GET"); resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("header injection: %v", resp.Header)
	}
	c = dialRaw(t, addr)
	c.send("GET /short HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, _, err := c.read("GET"); err == nil {
		t.Fatal("/short: a body shorter than its Content-Length must end with the connection closed")
	}
}

func TestAbortHandlerIsSilent(t *testing.T) {
	addr, logs := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	}), nil)
	c := dialRaw(t, addr)
	c.send(get)
	if b, err := c.br.ReadByte(); err == nil {
		t.Fatalf("aborted handler produced a response starting %q", b)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Fatal("http.ErrAbortHandler was logged")
	}
}

func TestTrailersAndContext(t *testing.T) {
	gotCtx := make(chan context.Context, 1)
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, string(b)+"|"+r.Trailer.Get("X-Checksum")+"|"+r.Host+"|"+r.RemoteAddr[:10])
		gotCtx <- r.Context()
	}), nil)
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Checksum: 42\r\n\r\n")
	_, body, _ := c.read("POST")
	if body != "abc|42|example|127.0.0.1:" {
		t.Fatalf("body %q", body)
	}
	ctx := <-gotCtx
	if ctx.Err() != nil {
		t.Fatal("request context cancelled while the connection is open")
	}
	c.c.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("request context not cancelled when the connection closed")
	}
}

// connPair returns a client connection and the server side of it; both
// close at cleanup.
func connPair(t *testing.T) (cli, nc net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if cli, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if nc, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return cli, nc
}

func TestParkMode(t *testing.T) {
	srv := &h1.Server{Handler: http.NotFoundHandler()}
	cli, nc := connPair(t)
	conn := srv.NewConn(nc)
	defer conn.Close()
	br := bufio.NewReader(cli)
	for i := 0; i < 3; i++ {
		io.WriteString(cli, get)
		if st := conn.Serve(context.Background(), true); st != h1.StateIdle {
			t.Fatalf("round %d: state %v, want idle", i, st)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 404 {
			t.Fatalf("round %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	cli.Close()
	if st := conn.Serve(context.Background(), true); st != h1.StateClosed {
		t.Fatalf("after client close: %v", st)
	}
}

// notReadable says no data is waiting, as fdconn's poll would between the
// bytes of a slow client.
type notReadable struct{ net.Conn }

func (notReadable) Readable() (bool, error) { return false, nil }

// TestParkMidHead: in park mode, a partial head with nothing more to read
// returns StateIdle at once, keeping the bytes for the next Serve.
func TestParkMidHead(t *testing.T) {
	srv := &h1.Server{Handler: http.NotFoundHandler(), Config: config.Default()}
	cli, nc := connPair(t)
	cli.SetDeadline(time.Now().Add(10 * time.Second))
	conn := srv.NewConn(notReadable{nc})
	defer conn.Close()
	if !conn.HeadStart().IsZero() {
		t.Fatal("HeadStart set before any byte")
	}
	io.WriteString(cli, get[:10])
	before := time.Now()
	if st := conn.Serve(context.Background(), true); st != h1.StateIdle {
		t.Fatalf("partial head: state %v, want idle", st)
	}
	if hs := conn.HeadStart(); hs.Before(before) {
		t.Fatalf("parked mid-head: HeadStart %v, want after %v", hs, before)
	}
	io.WriteString(cli, get[10:])
	if st := conn.Serve(context.Background(), true); st != h1.StateIdle {
		t.Fatalf("rest of the head: state %v, want idle", st)
	}
	resp, err := http.ReadResponse(bufio.NewReader(cli), nil)
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("response: %v", err)
	}
	if !conn.HeadStart().IsZero() {
		t.Fatal("HeadStart set between requests")
	}
}

func TestWatchClientCancelsContext(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			close(started)
			select {
			case <-r.Context().Done():
				close(cancelled)
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, "ok")
	}), func(_ *config.Config, s *h1.Server) { s.WatchClient = true })
	c := dialRaw(t, addr)
	c.send(get + get) // pipelined, watched or not, both answered
	for i := 0; i < 2; i++ {
		if resp, body, _ := c.read("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	c.send(get) // a byte read by the watcher must start the next request
	if _, body, _ := c.read("GET"); body != "ok" {
		t.Fatalf("after watch: %q", body)
	}
	c.send("GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started
	c.c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("handler context not cancelled when the client went away")
	}
}

func TestStalledReaderIsCut(t *testing.T) {
	handlerDone := make(chan error, 1)
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				handlerDone <- err
				return
			}
		}
	}), func(c *config.Config, _ *h1.Server) { c.HeaderTimeout = 100 * time.Millisecond })
	c := dialRaw(t, addr)
	c.send(get) // and never read
	select {
	case err := <-handlerDone:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("write error %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped reading held the handler")
	}
}

// TestStopServesFirstRequest: a connection accepted before a graceful stop
// whose request arrives just after it is still answered (Connection:
// close), while an idle kept-alive connection is closed at once.
func TestStopServesFirstRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config.Default()
	cfg.RetireIdleTimeout = 300 * time.Millisecond
	srv := &h1.Server{Handler: http.NotFoundHandler(), Config: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := func() (*rawConn, chan h1.State) {
		c := dialRaw(t, ln.Addr().String())
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		st := make(chan h1.State, 1)
		go func() { st <- srv.NewConn(nc).Serve(ctx, false) }()
		return c, st
	}
	kept, keptState := serve()
	kept.send(get)
	kept.read("GET")
	idle, idleState := serve()
	idle.send(get)
	idle.read("GET")
	fresh, freshState := serve()
	cancel()
	time.Sleep(100 * time.Millisecond) // the stop reaches the connections asynchronously
	// A request on a kept-alive connection while the worker retires is
	// answered, with Connection: close.
	kept.send(get)
	resp, _, _ := kept.read("GET")
	if resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("request on a kept-alive connection after stop: %d close %v", resp.StatusCode, resp.Close)
	}
	<-keptState
	// One that stays idle is closed after retire_idle_timeout, with a FIN.
	<-idleState
	if _, err := idle.br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after retire_idle_timeout: %v, want EOF", err)
	}
	fresh.send(get)
	resp, _, _ = fresh.read("GET")
	if resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("first request after stop: %d close %v", resp.StatusCode, resp.Close)
	}
	if st := <-freshState; st != h1.StateClosed {
		t.Fatalf("state %v", st)
	}
	h1.WaitLingering()
}

// TestPanicAfterCommitTruncates: a handler that panics mid-stream must not
// leave the client with what looks like a complete response.
func TestPanicAfterCommitTruncates(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("mid-stream")
	}), nil)
	c := dialRaw(t, addr)
	c.send(get)
	resp, body, err := c.read("GET")
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("status %d body %q err %v: want a truncated chunked body", resp.StatusCode, body, err)
	}
}

func TestHijack(t *testing.T) {
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer nc.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo: " + line)
		rw.Flush()
	}), func(_ *config.Config, s *h1.Server) { s.WatchClient = true })
	c := dialRaw(t, addr)
	// The first line is sent with the request: it was read (buffered) by
	// the engine and must reach the hijacker first.
	c.send("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("%v %v", resp, err)
	}
	line, err := c.br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("%q %v", line, err)
	}
	if !c.closed() {
		t.Fatal("hijacker closed, connection still open")
	}
}
