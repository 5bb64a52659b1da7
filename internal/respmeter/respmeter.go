// Package respmeter is the ResponseWriter wrapper that the per-request
// middlewares (access log, scoreboard) share: it notes the final status and
// the body bytes while keeping Flusher, Hijacker, io.ReaderFrom (sendfile)
// and Unwrap (http.ResponseController) working.
package respmeter

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
)

// Recorder wraps the server's ResponseWriter for one request.
type Recorder struct {
	http.ResponseWriter
	Status int   // 0 until a final (non-1xx) status is sent
	Bytes  int64 // body bytes written
}

var pool = sync.Pool{New: func() any { return new(Recorder) }}

// Get returns a pooled Recorder wrapping w.
func Get(w http.ResponseWriter) *Recorder {
	r := pool.Get().(*Recorder)
	*r = Recorder{ResponseWriter: w}
	return r
}

// Put returns r to the pool. Call it only when nothing can reach r any
// more (not after a panic whose handler may have kept it).
func Put(r *Recorder) {
	*r = Recorder{}
	pool.Put(r)
}

// WriteHeader passes informational 1xx statuses through without taking
// them as the response's status (103 Early Hints precedes the real one);
// 101 is final, as it ends HTTP on the connection.
func (w *Recorder) WriteHeader(code int) {
	if w.Status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Recorder) Write(p []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.Bytes += int64(n)
	return n, err
}

// WriteString keeps io.WriteString from converting s to a new []byte when
// the server's writer takes strings (h1's does; net/http's does too).
func (w *Recorder) WriteString(s string) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := io.WriteString(w.ResponseWriter, s)
	w.Bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher; it is a no-op when the underlying writer
// cannot flush.
func (w *Recorder) Flush() {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush() // ErrNotSupported: nothing to flush
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *Recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack implements http.Hijacker when the server's writer supports it
// (directly or via Unwrap) and returns http.ErrNotSupported otherwise.
func (w *Recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.Status == 0 {
		w.Status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// ReadFrom keeps the server's sendfile path (http.ServeContent).
func (w *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.Bytes += n
	return n, err
}

// writerOnly hides ReadFrom so io.Copy cannot recurse into it.
type writerOnly struct{ io.Writer }
