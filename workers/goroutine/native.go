package goroutine

import (
	"context"

	"github.com/multiserve/multiserve/workers"
)

// serveNative serves with the shared HTTP/1.1 engine, one goroutine per
// connection.
// TODO(h1): placeholder until the engine lands; serves with net/http.
func (w *Worker) serveNative(ctx context.Context, env *workers.Env) error {
	return w.serveNetHTTP(ctx, env)
}
