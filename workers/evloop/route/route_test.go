package route

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/multiserve/multiserve/scoreboard"
)

var ok = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

const thr = time.Millisecond

func testTable(app http.Handler, maxRoutes int) (*Table, *int64) {
	t := New(app, Config{Threshold: thr, Samples: 3, Cooldown: time.Second, MaxRoutes: maxRoutes})
	now := new(int64)
	t.clock = func() int64 { return *now }
	return t, now
}

func req(method, target string) *http.Request { return httptest.NewRequest(method, target, nil) }

func TestKeyServeMuxPattern(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /item/{id}", ok)
	mux.Handle("/static/", ok)
	tb, _ := testTable(mux, 16)
	a, b := tb.Lookup(req("GET", "/item/1?x=1")), tb.Lookup(req("GET", "/item/2"))
	if a != b || a.Key() != "GET /item/{id}" {
		t.Fatalf("/item/1 and /item/2: %q %q, want one route GET /item/{id}", a.Key(), b.Key())
	}
	if k := tb.Lookup(req("POST", "/static/a/b")).Key(); k != "/static/" {
		t.Fatalf("POST /static/a/b: key %q, want /static/", k)
	}
	if k := tb.Lookup(req("GET", "/nowhere")).Key(); k != Unmatched {
		t.Fatalf("unmatched path: key %q, want %q", k, Unmatched)
	}
	if k := tb.Lookup(req("PUT", "/item/3")).Key(); k != Unmatched {
		t.Fatalf("405 (method not allowed): key %q, want %q", k, Unmatched)
	}
}

func TestKeyMethodPath(t *testing.T) {
	tb, _ := testTable(ok, 16)
	a, b := tb.Lookup(req("GET", "/a?q=1")), tb.Lookup(req("GET", "/a?q=2"))
	if a != b || a.Key() != "GET /a" {
		t.Fatalf("query must not split a route: %q %q", a.Key(), b.Key())
	}
	if tb.Lookup(req("POST", "/a")) == a {
		t.Fatal("POST /a and GET /a share a route")
	}
}

func TestPromoteAfterSamples(t *testing.T) {
	tb, _ := testTable(ok, 16)
	rt := tb.Lookup(req("GET", "/"))
	if rt.Inline() {
		t.Fatal("a new route starts inline")
	}
	tb.Observe(rt, thr/2, false)
	tb.Observe(rt, thr/2, false)
	tb.Observe(rt, 2*thr, false) // a slow one restarts the count
	tb.Observe(rt, thr/2, false)
	tb.Observe(rt, thr, false)
	if rt.Inline() {
		t.Fatal("promoted before 3 consecutive fast samples")
	}
	tb.Observe(rt, thr/2, false)
	if !rt.Inline() || tb.Promotions() != 1 {
		t.Fatalf("after 3 fast samples: inline %v promotions %d", rt.Inline(), tb.Promotions())
	}
}

func TestDemoteAndCooldown(t *testing.T) {
	tb, now := testTable(ok, 16)
	rt := tb.Lookup(req("GET", "/"))
	for range 3 {
		tb.Observe(rt, 0, false)
	}
	tb.Observe(rt, thr/2, true)
	if !rt.Inline() {
		t.Fatal("not promoted")
	}
	// One or two slow inline samples may be scheduling hiccups: a third
	// demotes only when each came within Samples (3) inline samples of
	// the one before.
	slow := func(fastBefore int) {
		for range fastBefore {
			tb.Observe(rt, 0, true)
		}
		tb.Observe(rt, 5*thr, true)
	}
	slow(0)
	slow(2)
	slow(3) // too late: starts a new row
	slow(0)
	if !rt.Inline() || tb.Demotions() != 0 {
		t.Fatalf("rows of 2 slow samples: inline %v demotions %d", rt.Inline(), tb.Demotions())
	}
	slow(2)
	if rt.Inline() || tb.Demotions() != 1 {
		t.Fatalf("3 slow samples each within 3: inline %v demotions %d", rt.Inline(), tb.Demotions())
	}
	for range 10 {
		tb.Observe(rt, 0, false)
	}
	if rt.Inline() {
		t.Fatal("promoted during the cool-down")
	}
	*now += int64(time.Second)
	tb.Observe(rt, 0, false)
	if !rt.Inline() || tb.Promotions() != 2 {
		t.Fatalf("after the cool-down: inline %v promotions %d", rt.Inline(), tb.Promotions())
	}
	// Promotion forgets the slow samples before it.
	slow(0)
	slow(0)
	if !rt.Inline() {
		t.Fatal("slow samples before the promotion still counted")
	}
	// Requests that began inline and end after a demotion count it once.
	tb.Demote(rt)
	tb.Observe(rt, 5*thr, true)
	tb.Observe(rt, 5*thr, true)
	if tb.Demotions() != 2 {
		t.Fatalf("demotions %d, want 2", tb.Demotions())
	}
}

