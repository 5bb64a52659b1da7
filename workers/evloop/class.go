package evloop

import (
	"fmt"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

func init() {
	workers.Register(workers.Class{
		Name:     "evloop",
		Summary:  "epoll event loop (gnet v2), non-blocking IO",
		New:      func() workers.Worker { return &Worker{} },
		Settings: append([]string{"threads"}, loopSettings...),
		Defaults: defaults,
		Check:    (&Worker{}).CheckConfig,
		Describe: describe,
	})
}

// loopSettings are the class-specific settings of the event loops, which
// evloop and auto share; each class adds those of its handler placement.
var loopSettings = []string{"worker_connections", "keepalive", "retire_idle_timeout", "evloop_loops", "evloop_reuse_requests", "evloop_conn_buffer", "evloop_gnet_acceptor"}

// defaults runs handlers inline unless a pool was asked for: the global
// default of 1 thread would otherwise put every handler on a pool of one.
func defaults(c *config.Config, isDefault func(string) bool) {
	if isDefault("threads") {
		c.Threads = 0
	}
}

func describe(c *config.Config) string {
	w := c.Workers
	workersN := workers.Plural(w, "worker")
	loops := loopsOf(c)
	if c.Threads == 0 {
		return fmt.Sprintf("%s × %s, non-blocking IO, handlers inline on the loop (a blocking handler stalls its loop): at most %s",
			workersN, loops, workers.OpenConns(c))
	}
	return fmt.Sprintf("%s × %s, non-blocking IO, handlers on a pool of %s per worker: at most %s in flight, %s",
		workersN, loops, workers.Plural(c.Threads, "goroutine"), workers.Plural(w*c.Threads, "request"), workers.OpenConns(c))
}

// loopsOf renders evloop_loops for the banner.
func loopsOf(c *config.Config) string {
	if c.EvloopLoops == 0 {
		return "one event loop per CPU the worker may use"
	}
	return workers.Plural(c.EvloopLoops, "event loop")
}
