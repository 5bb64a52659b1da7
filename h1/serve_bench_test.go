package h1

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// loopConn is an in-memory net.Conn that delivers the same request n times
// and discards responses: it measures the engine's per-request cost
// without the kernel.
type loopConn struct {
	req  []byte
	left int
	off  int
	out  int64
}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.req[c.off:])
	c.off += n
	if c.off == len(c.req) {
		c.off = 0
		c.left--
	}
	return n, nil
}

func (c *loopConn) Write(p []byte) (int, error)        { c.out += int64(len(p)); return len(p), nil }
func (c *loopConn) Close() error                       { return nil }
func (c *loopConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *loopConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9} }
func (c *loopConn) SetDeadline(t time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(t time.Time) error { return nil }

// BenchmarkServeKeepAlive: one browser request answered with a small body
// per op on a kept-alive connection (parse, *http.Request, handler,
// response serialisation).
func BenchmarkServeKeepAlive(b *testing.B) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, World!")
	})}
	b.ReportAllocs()
	b.ResetTimer()
	lc := &loopConn{req: []byte(browserRequest), left: b.N}
	srv.NewConn(lc).Serve(context.Background(), false)
}

// BenchmarkTCPKeepAlive: sequential requests on one loopback connection
// (client cost included); /watch compares Server.WatchClient's overhead.
func BenchmarkTCPKeepAlive(b *testing.B) {
	for _, watch := range []bool{false, true} {
		name := "plain"
		if watch {
			name = "watch"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			srv := &Server{WatchClient: watch, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "Hello, World!")
			})}
			go func() {
				nc, err := ln.Accept()
				if err == nil {
					srv.NewConn(nc).Serve(context.Background(), false)
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			buf := make([]byte, 4096)
			for b.Loop() {
				c.Write(req)
				// The response is small: one read holds all of it.
				if n, err := c.Read(buf); err != nil || n < 100 {
					b.Fatal(n, err)
				}
			}
		})
	}
}

// BenchmarkServeConnPerRequest: one connection per op carrying one
// request, answered and closed, as the sync class serves every request
// (NewConn, Serve, Close; no kernel).
func BenchmarkServeConnPerRequest(b *testing.B) {
	srv := &Server{DisableKeepAlive: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, World!")
	})}
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nConnection: close\r\n\r\n")
	ctx, cancel := context.WithCancel(context.Background()) // a worker's context can be cancelled
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		c := srv.NewConn(&loopConn{req: req, left: 1})
		c.Serve(ctx, false)
		c.Close()
	}
}
