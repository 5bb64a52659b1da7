package evloop

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/multiserve/multiserve/apps"
	"github.com/multiserve/multiserve/proxyheaders"
	"github.com/multiserve/multiserve/workers"
)

// memConn is a gnet.Conn held in memory: OnTraffic reads in from it and
// writes to a counter, so a benchmark measures evloop's per-request path
// (parse, request, handler, response, batching) without the kernel. Only
// the methods that path calls are implemented; the rest panic.
type memConn struct {
	gnet.Conn
	in   []byte
	out  int
	keep bool // record what is written in sent
	sent []byte
	ctx  any
}

var memRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func (c *memConn) Peek(n int) ([]byte, error) {
	if n < 0 || n > len(c.in) {
		return c.in, nil
	}
	return c.in[:n], nil
}

func (c *memConn) Discard(n int) (int, error) {
	c.in = c.in[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	c.out += len(p)
	if c.keep {
		c.sent = append(c.sent, p...)
	}
	return len(p), nil
}
func (c *memConn) InboundBuffered() int      { return len(c.in) }
func (c *memConn) OutboundBuffered() int     { return 0 }
func (c *memConn) Context() any              { return c.ctx }
func (c *memConn) SetContext(v any)          { c.ctx = v }
func (c *memConn) RemoteAddr() net.Addr      { return memRemote }
func (c *memConn) EventLoop() gnet.EventLoop { return nil }

// Fd: there is no socket, so a lingering close fails over to closing at once.
func (c *memConn) Fd() int { return -1 }

// wrkRequest is what wrk sends on each kept-alive request.
const wrkRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"

// benchInline answers wrk's request on one connection b.N times through
// OnTraffic, one request per event as wrk's connections send them.
func benchInline(b *testing.B, h http.Handler, reuse bool) { benchInlineClass(b, h, reuse, false) }

// benchInlineClass is benchInline under evloop or auto; under auto, the
// route is promoted first, so every request runs inline, measured.
func benchInlineClass(b *testing.B, h http.Handler, reuse, auto bool) {
	cfg := testConfig()
	cfg.EvloopReuseRequests = reuse
	cfg.AutoThreshold = time.Second // a cold first request must not demote the route
	s := newServer(&workers.Env{Handler: h, Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, auto)
	if auto {
		rt := s.routes.Lookup(httptest.NewRequest("GET", "/", nil))
		for range cfg.AutoSamples {
			s.routes.Observe(rt, 0, false)
		}
	}
	c := &memConn{}
	if _, act := s.OnOpen(c); act != gnet.None {
		b.Fatal("OnOpen refused")
	}
	req := []byte(wrkRequest)
	b.ReportAllocs()
	for b.Loop() {
		c.in = req
		if s.OnTraffic(c) != gnet.None || len(c.in) != 0 {
			b.Fatal("request not answered")
		}
	}
	if c.out < b.N*100 {
		b.Fatalf("%d response bytes for %d requests", c.out, b.N)
	}
}

// BenchmarkInlineHello: evloop's inline path for apps.Hello, no middleware.
func BenchmarkInlineHello(b *testing.B) { benchInline(b, apps.Hello(), false) }

// BenchmarkAutoInlineHello: BenchmarkInlineHello under auto, its route
// promoted: what measuring and placing a route costs on the inline path.
func BenchmarkAutoInlineHello(b *testing.B) { benchInlineClass(b, apps.Hello(), false, true) }

// BenchmarkInlineMux and BenchmarkAutoInlineMux: the same with the
// application a ServeMux, whose pattern is auto's route key.
func BenchmarkInlineMux(b *testing.B)     { benchInline(b, helloMux(), false) }
func BenchmarkAutoInlineMux(b *testing.B) { benchInlineClass(b, helloMux(), false, true) }

func helloMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range []string{"GET /item/{id}", "POST /item/{id}", "GET /static/", "GET /healthz"} {
		mux.Handle(p, http.NotFoundHandler())
	}
	mux.Handle("GET /{$}", apps.Hello())
	return mux
}

// BenchmarkInlineHelloReuse: the same with evloop_reuse_requests (Request, URL
// and Header map recycled: no allocation but h1's shared string chunks).
func BenchmarkInlineHelloReuse(b *testing.B) { benchInline(b, apps.Hello(), true) }

// BenchmarkInlineHelloProxyHeaders: the same behind the default
// forwarded-header policy the worker installs (multiserve.go).
func BenchmarkInlineHelloProxyHeaders(b *testing.B) {
	h, err := proxyheaders.Wrap(apps.Hello(), testConfig())
	if err != nil {
		b.Fatal(err)
	}
	benchInline(b, h, false)
}
