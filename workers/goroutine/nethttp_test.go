package goroutine_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/tlsconf"
	"github.com/multiserve/multiserve/workers/goroutine"
	"github.com/multiserve/multiserve/workers/workerstest"
)

func netHTTP(c *config.Config) { c.HTTPEngine = "net/http" }

// TestNetHTTPConformance: the net/http engine passes the suite every class
// passes, its Limits and Smuggling cases included (the gate, gate.go).
func TestNetHTTPConformance(t *testing.T) {
	workerstest.Run(t, "goroutine", workerstest.Options{Config: netHTTP})
}

// rawExchange sends req on a new connection and returns the response and
// whether the server then closed the connection, sending nothing more.
func rawExchange(t *testing.T, addr, req string) (*http.Response, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = br.ReadByte() // a byte is a second (smuggled) response: not closed
	var ne net.Error
	return resp, err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestNetHTTPFraming: the framing cases net/http gets wrong by itself.
func TestNetHTTPFraming(t *testing.T) {
	in := workerstest.Start(t, "goroutine", workerstest.Options{Config: func(c *config.Config) {
		netHTTP(c)
		c.LimitRequestBody = 1 << 20
	}})
	smuggled := "GET /pid HTTP/1.1\r\nHost: t\r\n\r\n"
	for _, tc := range []struct {
		name, req string
		status    int
		closed    bool
	}{
		{"leading CRLF", "\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200, false},
		{"CL+TE", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, true},
		{"bad chunk unread", "POST /hello HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + smuggled, 400, true},
		{"HTTP/1.0+TE", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400, true},
		{"body over limit", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n", 413, true},
		{"chunk line over 4096", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1;x=" + strings.Repeat("a", 5000) + "\r\nx\r\n0\r\n\r\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, closed := rawExchange(t, in.Addr, tc.req)
			if tc.status != 0 && resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 0 && resp.StatusCode < 400 {
				t.Errorf("status %d, want an error", resp.StatusCode)
			}
			if closed != tc.closed {
				t.Errorf("connection closed %v, want %v", closed, tc.closed)
			}
		})
	}
}

// TestNetHTTPStalledClients: clients that stop sending a body or stop
// reading a response do not keep their worker_connections slot: each is
// cut after header_timeout, and a new client is served.
func TestNetHTTPStalledClients(t *testing.T) {
	in := workerstest.Start(t, "goroutine", workerstest.Options{Config: func(c *config.Config) {
		netHTTP(c)
		c.WorkerConnections = 4
		c.HeaderTimeout = time.Second
	}})
	var held []net.Conn
	for i := range 4 {
		c, err := net.Dial("tcp", in.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab"
		if i%2 == 1 {
			req = "GET /stream?n=50000000 HTTP/1.1\r\nHost: t\r\n\r\n"
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	start := time.Now()
	resp, _ := rawExchange(t, in.Addr, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Logf("a new client was served %v after %d stalled ones held every slot", time.Since(start).Round(time.Millisecond), len(held))
}

// TestNetHTTPUpgrade: once a handler hijacked the connection, the gate
// passes bytes unparsed (they are no longer HTTP/1).
func TestNetHTTPUpgrade(t *testing.T) {
	in := workerstest.Start(t, "goroutine", workerstest.Options{Config: netHTTP})
	c, err := net.Dial("tcp", in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /upgrade HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	raw := "\x00\x01 not HTTP at all\r\n\r\nGET"
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(raw))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != raw {
		t.Fatalf("echo %q, %v; want %q", got, err, raw)
	}
}

// TestNetHTTPOverTLS: under TLS, where the gate cannot parse, the limits
// are checked after net/http parsed the request, and a client that stops
// sending its HTTP/1.1 body is cut after header_timeout.
func TestNetHTTPOverTLS(t *testing.T) {
	files, err := tlsconf.WriteTestFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := workerstest.Start(t, "goroutine", workerstest.Options{Config: func(c *config.Config) {
		netHTTP(c)
		c.Certfile, c.Keyfile = files.Cert, files.Key
		c.HeaderTimeout = time.Second
	}})
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(files.CA)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("CA: %v", err)
	}
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", in.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		return c
	}
	c := dial()
	io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: t\r\n"+strings.Repeat("X-F: 1\r\n", in.Config.LimitRequestFields+1)+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("too many fields over TLS: %v %v", resp, err)
	}
	c = dial()
	start := time.Now()
	io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
	_, _ = io.Copy(io.Discard, c) // the echo handler's error answer, if any, then the close
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a stalled body over TLS held the connection %v", d)
	}
}

// TestNetHTTPHeldResponse: a response up to the native engine's 4 KiB is
// passed on whole with its Content-Length (net/http alone would chunk one
// over 2 KiB), and a handler that panics after its response went out gets
// its connection cut, the response unfinished.
func TestNetHTTPHeldResponse(t *testing.T) {
	cfg := config.Default()
	netHTTP(cfg)
	body := strings.Repeat("x", 3000)
	env, addr, heart := workerstest.NewEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
		if r.URL.Path == "/late-panic" {
			http.NewResponseController(w).Flush()
			panic("late")
		}
	}), cfg)
	workerstest.Serve(t, &goroutine.Worker{}, env, heart)
	resp, closed := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	if resp.ContentLength != int64(len(body)) || closed || resp.Header.Get("Server") != "multiserve" {
		t.Errorf("held response: Content-Length %d, closed %v, Server %q", resp.ContentLength, closed, resp.Header.Get("Server"))
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /late-panic HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("a response cut by a panic read whole (%d bytes, status %d)", len(b), resp.StatusCode)
	}
}
