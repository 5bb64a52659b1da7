package workers

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	stdsync "sync"
	"sync/atomic"

	"github.com/multiserve/multiserve/config"
)

type middleware struct {
	wrap   func(h http.Handler, cfg *config.Config) (http.Handler, error)
	reopen func() error
}

var (
	mwMu        stdsync.Mutex
	middlewares []middleware
)

// Use adds a middleware every worker wraps the application with (the access
// log, for instance), in the order of the calls; the first Use is the
// innermost. reopen, if non-nil, is called on SIGUSR1 to reopen the
// middleware's files. Call Use before Main, from main or init. wrap runs
// once per worker, in the worker process, after the application loaded.
func Use(wrap func(h http.Handler, cfg *config.Config) (http.Handler, error), reopen func() error) {
	mwMu.Lock()
	defer mwMu.Unlock()
	middlewares = append(middlewares, middleware{wrap: wrap, reopen: reopen})
}

func wrapMiddleware(h http.Handler, cfg *config.Config) (http.Handler, []func() error, error) {
	mwMu.Lock()
	defer mwMu.Unlock()
	var reopeners []func() error
	for _, m := range middlewares {
		var err error
		if h, err = m.wrap(h, cfg); err != nil {
			return nil, nil, err
		}
		if m.reopen != nil {
			reopeners = append(reopeners, m.reopen)
		}
	}
	return h, reopeners, nil
}

// maxRequests counts finished requests and asks the arbiter to retire this
// worker after max_requests plus this worker's random jitter, so the
// workers of one generation do not all recycle at the same moment. The
// worker keeps serving until the arbiter, once a replacement is ready,
// retires it like any other (TERM), so capacity never dips.
func (rt *runtime) maxRequests(h http.Handler) http.Handler {
	if rt.cfg.MaxRequests <= 0 {
		return h
	}
	limit := int64(rt.cfg.MaxRequests)
	if j := rt.cfg.MaxRequestsJitter; j > 0 {
		limit += int64(rand.IntN(j + 1))
	}
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Deferred so a request whose handler panicked (the engine turns
		// that into a 500) still counts.
		defer func() {
			if n.Add(1) == limit {
				rt.askRetire(fmt.Sprintf("max_requests reached (%d), recycling", limit))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// rejected is what OnRejected installed; nil: rejected requests leave no
// line.
var rejected atomic.Pointer[func(remote string, status int, head []byte)]

// OnRejected installs f to hear every request the engine of this worker
// refuses with an error status (Env.Rejected); the access log middleware
// calls it while it is set up, before the class serves.
func OnRejected(f func(remote string, status int, head []byte)) { rejected.Store(&f) }

// rejectedHook is what OnRejected installed, or nil.
func rejectedHook() func(remote string, status int, head []byte) {
	if f := rejected.Load(); f != nil {
		return *f
	}
	return nil
}
