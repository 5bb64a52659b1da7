package evloop

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers/workerstest"

	"github.com/multiserve/multiserve/internal/testwait"
	"github.com/multiserve/multiserve/scoreboard"
)

// TestAutoConformance runs the shared class suite and the h1probe corpus
// against auto. The thresholds make routes move between the loop and the
// pool during the suite, so both paths and the moves are exercised.
func TestAutoConformance(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		name := "default"
		if reuse {
			name = "reuse-requests"
		}
		t.Run(name, func(t *testing.T) {
			workerstest.Run(t, "auto", workerstest.Options{Config: func(c *config.Config) {
				c.EvloopLoops = 2
				c.EvloopReuseRequests = reuse
				c.AutoSamples = 2
				c.AutoPool = 8
			}})
		})
	}
}

func TestAutoH1Probe(t *testing.T) {
	if testing.Short() {
		t.Skip("h1probe runs python3")
	}
	in := workerstest.Start(t, "auto", workerstest.Options{Config: func(c *config.Config) {
		c.AutoSamples = 1
	}})
	workerstest.H1Probe(t, in.Addr, false)
	workerstest.H1Probe(t, in.Addr, true)
}

func autoConfig() *config.Config {
	cfg := testConfig()
	cfg.WorkerClass = "auto"
	// Generous: a fast handler must not be demoted by a loaded machine's
	// scheduling delays; the blocking one blocks until released.
	cfg.AutoThreshold = 200 * time.Millisecond
	cfg.AutoSamples = 3
	cfg.AutoCooldown = time.Hour
	cfg.AutoPool = 4
	return cfg
}

// routeStat returns the state of the route named key.
func routeStat(t *testing.T, hs *harness, key string) scoreboard.Route {
	t.Helper()
	for _, st := range hs.s.routes.Stats() {
		if st.Route == key {
			return st
		}
	}
	t.Fatalf("no route %q in %+v", key, hs.s.routes.Stats())
	return scoreboard.Route{}
}

// TestAutoDemotesBlockingRoute drives a fast route and a route that turns
// blocking on one loop: both are promoted to inline after their samples;
// when the second blocks on the loop, the watchdog demotes it while it
// still blocks; from then on it runs pooled, and the fast route, still
// inline, is answered while a request of the blocking route waits.
func TestAutoDemotesBlockingRoute(t *testing.T) {
	var log orderLog
	var blocks atomic.Bool
	release := make(chan struct{})
	mux := http.NewServeMux()
	handle := func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if blocks.Load() {
			log.add(name + "-enter")
			if name == "block" {
				<-release
			}
			log.add(name + "-exit")
		}
		_, _ = io.WriteString(w, name)
	}
	mux.HandleFunc("GET /fast", handle)
	mux.HandleFunc("GET /block", handle)
	hs := startServer(t, autoConfig(), mux)

	c := dial(t, hs.addrs[0])
	for range 5 {
		for _, p := range []string{"/fast", "/block"} {
			c.send(get(p))
			if got := body(c.read()); got != p[1:] {
				t.Fatalf("%s: %q", p, got)
			}
		}
	}
	for _, k := range []string{"GET /fast", "GET /block"} {
		if st := routeStat(t, hs, k); st.Placement != "inline" || st.Samples != 5 || st.Promotions != 1 {
			t.Fatalf("after 5 fast requests: %+v, want inline, 5 samples, 1 promotion", st)
		}
	}

	// /block now blocks its loop: the ticker finds the loop late and
	// demotes the route before the handler returns.
	blocks.Store(true)
	a, b := dial(t, hs.addrs[0]), dial(t, hs.addrs[0])
	a.send(get("/block"))
	testwait.Until(t, waitLimit, "block-enter", func() bool { return log.has("block-enter") })
	testwait.Until(t, waitLimit, "the blocked route's demotion", func() bool { return !hs.s.routes.Lookup(mustReq("/block")).Inline() })
	if log.has("block-exit") {
		t.Fatal("demoted only after the handler returned")
	}
	release <- struct{}{}
	if got := body(a.read()); got != "block" {
		t.Fatalf("a: %q", got)
	}

	// Pooled now: the fast route is served while /block waits.
	a.send(get("/block"))
	testwait.Until(t, waitLimit, "pooled block-enter", func() bool { return strings.Count(log.String(), "block-enter") == 2 })
	b.send(get("/fast"))
	if got := body(b.read()); got != "fast" {
		t.Fatalf("b: %q", got)
	}
	release <- struct{}{}
	if got := body(a.read()); got != "block" {
		t.Fatalf("a: %q", got)
	}
	if got, want := log.String(), "block-enter,block-exit,block-enter,fast-enter,fast-exit,block-exit"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	if st := routeStat(t, hs, "GET /block"); st.Placement != "pooled" || st.Demotions != 1 {
		t.Fatalf("blocking route: %+v, want pooled after 1 demotion", st)
	}
	if st := routeStat(t, hs, "GET /fast"); st.Placement != "inline" || st.Demotions != 0 {
		t.Fatalf("fast route: %+v, want inline, never demoted", st)
	}
	if hs.s.routes.Promotions() != 2 || hs.s.routes.Demotions() != 1 {
		t.Fatalf("promotions %d demotions %d, want 2 and 1", hs.s.routes.Promotions(), hs.s.routes.Demotions())
	}
}

func mustReq(path string) *http.Request {
	r, err := http.NewRequest("GET", "http://x"+path, nil)
	if err != nil {
		panic(err)
	}
	return r
}
