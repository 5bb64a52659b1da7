package workerstest

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/testwait"
)

type suiteCase struct {
	name string
	fn   func(t *testing.T, in *Instance, opt Options)
}

var cases = []suiteCase{
	{"Hello", testHello},
	{"KeepAlive", testKeepAlive},
	{"HTTP10", testHTTP10},
	{"Pipelining", testPipelining},
	{"ChunkedUpload10MiB", testChunkedUpload},
	{"Expect100Continue", testExpectContinue},
	{"Head", testHead},
	{"StreamedResponse", testStream},
	{"Limits", testLimits},
	{"Smuggling", testSmuggling},
	{"Panic", testPanic},
	{"Beat", testBeat},
}

// Run is the conformance suite for class: it starts the class once for the
// request cases and once more for the graceful-stop case.
func Run(t *testing.T, class string, opt Options) {
	in := Start(t, class, opt)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if slices.Contains(opt.Skip, c.name) {
				t.Skip("skipped by the class")
			}
			c.fn(t, in, opt)
		})
	}
	t.Run("RequestTimeout", func(t *testing.T) {
		if slices.Contains(opt.Skip, "RequestTimeout") {
			t.Skip("skipped by the class")
		}
		testRequestTimeout(t, class, opt)
	})
	t.Run("GracefulStop", func(t *testing.T) {
		if slices.Contains(opt.Skip, "GracefulStop") {
			t.Skip("skipped by the class")
		}
		testGracefulStop(t, class, opt)
	})
}

// client is a raw HTTP/1.1 connection for byte-exact requests.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read reads one response (interim ones included) and its whole body.
func (c *client) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// expectClosed asserts the server closes the connection without sending
// anything more.
func (c *client) expectClosed() {
	c.t.Helper()
	b, err := c.br.ReadByte()
	if err == nil {
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("expected the connection closed, got more bytes: %q", string(b)+string(rest))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("expected the connection closed, it stayed open")
	}
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n"
}

func expectStatus(t *testing.T, resp *http.Response, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status %d, want %d", resp.StatusCode, code)
	}
}

func testHello(t *testing.T, in *Instance, opt Options) {
	c := dial(t, in.Addr)
	c.send(get("/hello"))
	resp, body := c.read("GET")
	expectStatus(t, resp, 200)
	if body != helloBody {
		t.Fatalf("body %q", body)
	}
	if resp.ContentLength != int64(len(helloBody)) {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(helloBody))
	}
	if resp.Header.Get("Server") != "multiserve" {
		t.Errorf("Server header %q, want multiserve", resp.Header.Get("Server"))
	}
	if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
		t.Errorf("Date header %q: %v", resp.Header.Get("Date"), err)
	}
	if opt.NoKeepAlive {
		return
	}
	c.send(get("/nope"))
	resp, _ = c.read("GET")
	expectStatus(t, resp, 404)
}

