// Package route classifies the routes of an application by measurement, for
// the auto worker class: which routes are fast enough to run inline on an
// event loop, and which must run on a goroutine pool because they wait.
//
// A route is the http.ServeMux pattern that matched when the application is
// a ServeMux (or a pinned one), else the request's method and path without
// the query. The table is bounded (MaxRoutes); requests of routes beyond it
// share one overflow route that always runs pooled, so a client spraying
// unique paths cannot grow it.
//
// Classification: a new route starts pooled. Each finished request is a
// sample of its handler time. A pooled route is promoted to inline after
// Samples consecutive samples at or under Threshold, once its cool-down
// (if any) is over. An inline route is demoted at its third slow inline
// sample (over Threshold) in a row of slow ones each within Samples of the
// one before (one or two may be the kernel or the Go scheduler setting the
// loop aside, see observeInline), or at once when the
// event loop running it was found stalled (Demote, called by the loop's
// watchdog while the handler still runs), and then stays pooled for at
// least Cooldown. A route wrapped with Inline or Blocking is pinned and
// never changes placement.
//
// Everything a request touches is read lock-free: the table is a map
// replaced whole on insert (at most MaxRoutes inserts over a worker's
// life), and a route's state is atomics, safe to update from every loop
// and pool goroutine at once.
package route

import (
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pin is a placement chosen by the application instead of measured.
type Pin uint8

const (
	Measured  Pin = iota // classified from handler time
	PinInline            // always on the loop: the author vouches it never waits
	PinPooled            // always on the pool: the author knows it may wait
)

// pinned marks a handler with a Pin; see Inline and Blocking.
type pinned struct {
	http.Handler
	pin Pin
}

// Inline marks h as safe to run on an event loop under the auto class, with
// no measurement: it must never wait (no IO, no locks held long).
func Inline(h http.Handler) http.Handler { return pinned{h, PinInline} }

// Blocking marks h as always run on the auto class's goroutine pool.
func Blocking(h http.Handler) http.Handler { return pinned{h, PinPooled} }

// PinOf reports the pin of h (Measured for an unmarked handler).
func PinOf(h http.Handler) Pin {
	if p, ok := h.(pinned); ok {
		return p.pin
	}
	return Measured
}

// Config holds the classification settings.
type Config struct {
	Threshold time.Duration // a sample above it demotes (inline) or resets the count (pooled)
	Samples   int           // consecutive fast samples that promote a pooled route
	Cooldown  time.Duration // a demoted route stays pooled at least this long
	MaxRoutes int           // routes tracked; the rest share the overflow route
}

// Unmatched is the key of the requests a ServeMux matched no pattern for
// (its 404s and redirects), and Overflow the key of the routes beyond
// MaxRoutes.
const (
	Unmatched = "(unmatched)"
	Overflow  = "(overflow)"
)

// Strikes is how many slow inline runs, each within Samples inline runs of
// the one before, demote a route (see observeInline).
const Strikes = 3

// noSlowRun is Route.sinceSlow when no inline run was slow since the
// route was promoted.
const noSlowRun = 1 << 62

// Route is one route's classification state.
type Route struct {
	key string
	pin Pin

	inline    atomic.Bool
	fastRun   atomic.Int64 // consecutive pooled samples at or under the threshold
	sinceSlow atomic.Int64 // inline samples since the last slow one (noSlowRun: none since promoted)
	strikes   atomic.Int64 // slow inline samples in a row, each within Samples of the one before
	coolTill  atomic.Int64 // table clock (ns): not promoted before
	samples   atomic.Uint64
	sumNs     atomic.Int64
	maxNs     atomic.Int64
	promos    atomic.Uint64
	demos     atomic.Uint64
}

// Inline reports whether the route's next request should run on the loop.
func (r *Route) Inline() bool { return r.inline.Load() }

// Key is the route's name: a ServeMux pattern, "METHOD /path", Unmatched
// or Overflow.
func (r *Route) Key() string { return r.key }

type key struct{ method, path string }

// Table is the route table of one worker process.
type Table struct {
	cfg   Config
	app   http.Handler
	mux   *http.ServeMux // app itself when it is a (possibly pinned) ServeMux
	pin   Pin            // the whole app's pin
	clock func() int64   // monotonic ns; a field so tests can move time

	routes   atomic.Pointer[map[key]*Route]
	mu       sync.Mutex // serialises inserts
	overflow *Route

	promotions, demotions atomic.Uint64
	inline                atomic.Int64 // routes placed inline now
}

// New returns the table for the application app.
func New(app http.Handler, cfg Config) *Table {
	start := time.Now()
	t := &Table{
		cfg: cfg, app: app, pin: PinOf(app),
		clock:    func() int64 { return int64(time.Since(start)) },
		overflow: &Route{key: Overflow, pin: PinPooled},
	}
	h := app
	if p, ok := h.(pinned); ok {
		h = p.Handler
	}
	t.mux, _ = h.(*http.ServeMux)
	m := map[key]*Route{}
	t.routes.Store(&m)
	return t
}

// Lookup returns the route of r.
func (t *Table) Lookup(r *http.Request) *Route {
	k, h := t.keyOf(r)
	if rt := (*t.routes.Load())[k]; rt != nil {
		return rt
	}
	return t.insert(k, h)
}

// Memo remembers the last request looked up through it and that request's
// route: a run of requests to one route (a keep-alive client, a loop whose
// traffic is mostly one hot route) then costs a few string comparisons
// instead of the table's hash and, for a ServeMux, a second match by the
// mux on top of the one that dispatches the request. It holds the request's
// strings, not copies: the h1 parser never writes them again, even for a
// recycled inline request. One per event loop; not safe for concurrent use.
type Memo struct {
	rt                      *Route
	method, host, path, raw string
}

// LookupVia is Lookup through m. A ServeMux's match is a function of the
// method, the Host and the path (escaped: Path and RawPath) but for
// CONNECT, which also reads the URL's host, so CONNECT is never memoised.
// A pattern registered while the worker serves is seen by the requests of
// paths not memoised.
func (t *Table) LookupVia(m *Memo, r *http.Request) *Route {
	if m.rt != nil && r.Method == m.method && r.URL.Path == m.path &&
		(t.mux == nil || r.Host == m.host && r.URL.RawPath == m.raw) {
		return m.rt
	}
	rt := t.Lookup(r)
	*m = Memo{rt: rt, method: r.Method, path: r.URL.Path}
	if t.mux != nil {
		m.host, m.raw = r.Host, r.URL.RawPath
		if r.Method == http.MethodConnect {
			m.rt = nil
		}
	}
	return rt
}

// keyOf returns r's route key and, for a ServeMux, the handler it matched.
func (t *Table) keyOf(r *http.Request) (key, http.Handler) {
	if t.mux == nil {
		return key{r.Method, r.URL.Path}, nil
	}
	h, pattern := t.mux.Handler(r)
	if pattern == "" {
		return key{path: Unmatched}, nil
	}
	return key{path: pattern}, h
}

// insert adds the route k (h is its ServeMux handler, if any), or returns
// the overflow route when the table is full.
func (t *Table) insert(k key, h http.Handler) *Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.routes.Load()
	if rt := old[k]; rt != nil {
		return rt
	}
	if len(old) >= t.cfg.MaxRoutes {
		return t.overflow
	}
	// A request's strings may live in a buffer that is reused
	// (evloop_reuse_requests); the table keeps its keys forever.
	k = key{method: strings.Clone(k.method), path: strings.Clone(k.path)}
	rt := &Route{key: k.path, pin: t.pin}
	if k.method != "" {
		rt.key = k.method + " " + k.path
	}
	if h != nil && PinOf(h) != Measured {
		rt.pin = PinOf(h)
	}
	if rt.pin == PinInline {
		rt.inline.Store(true)
		t.inline.Add(1)
	}
	rt.sinceSlow.Store(noSlowRun)
	m := maps.Clone(old)
	m[k] = rt
	t.routes.Store(&m)
	return rt
}

