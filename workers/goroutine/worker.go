// Package goroutine is the goroutine worker class: one goroutine per
// connection on Go's netpoller, so blocking-looking handler code does
// non-blocking IO underneath and a worker holds up to worker_connections
// connections at little cost each.
//
// http_engine selects the HTTP implementation: "native" (the default) is
// the shared strict HTTP/1.1 engine every class uses; "net/http" is the
// standard library's server (HTTP/2 over TLS, looser HTTP/1.1 parsing).
//
// Heartbeat: a ticker goroutine beats. Go's scheduler is preemptive, so a
// slow request never stops it: in this class --timeout polices a wedged
// process (a deadlock of the runtime, a stopped process), not a slow
// request; use request_timeout for that.
package goroutine

import (
	"context"
	"fmt"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

// Worker is the goroutine class.
type Worker struct{}

// CheckConfig rejects an unknown http_engine before anything is bound.
func (w *Worker) CheckConfig(cfg *config.Config) error {
	switch cfg.HTTPEngine {
	case "", "native", "net/http":
		return nil
	}
	return fmt.Errorf("goroutine: http_engine %q: want native or net/http", cfg.HTTPEngine)
}

// Serve runs the engine http_engine names until ctx is cancelled.
func (w *Worker) Serve(ctx context.Context, env *workers.Env) error {
	if env.Config.HTTPEngine == "net/http" {
		return w.serveNetHTTP(ctx, env)
	}
	return w.serveNative(ctx, env)
}

var (
	_ workers.Worker = (*Worker)(nil)
)
