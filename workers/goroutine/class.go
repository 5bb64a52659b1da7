package goroutine

import (
	"fmt"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
)

func init() {
	workers.Register(workers.Class{
		Name:     "goroutine",
		Summary:  "goroutine per connection (Go netpoller)",
		New:      func() workers.Worker { return &Worker{} },
		Settings: []string{"worker_connections", "keepalive", "retire_idle_timeout", "http_engine"},
		Check:    (&Worker{}).CheckConfig,
		Describe: describe,
	})
}

func describe(c *config.Config) string {
	engine := ""
	if c.HTTPEngine == "net/http" {
		engine = " (net/http engine)"
		if c.Certfile != "" {
			// The gate (gate.go) sees plaintext only.
			engine = " (net/http engine; over TLS net/http's own HTTP/1.1 framing, limits checked after parsing, no body-read timeout for HTTP/2)"
		}
	}
	return fmt.Sprintf("%s, a goroutine per connection%s, non-blocking IO under blocking-looking code: at most %s",
		workers.Plural(c.Workers, "worker"), engine, workers.OpenConns(c))
}