// Observe records a finished request of rt whose handler took d, and
// promotes or demotes rt. ranInline tells where it ran: a route may have
// been promoted or demoted while one of its requests was in flight.
func (t *Table) Observe(rt *Route, d time.Duration, ranInline bool) {
	ns := int64(d)
	rt.samples.Add(1)
	rt.sumNs.Add(ns)
	for m := rt.maxNs.Load(); ns > m && !rt.maxNs.CompareAndSwap(m, ns); m = rt.maxNs.Load() {
	}
	if rt.pin != Measured {
		return
	}
	slow := d > t.cfg.Threshold
	switch {
	case ranInline:
		t.observeInline(rt, slow)
	case slow:
		rt.fastRun.Store(0)
	case rt.fastRun.Add(1) >= int64(t.cfg.Samples):
		t.promote(rt)
	}
}

// observeInline demotes rt at its Strikes-th slow inline run in a row of
// slow runs each within Samples inline runs of the one before. Fewer are
// not enough: wall-clock time cannot tell a handler that waited from a
// loop the kernel or the Go scheduler set aside (a loaded machine, a
// container's CPU quota, a GC cycle), and those hiccups come alone or in
// twos; a fast route demoted by one would spend a whole cool-down on the
// pool. A handler that stalls its loop for longer than a tick is demoted
// at once by the loop watchdog instead (Demote).
func (t *Table) observeInline(rt *Route, slow bool) {
	if !slow {
		rt.sinceSlow.Add(1)
		return
	}
	n := int64(1)
	if rt.sinceSlow.Swap(0) < int64(t.cfg.Samples) {
		n = rt.strikes.Add(1)
	} else {
		rt.strikes.Store(1)
	}
	if n >= Strikes {
		t.Demote(rt)
	}
}

// promote moves rt inline, unless its cool-down is still running.
func (t *Table) promote(rt *Route) {
	if t.clock() < rt.coolTill.Load() {
		return
	}
	rt.sinceSlow.Store(noSlowRun)
	rt.strikes.Store(0)
	if rt.inline.CompareAndSwap(false, true) {
		t.inline.Add(1)
		rt.promos.Add(1)
		t.promotions.Add(1)
	}
}

// Demote moves rt to the pool now and starts its cool-down. The loop
// watchdog calls it for the route whose inline handler stalls a loop, so
// that the other loops stop running it inline before it returns.
func (t *Table) Demote(rt *Route) {
	if rt.pin != Measured {
		return
	}
	rt.fastRun.Store(0)
	rt.coolTill.Store(t.clock() + int64(t.cfg.Cooldown))
	if rt.inline.CompareAndSwap(true, false) {
		t.inline.Add(-1)
		rt.demos.Add(1)
		t.demotions.Add(1)
	}
}

// AnyInline reports whether some route runs inline now.
func (t *Table) AnyInline() bool { return t.inline.Load() > 0 }

// Promotions and Demotions count the placement changes of every route.
func (t *Table) Promotions() uint64 { return t.promotions.Load() }
func (t *Table) Demotions() uint64  { return t.demotions.Load() }