func TestWatchdogDemote(t *testing.T) {
	tb, now := testTable(ok, 16)
	rt := tb.Lookup(req("GET", "/"))
	for range 3 {
		tb.Observe(rt, 0, false)
	}
	tb.Demote(rt) // the loop running it stalled, its handler has not returned
	if rt.Inline() {
		t.Fatal("Demote left the route inline")
	}
	tb.Observe(rt, 0, true) // the stalled handler returns (its time is not known to be long)
	for range 3 {
		tb.Observe(rt, 0, false)
	}
	if rt.Inline() {
		t.Fatal("promoted during the cool-down that Demote started")
	}
	*now += int64(time.Second)
	tb.Observe(rt, 0, false)
	if !rt.Inline() {
		t.Fatal("not promoted after the cool-down")
	}
}

func TestPins(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/fast", Inline(ok))
	mux.Handle("/slow", Blocking(ok))
	mux.Handle("/measured", ok)
	tb, _ := testTable(mux, 16)
	fast, slow := tb.Lookup(req("GET", "/fast")), tb.Lookup(req("GET", "/slow"))
	if !fast.Inline() {
		t.Fatal("Inline route starts pooled")
	}
	tb.Observe(fast, time.Hour, true)
	tb.Demote(fast)
	for range 10 {
		tb.Observe(slow, 0, false)
	}
	if !fast.Inline() || slow.Inline() || tb.Promotions()+tb.Demotions() != 0 {
		t.Fatalf("pinned routes moved: fast inline %v, slow inline %v", fast.Inline(), slow.Inline())
	}
	if tb.Lookup(req("GET", "/measured")).pin != Measured {
		t.Fatal("an unpinned pattern is pinned")
	}
	// A pin on the whole application (a pinned ServeMux keeps its patterns).
	tb, _ = testTable(Blocking(mux), 16)
	if rt := tb.Lookup(req("GET", "/measured")); rt.Key() != "/measured" || rt.pin != PinPooled {
		t.Fatalf("Blocking(mux): route %q pin %d", rt.Key(), rt.pin)
	}
	if rt := tb.Lookup(req("GET", "/fast")); !rt.Inline() {
		t.Fatal("a pattern's own Inline pin must win over the app's")
	}
}

func TestBoundedTable(t *testing.T) {
	tb, _ := testTable(ok, 4)
	for i := range 10 {
		tb.Lookup(req("GET", fmt.Sprintf("/p%d", i)))
	}
	over := tb.Lookup(req("GET", "/p9"))
	if over.Key() != Overflow || len(*tb.routes.Load()) != 4 {
		t.Fatalf("route %q, table size %d: want overflow and 4", over.Key(), len(*tb.routes.Load()))
	}
	for range 10 {
		tb.Observe(over, 0, false)
	}
	if over.Inline() {
		t.Fatal("the overflow route was promoted")
	}
	st := tb.Stats()
	if len(st) != 5 || st[4].Route != Overflow || st[4].Samples != 10 {
		t.Fatalf("stats: want 4 routes then the overflow route with 10 samples: %+v", st)
	}
}

