package workerstest

import (
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// TestHandler is the suite's application:
//
//	/hello          "Hello, World!"
//	/echo           the request body back
//	/sum            reads the body incrementally: "<bytes> <crc32>"
//	/sleep?d=DUR    sleeps DUR (or until the request context ends), then "slept"
//	/panic          panics
//	/stream?n=N     N bytes in 32 KiB flushed writes (chunked)
//	/pid            the process id
//	/upgrade        hijacks the connection (101), then echoes raw bytes (501 where the ResponseWriter cannot hijack)
//	anything else   404
type TestHandler struct {
	// SumProgress is how many body bytes /sum has read so far (a client can
	// watch it to prove the body is streamed, not buffered whole).
	SumProgress atomic.Int64
	// Sleeping counts /sleep handlers currently running.
	Sleeping atomic.Int64
	// Requests counts every request the handler saw.
	Requests atomic.Int64
}

// NewTestHandler returns the suite's handler.
func NewTestHandler() *TestHandler { return &TestHandler{} }

const helloBody = "Hello, World!"

func (h *TestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.Requests.Add(1)
	switch r.URL.Path {
	case "/hello":
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, helloBody)
	case "/echo":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	case "/sum":
		h.sum(w, r)
	case "/sleep":
		h.sleep(w, r)
	case "/panic":
		panic("workerstest: /panic")
	case "/stream":
		stream(w, r)
	case "/pid":
		fmt.Fprint(w, os.Getpid())
	case "/upgrade":
		upgrade(w)
	default:
		http.NotFound(w, r)
	}
}

func (h *TestHandler) sum(w http.ResponseWriter, r *http.Request) {
	h.SumProgress.Store(0)
	crc := crc32.NewIEEE()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := r.Body.Read(buf)
		crc.Write(buf[:k])
		n += int64(k)
		h.SumProgress.Store(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	fmt.Fprintf(w, "%d %08x", n, crc.Sum32())
}

func (h *TestHandler) sleep(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("d"))
	if err != nil {
		http.Error(w, "bad d", http.StatusBadRequest)
		return
	}
	h.Sleeping.Add(1)
	defer h.Sleeping.Add(-1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
	io.WriteString(w, "slept")
}

func stream(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 0 {
		http.Error(w, "bad n", http.StatusBadRequest)
		return
	}
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	f, _ := w.(http.Flusher)
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := w.Write(chunk[:k]); err != nil {
			return
		}
		if f != nil {
			f.Flush()
		}
		n -= k
	}
}

// upgrade takes the connection over (as a WebSocket server would) and
// echoes whatever arrives until the client closes.
func upgrade(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusNotImplemented)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	if brw.Flush() != nil {
		return
	}
	io.Copy(c, brw)
}
