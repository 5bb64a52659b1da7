package threaded

import (
	"fmt"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

func init() {
	workers.Register(workers.Class{
		Name:     "threaded",
		Summary:  "fixed pool of OS threads, blocking IO per thread; idle keep-alive connections parked in a poller",
		New:      func() workers.Worker { return &Worker{} },
		Settings: []string{"threads", "worker_connections", "keepalive", "retire_idle_timeout"},
		Check:    (&Worker{}).CheckConfig,
		Describe: describe,
	})
}

func describe(c *config.Config) string {
	w := c.Workers
	return fmt.Sprintf("%s × %s, blocking IO per thread: at most %s in flight, %s",
		workers.Plural(w, "worker"), workers.Plural(c.Threads, "thread"), workers.Plural(w*c.Threads, "request"), workers.OpenConns(c))
}