func TestStats(t *testing.T) {
	tb, _ := testTable(ok, 16)
	a, b := tb.Lookup(req("GET", "/a")), tb.Lookup(req("GET", "/b"))
	tb.Observe(a, 2*thr, false)
	tb.Observe(b, thr/2, false)
	tb.Observe(b, thr/4, false)
	st := tb.Stats()
	want := []scoreboard.Route{
		{Route: "GET /b", Placement: "pooled", Samples: 2, Mean: 3 * thr / 8, Max: thr / 2},
		{Route: "GET /a", Placement: "pooled", Samples: 1, Mean: 2 * thr, Max: 2 * thr},
	}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("stats\n got %+v\nwant %+v", st, want)
	}
}

// TestConcurrent runs lookups, inserts and samples from many goroutines
// (run with -race): counters stay exact.
func TestConcurrent(t *testing.T) {
	tb, _ := testTable(ok, 64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				rt := tb.Lookup(req("GET", fmt.Sprintf("/r%d", (g+i)%20)))
				d := thr / 2
				if i%50 == 0 {
					d = 2 * thr
				}
				tb.Observe(rt, d, rt.Inline())
			}
		}()
	}
	wg.Wait()
	var n uint64
	for _, s := range tb.Stats() {
		n += s.Samples
	}
	if n != 8*500 || len(*tb.routes.Load()) != 20 {
		t.Fatalf("samples %d routes %d, want 4000 and 20", n, len(*tb.routes.Load()))
	}
	if tb.Promotions() < tb.Demotions() {
		t.Fatalf("promotions %d < demotions %d", tb.Promotions(), tb.Demotions())
	}
}

// TestLookupViaMatchesLookup: through a Memo, every request of a sequence
// that alternates what a ServeMux matches on (method, host with and without
// a port, escaped and cleaned paths, trailing-slash redirects, CONNECT)
// gets the route Lookup gives it.
func TestLookupViaMatchesLookup(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /item/{id}", ok)
	mux.Handle("example.com/item/{id}", ok)
	mux.Handle("/static/", ok)
	mux.Handle("/a%2Fb", ok)
	mux.Handle("CONNECT /tunnel", ok)
	for _, app := range []http.Handler{mux, ok} {
		tb, _ := testTable(app, 64)
		var m Memo
		var seq []*http.Request
		for _, tc := range []struct{ method, host, target string }{
			{"GET", "", "/item/1"}, {"GET", "", "/item/1"}, {"GET", "example.com", "/item/1"},
			{"GET", "example.com:8080", "/item/1"}, {"GET", "other", "/item/1"}, {"POST", "other", "/item/1"},
			{"GET", "", "/static"}, {"GET", "", "/static/x"}, {"GET", "", "/a%2Fb"}, {"GET", "", "/a/b"},
			{"GET", "", "/x/../item/2"}, {"GET", "", "/item/2"}, {"CONNECT", "", "/tunnel"}, {"CONNECT", "", "/tunnel"},
			{"GET", "", "/nowhere"}, {"GET", "", "/item/1"},
		} {
			r := req(tc.method, tc.target)
			if tc.host != "" {
				r.Host = tc.host
			}
			seq = append(seq, r)
		}
		for i, r := range seq {
			if got, want := tb.LookupVia(&m, r), tb.Lookup(r); got != want {
				t.Fatalf("request %d (%s %s %s): memo gave %q, Lookup %q", i, r.Method, r.Host, r.URL, got.Key(), want.Key())
			}
		}
	}
}

// TestAnyInline: the table knows whether some route runs inline now, which
// the auto worker's pool reads before each job.
func TestAnyInline(t *testing.T) {
	tb, _ := testTable(ok, 16)
	rt := tb.Lookup(req("GET", "/"))
	if tb.AnyInline() {
		t.Fatal("inline before any promotion")
	}
	for range 3 {
		tb.Observe(rt, thr/2, false)
	}
	if !tb.AnyInline() {
		t.Fatal("not inline after a promotion")
	}
	tb.Demote(rt)
	if tb.AnyInline() {
		t.Fatal("inline after the only inline route was demoted")
	}
	mux := http.NewServeMux()
	mux.Handle("/", Inline(ok))
	pinned, _ := testTable(mux, 16)
	pinned.Lookup(req("GET", "/"))
	if !pinned.AnyInline() {
		t.Fatal("a route pinned inline does not count")
	}
}