func testKeepAlive(t *testing.T, in *Instance, opt Options) {
	c := dial(t, in.Addr)
	c.send(get("/hello"))
	resp, _ := c.read("GET")
	expectStatus(t, resp, 200)
	if opt.NoKeepAlive {
		if !resp.Close {
			t.Fatalf("class closes every connection but the response lacks Connection: close")
		}
		c.expectClosed()
		return
	}
	if resp.Close {
		t.Fatalf("HTTP/1.1 response closed the connection")
	}
	for i := 0; i < 3; i++ {
		c.send(get("/pid"))
		resp, _ = c.read("GET")
		expectStatus(t, resp, 200)
	}
	c.send("GET /hello HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
	resp, _ = c.read("GET")
	if !resp.Close {
		t.Errorf("Connection: close request: response not marked close")
	}
	c.expectClosed()
}

func testHTTP10(t *testing.T, in *Instance, opt Options) {
	c := dial(t, in.Addr)
	c.send("GET /hello HTTP/1.0\r\n\r\n")
	resp, body := c.read("GET")
	expectStatus(t, resp, 200)
	if body != helloBody {
		t.Fatalf("body %q", body)
	}
	c.expectClosed()
	if opt.NoKeepAlive {
		return
	}
	c = dial(t, in.Addr)
	c.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, _ = c.read("GET")
	if resp.Close {
		t.Fatalf("HTTP/1.0 keep-alive request: connection not kept")
	}
	c.send("GET /hello HTTP/1.0\r\n\r\n")
	resp, _ = c.read("GET")
	expectStatus(t, resp, 200)
	c.expectClosed()
}

func testPipelining(t *testing.T, in *Instance, opt Options) {
	c := dial(t, in.Addr)
	c.send(get("/hello") +
		"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nfirst" +
		"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n" +
		get("/pid"))
	resp, body := c.read("GET")
	expectStatus(t, resp, 200)
	if body != helloBody {
		t.Fatalf("1st body %q", body)
	}
	if opt.NoKeepAlive {
		c.expectClosed()
		return
	}
	for _, want := range []string{"first", "second"} {
		resp, body = c.read("POST")
		expectStatus(t, resp, 200)
		if body != want {
			t.Fatalf("pipelined body %q, want %q (out of order?)", body, want)
		}
	}
	resp, _ = c.read("GET")
	expectStatus(t, resp, 200)
}

// testChunkedUpload sends 10 MiB chunked to /sum and proves the handler
// reads it while it is still being sent: the second half goes out only
// once the handler has consumed bytes of the first.
func testChunkedUpload(t *testing.T, in *Instance, opt Options) {
	const total = 10 << 20
	data := make([]byte, total)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	rnd := rand.New(rand.NewPCG(1, 2))
	c := dial(t, in.Addr)
	c.send("POST /sum HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
	sendChunks := func(b []byte) {
		for len(b) > 0 {
			k := min(len(b), 64<<10-rnd.IntN(1000))
			c.send(fmt.Sprintf("%x\r\n", k))
			if _, err := c.c.Write(b[:k]); err != nil {
				t.Fatalf("send chunk: %v", err)
			}
			c.send("\r\n")
			b = b[k:]
		}
	}
	sendChunks(data[:total/2])
	if !testwait.For(20*time.Second, func() bool { return in.Handler.SumProgress.Load() > 0 }) {
		t.Fatalf("handler read nothing of the body while half of it was sent: body not streamed")
	}
	sendChunks(data[total/2:])
	c.send("0\r\n\r\n")
	resp, body := c.read("POST")
	expectStatus(t, resp, 200)
	want := fmt.Sprintf("%d %08x", total, crc32.ChecksumIEEE(data))
	if body != want {
		t.Fatalf("sum %q, want %q", body, want)
	}
}

func testExpectContinue(t *testing.T, in *Instance, opt Options) {
	c := dial(t, in.Addr)
	c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, _ := c.read("POST")
	expectStatus(t, resp, 100)
	c.send("hello")
	resp, body := c.read("POST")
	expectStatus(t, resp, 200)
	if body != "hello" {
		t.Fatalf("body %q", body)
	}
	// A handler that answers without reading gets no 100 Continue sent.
	c = dial(t, in.Addr)
	c.send("POST /hello HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, body = c.read("POST")
	expectStatus(t, resp, 200)
	if body != helloBody {
		t.Fatalf("body %q", body)
	}
}

func testHead(t *testing.T, in *Instance, opt Options) {
	c := dial(t, in.Addr)
	c.send("HEAD /hello HTTP/1.1\r\nHost: test\r\n\r\n")
	resp, body := c.read("HEAD")
	expectStatus(t, resp, 200)
	if body != "" {
		t.Fatalf("HEAD body %q", body)
	}
	if opt.NoKeepAlive {
		c.expectClosed()
		return
	}
	// No stray body bytes: the next response parses cleanly.
	c.send(get("/hello"))
	resp, body = c.read("GET")
	expectStatus(t, resp, 200)
	if body != helloBody {
		t.Fatalf("body after HEAD %q", body)
	}
}

func testStream(t *testing.T, in *Instance, opt Options) {
	const n = 1<<20 + 123
	c := dial(t, in.Addr)
	c.send(get(fmt.Sprintf("/stream?n=%d", n)))
	resp, body := c.read("GET")
	expectStatus(t, resp, 200)
	if len(body) != n {
		t.Fatalf("streamed %d bytes, want %d", len(body), n)
	}
	if !opt.NoKeepAlive && (len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked") {
		t.Errorf("flushed large response not chunked: %v", resp.TransferEncoding)
	}
}

func testLimits(t *testing.T, in *Instance, opt Options) {
	long := strings.Repeat("a", in.Config.LimitRequestLine+10)
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"line", "GET /" + long + " HTTP/1.1\r\nHost: test\r\n\r\n", 414},
		{"field size", "GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: " + strings.Repeat("b", in.Config.LimitRequestFieldSize+10) + "\r\n\r\n", 431},
		{"field count", "GET /hello HTTP/1.1\r\nHost: test\r\n" + strings.Repeat("X-F: 1\r\n", in.Config.LimitRequestFields+1) + "\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, in.Addr)
			c.send(tc.req)
			resp, _ := c.read("GET")
			expectStatus(t, resp, tc.status)
			c.expectClosed()
		})
	}
}

