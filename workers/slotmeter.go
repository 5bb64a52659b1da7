package workers

import (
	"net/http"
	"os"
	"time"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/internal/reqmeta"
	"github.com/multiserve/multiserve/internal/respmeter"
	"github.com/multiserve/multiserve/scoreboard"
)

// attachSlot maps the scoreboard slot the arbiter gave this worker (none:
// the zero Slot) and marks it started. The runtime calls it once, before
// the class runs, so no caller can see a half-mapped slot.
func attachSlot(spec proc.Spec) (scoreboard.Slot, error) {
	if spec.ScoreboardFD == 0 {
		return scoreboard.Slot{}, nil
	}
	s, err := scoreboard.Map(spec.ScoreboardFD, spec.ScoreboardSlot)
	if err != nil {
		return scoreboard.Slot{}, err
	}
	s.Started(os.Getpid())
	return s, nil
}

// slotMeter reports each request served by next into slot s: requests
// begun, the request block, then status class, bytes and latency. With
// the zero Slot it returns next unchanged.
func slotMeter(next http.Handler, s scoreboard.Slot) http.Handler {
	if s.IsZero() {
		return next
	}
	return &meter{next: next, s: s}
}

type meter struct {
	next http.Handler
	s    scoreboard.Slot
}

// ResponseMeter is what an engine's ResponseWriter can implement to spare
// the meter its wrapper (a pooled respmeter.Recorder and an indirect call
// per Write): the meter then reads the figures from the writer.
// h1.Response implements it, so every class but the net/http engine skips
// the wrapper; BenchmarkSlotMeterEngine shows the saving.
type ResponseMeter interface {
	// ResponseStatus is the final status sent or set (101 once hijacked),
	// 0 while none is.
	ResponseStatus() int
	// ResponseBytes is the body bytes written so far.
	ResponseBytes() int64
}

var _ ResponseMeter = (*h1.Response)(nil)

func (m *meter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rm, ok := w.(ResponseMeter); ok {
		m.serveMetered(w, rm, r)
		return
	}
	rec := respmeter.Get(w)
	start := m.s.Begin(r.Method, target(r), r.RemoteAddr, queueTime(r))
	finished := false
	// Also runs while a panic unwinds (the engine owns the recovery and
	// answers 500); the panic is not recovered here. A direct call, not a
	// closure: the defer is open-coded.
	defer m.end(rec, start, &finished)
	m.next.ServeHTTP(rec, r)
	finished = true
}

func (m *meter) end(rec *respmeter.Recorder, start int64, finished *bool) {
	m.s.End(start, finalStatus(rec.Status, *finished), rec.Bytes)
	if *finished {
		// Not while panicking: the engine's recovery may still reach rec.
		respmeter.Put(rec)
	}
}

// serveMetered is ServeHTTP for an engine writer that keeps its own figures.
func (m *meter) serveMetered(w http.ResponseWriter, rm ResponseMeter, r *http.Request) {
	start := m.s.Begin(r.Method, target(r), r.RemoteAddr, queueTime(r))
	finished := false
	defer m.endMetered(rm, start, &finished)
	m.next.ServeHTTP(w, r)
	finished = true
}

func (m *meter) endMetered(rm ResponseMeter, start int64, finished *bool) {
	m.s.End(start, finalStatus(rm.ResponseStatus(), *finished), rm.ResponseBytes())
}

// finalStatus is the status to count: a handler that panicked before
// sending anything got a 500 from the engine; one that wrote nothing got
// 200.
func finalStatus(status int, finished bool) int {
	switch {
	case !finished && status == 0:
		return http.StatusInternalServerError
	case status == 0:
		return http.StatusOK
	}
	return status
}

// target is the request target as received, query included; no allocation.
func target(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.Path
}

// queueTime reads the clock only when the request carries the header.
func queueTime(r *http.Request) time.Duration {
	if !reqmeta.HasQueueStart(r) {
		return 0
	}
	return reqmeta.QueueTime(r, time.Now())
}
