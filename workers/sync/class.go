package sync

import (
	"fmt"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

func init() {
	workers.Register(workers.Class{
		Name:         "sync",
		Summary:      "one request at a time per process, blocking IO",
		New:          func() workers.Worker { return &Worker{} },
		Default:      true,
		SingleThread: true,
		Describe:     describe,
	})
}

func describe(c *config.Config) string {
	return fmt.Sprintf("%s × 1 thread, blocking IO: at most %s in flight",
		workers.Plural(c.Workers, "worker"), workers.Plural(c.Workers, "request"))
}