func testSmuggling(t *testing.T, in *Instance, opt Options) {
	smuggled := get("/pid")
	for _, tc := range []struct{ name, req string }{
		{"CL+TE", "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"double CL", "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + smuggled},
		{"CL list", "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5, 5\r\n\r\nhello" + smuggled},
		{"TE not chunked last", "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled},
		{"space before colon", "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length : 5\r\n\r\nhello" + smuggled},
		{"obs-fold", "GET /hello HTTP/1.1\r\nHost: test\r\nX-A: 1\r\n  folded\r\n\r\n" + smuggled},
		{"bad chunk size", "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + smuggled},
		{"bad chunk unread", "POST /hello HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + smuggled},
		{"bad version", "GET /hello HTTP/1.x\r\nHost: test\r\n\r\n" + smuggled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, in.Addr)
			c.send(tc.req)
			resp, _ := c.read("POST")
			expectStatus(t, resp, 400)
			if !resp.Close {
				t.Errorf("400 without Connection: close")
			}
			c.expectClosed()
		})
	}
}

func testPanic(t *testing.T, in *Instance, opt Options) {
	c := dial(t, in.Addr)
	c.send(get("/panic"))
	resp, _ := c.read("GET")
	expectStatus(t, resp, 500)
	c.expectClosed()
	c = dial(t, in.Addr)
	c.send(get("/hello"))
	resp, _ = c.read("GET")
	expectStatus(t, resp, 200)
	if !strings.Contains(in.Logs(), "panic") {
		t.Errorf("no log line for the handler panic")
	}
}

func testBeat(t *testing.T, in *Instance, opt Options) {
	if !testwait.For(5*time.Second, func() bool { return in.Beats() > 0 }) {
		t.Fatalf("env.Beat never called")
	}
	// Idle, the worker must keep beating (the arbiter kills silent workers).
	n := in.Beats()
	if !testwait.For(5*time.Second, func() bool { return in.Beats() > n }) {
		t.Fatalf("env.Beat not called again while idle")
	}
}

// testGracefulStop: a slow in-flight request finishes after cancel, an idle
// keep-alive connection is closed, Serve returns nil, nothing new is served.
func testGracefulStop(t *testing.T, class string, opt Options) {
	in := Start(t, class, opt)
	var idle *client
	if !opt.NoKeepAlive {
		idle = dial(t, in.Addr)
		idle.send(get("/hello"))
		idle.read("GET")
	}
	busy := dial(t, in.Addr)
	busy.send(get("/sleep?d=500ms"))
	if !testwait.For(10*time.Second, func() bool { return in.Handler.Sleeping.Load() > 0 }) {
		t.Fatalf("/sleep never started")
	}
	done := make(chan error, 1)
	go func() { done <- in.Stop(20 * time.Second) }()
	resp, body := busy.read("GET")
	expectStatus(t, resp, 200)
	if body != "slept" {
		t.Fatalf("in-flight body %q", body)
	}
	if !resp.Close && !opt.NoKeepAlive {
		t.Errorf("in-flight response during stop lacks Connection: close")
	}
	busy.expectClosed()
	if idle != nil {
		idle.expectClosed()
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The listening socket is still open (the arbiter owns it) but this
	// worker no longer accepts: nothing answers.
	late := dial(t, in.Addr)
	late.send(get("/hello"))
	_ = late.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if b, err := late.br.ReadByte(); err == nil {
		t.Fatalf("a stopped worker answered a new connection (%q)", b)
	}
}

// testRequestTimeout: request_timeout cancels the handler's context and the
// client gets a 503 when nothing was sent; the worker keeps serving.
func testRequestTimeout(t *testing.T, class string, opt Options) {
	o := opt
	o.Config = func(c *config.Config) {
		if opt.Config != nil {
			opt.Config(c)
		}
		c.RequestTimeout = 100 * time.Millisecond
	}
	in := Start(t, class, o)
	c := dial(t, in.Addr)
	c.send(get("/sleep?d=30s"))
	resp, body := c.read("GET")
	expectStatus(t, resp, 503)
	if body == "slept" {
		t.Fatalf("the timed-out handler's body reached the client")
	}
	c = dial(t, in.Addr)
	c.send(get("/hello"))
	resp, _ = c.read("GET")
	expectStatus(t, resp, 200)
}
