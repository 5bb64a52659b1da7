package scoreboard

import (
	"net/http"
	"time"

	"github.com/multiserve/multiserve/config"
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

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// queueTime reads the clock only when the request carries the header.
func queueTime(r *http.Request) time.Duration {
	if !reqmeta.HasQueueStart(r) {
		return 0
	}
	return reqmeta.QueueTime(r, time.Now())
}
