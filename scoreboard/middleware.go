package scoreboard

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/reqmeta"
	"github.com/multiserve/multiserve/workers"
)

// Install registers the scoreboard middleware with workers.Use, so every
// worker of every class maps its slot after its application loaded and
// reports each request. Call it once, before workers.Main.
func Install() {
	workers.Use(func(h http.Handler, _ *config.Config) (http.Handler, error) {
		s, err := Attach()
		if err != nil {
			return nil, err
		}
		return Middleware(h, s), nil
	}, nil)
}

// Middleware reports each request served by next into slot s: state,
// in flight, the request block, then status class, bytes and latency.
// With the zero Slot it returns next unchanged.
func Middleware(next http.Handler, s Slot) http.Handler {
	if s.w == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.RequestURI // as received, query included; no allocation
		if target == "" {
			target = r.URL.Path
		}
		start := s.Begin(r.Method, target, r.RemoteAddr, queueTime(r))
		rec := recPool.Get().(*recorder)
		*rec = recorder{ResponseWriter: w}
		finished := false
		defer func() {
			// Also runs while a panic unwinds (the engine owns the recovery
			// and answers 500); the panic is not recovered here.
			status := rec.status
			switch {
			case !finished && status == 0:
				status = http.StatusInternalServerError
			case status == 0:
				status = http.StatusOK
			}
			s.End(start, status, rec.bytes)
			if finished {
				// Not while panicking: the engine's recovery may still
				// reach rec.
				*rec = recorder{}
				recPool.Put(rec)
			}
		}()
		next.ServeHTTP(rec, r)
		finished = true
	})
}

// queueTime reads the clock only when the request carries the header.
func queueTime(r *http.Request) time.Duration {
	if !reqmeta.HasQueueStart(r) {
		return 0
	}
	return reqmeta.QueueTime(r, time.Now())
}

var recPool = sync.Pool{New: func() any { return new(recorder) }}

// recorder notes the final status and body bytes, and passes Flush,
// Hijack and ReaderFrom through via Unwrap (http.ResponseController).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

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

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack passes through (WebSocket upgrades and the like).
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// ReadFrom keeps sendfile for static files when the engine has it.
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

// writerOnly hides ReadFrom so io.Copy does not loop back into it.
type writerOnly struct{ io.Writer }

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
