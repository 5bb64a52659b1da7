package evloop

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/scoreboard"
	"github.com/multiserve/multiserve/workers"
	"github.com/multiserve/multiserve/workers/evloop/route"
)

// auto is registered from this package: see the package doc (The auto
// class) for why, and for what it does.
func init() {
	workers.Register(workers.Class{
		Name:     "auto",
		Summary:  "evloop's event loops; each route inline or on a pool, by measured handler time",
		New:      func() workers.Worker { return &Worker{auto: true} },
		Settings: append(slices.Clone(loopSettings), "auto_threshold", "auto_samples", "auto_cooldown", "auto_pool"),
		Check:    (&Worker{auto: true}).CheckConfig,
		Describe: describeAuto,
	})
}

func describeAuto(c *config.Config) string {
	return fmt.Sprintf("%s × %s, non-blocking IO, each route inline on the loop while its handlers take at most %s, "+
		"else on a pool of %s (a route that starts to block stalls its loop at most three times before it moves): at most %s",
		workers.Plural(c.Workers, "worker"), loopsOf(c), c.AutoThreshold,
		workers.Plural(c.AutoPool, "goroutine"), workers.OpenConns(c))
}

// maxRoutes bounds an auto worker's route table; the requests of further
// routes share one overflow route that always runs pooled.
const maxRoutes = 256

// newRoutes returns the route table of an auto worker. The application as
// loaded (before the middleware) is what a ServeMux pattern is read from.
func newRoutes(env *workers.Env) *route.Table {
	app := env.App
	if app == nil {
		app = env.Handler
	}
	cfg := env.Config
	return route.New(app, route.Config{
		Threshold: cfg.AutoThreshold, Samples: cfg.AutoSamples,
		Cooldown: cfg.AutoCooldown, MaxRoutes: maxRoutes,
	})
}

// placeRoute is auto's placement, on the loop ls, of a request that
// evloop would run inline: it returns req's route (nil for evloop) and,
// when the route is pooled, req moved to a cancellable context of its own,
// as offload needs.
func (s *server) placeRoute(ls *loopState, req *http.Request, offload bool) (*route.Route, *http.Request, context.CancelFunc) {
	if s.routes == nil {
		return nil, req, nil
	}
	rt := s.routes.LookupVia(&ls.memo, req)
	if offload || rt.Inline() {
		return rt, req, nil
	}
	ctx, cancel := requestContext(true)
	if s.cfg.EvloopReuseRequests {
		// InlineRequest's Request is the parser's, reused by its next request.
		return rt, req.Clone(ctx), cancel
	}
	return rt, req.WithContext(ctx), cancel
}

// enterInline marks rt as running on ls, for the watchdog (lateLoop), and
// returns the start of its handler time (scoreboard.Now).
func (ls *loopState) enterInline(rt *route.Route) int64 {
	ls.running.Store(rt)
	return scoreboard.Now()
}

// leaveInline records an inline request of rt that began at start.
func (s *server) leaveInline(ls *loopState, rt *route.Route, start int64) {
	ls.running.Store(nil)
	s.routes.Observe(rt, time.Duration(scoreboard.Now()-start), true)
}

// publishEvery: the route table goes to the scoreboard every this many
// ticks (a second), for the status page.
const publishEvery = 4

// publishRoutes copies the route table to this worker's scoreboard slot,
// where the arbiter's status page and metrics read it. It runs on the
// ticker goroutine (the slot's one writer).
func (s *server) publishRoutes() {
	if s.routes == nil {
		return
	}
	if s.ticks++; s.ticks%publishEvery != 1 {
		return
	}
	s.env.Slot.SetRoutes(s.routes.Stats(), s.routes.Promotions(), s.routes.Demotions())
}

// lateLoop is called by the ticker for a loop that did not run its last
// probe: the route running inline on it, if any, is demoted now, so that
// the other loops stop running it inline while it still blocks this one.
func (s *server) lateLoop(ls *loopState) {
	if s.routes == nil {
		return
	}
	if rt := ls.running.Load(); rt != nil {
		s.routes.Demote(rt)
	}
}
