package accesslog

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/multiserve/multiserve/internal/reqmeta"
)

// Wrap returns a handler that serves with next and then writes one access
// log line to l. With a nil l it returns next unchanged, so callers need
// not special-case "no access log".
//
// The ResponseWriter next sees keeps http.Flusher, http.Hijacker and
// io.ReaderFrom (sendfile for static files) working when the underlying
// writer has them, and has Unwrap for http.ResponseController. If next
// panics, the line is still written (status 500 unless a status was
// already sent) and the panic continues to the server, which owns the
// recovery and its stack trace.
func Wrap(next http.Handler, l *Logger) http.Handler {
	if l == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recPool.Get().(*recorder)
		rec.reset(w)
		start := time.Now()
		meta := requestMeta(w, r, start)
		finished := false
		defer func() {
			if finished {
				return
			}
			// Panicking: log it without recovering, and do not pool rec,
			// which the server's recovery code may still reach.
			if rec.status == 0 {
				rec.status = http.StatusInternalServerError
			}
			l.log(r, rec, start, meta)
		}()
		next.ServeHTTP(rec, r)
		finished = true
		l.log(r, rec, start, meta)
		rec.reset(nil)
		recPool.Put(rec)
	})
}

// meta is what Wrap notes before the handler runs.
type meta struct {
	queue time.Duration
	rid   string
}

// requestMeta takes the request id (honoured or generated, set on the
// request and echoed in the response) and the queue time.
func requestMeta(w http.ResponseWriter, r *http.Request, now time.Time) meta {
	m := meta{queue: -1, rid: reqmeta.RequestID(r)}
	w.Header().Set(reqmeta.HeaderRequestID, m.rid)
	if reqmeta.HasQueueStart(r) {
		m.queue = reqmeta.QueueTime(r, now)
	}
	return m
}

func (l *Logger) log(r *http.Request, rec *recorder, start time.Time, m meta) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK // nothing written: the server sends 200 with no body
	}
	e := entry{start: start, dur: time.Since(start), status: status, bytes: rec.bytes, queue: m.queue, rid: m.rid}
	if rec.ResponseWriter != nil {
		e.header = rec.ResponseWriter.Header()
	}
	l.write(r, &e)
}

var recPool = sync.Pool{New: func() any { return new(recorder) }}

// recorder is the ResponseWriter a wrapped handler sees; it notes the
// final status and the body bytes.
type recorder struct {
	http.ResponseWriter
	status int // 0 until a final (non-1xx) status is sent
	bytes  int64
}

func (w *recorder) reset(rw http.ResponseWriter) {
	*w = recorder{ResponseWriter: rw}
}

// WriteHeader passes informational 1xx statuses through without taking
// them as the response's status (103 Early Hints precedes the real one);
// 101 is final, as it ends HTTP on the connection.
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher; it is a no-op when the underlying writer
// cannot flush.
func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack implements http.Hijacker when the server's writer supports it
// (directly or via Unwrap) and returns http.ErrNotSupported otherwise.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// ReadFrom keeps net/http's sendfile path for http.ServeContent.
func (w *recorder) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// writerOnly hides ReadFrom so io.Copy cannot recurse into it.
type writerOnly struct{ io.Writer }
