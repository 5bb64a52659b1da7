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
