package scoreboard

import (
	"net/http"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/reqmeta"
	"github.com/multiserve/multiserve/internal/respmeter"
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

// Middleware reports each request served by next into slot s: requests
// begun, the request block, then status class, bytes and latency. With the
// zero Slot it returns next unchanged.
func Middleware(next http.Handler, s Slot) http.Handler {
	if s.w == nil {
		return next
	}
	return &middleware{next: next, s: s}
}

type middleware struct {
	next http.Handler
	s    Slot
}

// ResponseMeter is what an engine's ResponseWriter can implement to spare
// the middleware its wrapper (a pooled respmeter.Recorder and an indirect
// call per Write): the middleware then reads the figures from the writer.
// h1.Response implements it, so every class but the goroutine class's
// net/http engine skips the wrapper; see BenchmarkMiddlewareEngineMeter
// for the saving.
type ResponseMeter interface {
	// ResponseStatus is the final status sent or set (101 once hijacked),
	// 0 while none is.
	ResponseStatus() int
	// ResponseBytes is the body bytes written so far.
	ResponseBytes() int64
}

// HeadTimer is what an engine's ResponseWriter can implement to hand the
// middleware the time the engine already read when the request head was
// complete: the middleware takes it as the request's start and reads the
// clock once per request (at the end) instead of twice. The latency then
// runs from the complete head, not from the handler's call.
type HeadTimer interface {
	HeadDone() time.Time // with a monotonic reading (from time.Now)
}

var _ ResponseMeter = (*h1.Response)(nil)

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rm, ok := w.(ResponseMeter); ok {
		m.serveMetered(w, rm, r)
		return
	}
	target := r.RequestURI // as received, query included; no allocation
	if target == "" {
		target = r.URL.Path
	}
	rec := respmeter.Get(w)
	start := m.s.Begin(r.Method, target, r.RemoteAddr, queueTime(r))
	finished := false
	// Also runs while a panic unwinds (the engine owns the recovery and
	// answers 500); the panic is not recovered here. A direct call, not a
	// closure: the defer is open-coded.
	defer m.end(rec, start, &finished)
	m.next.ServeHTTP(rec, r)
	finished = true
}

func (m *middleware) end(rec *respmeter.Recorder, start int64, finished *bool) {
	status := rec.Status
	switch {
	case !*finished && status == 0:
		status = http.StatusInternalServerError
	case status == 0:
		status = http.StatusOK
	}
	m.s.End(start, status, rec.Bytes)
	if *finished {
		// Not while panicking: the engine's recovery may still reach rec.
		respmeter.Put(rec)
	}
}

// serveMetered is ServeHTTP for an engine writer that keeps its own figures.
func (m *middleware) serveMetered(w http.ResponseWriter, rm ResponseMeter, r *http.Request) {
	target := r.RequestURI
	if target == "" {
		target = r.URL.Path
	}
	var start int64
	if ht, ok := w.(HeadTimer); ok {
		start = monoOf(ht.HeadDone())
	} else {
		start = monoNow()
	}
	m.s.BeginAt(start, r.Method, target, r.RemoteAddr, queueTime(r))
	finished := false
	defer m.endMetered(rm, start, &finished)
	m.next.ServeHTTP(w, r)
	finished = true
}

func (m *middleware) endMetered(rm ResponseMeter, start int64, finished *bool) {
	status := rm.ResponseStatus()
	switch {
	case !*finished && status == 0:
		status = http.StatusInternalServerError
	case status == 0:
		status = http.StatusOK
	}
	m.s.End(start, status, rm.ResponseBytes())
}

// queueTime reads the clock only when the request carries the header.
func queueTime(r *http.Request) time.Duration {
	if !reqmeta.HasQueueStart(r) {
		return 0
	}
	return reqmeta.QueueTime(r, time.Now())
}
