package evloop

import (
	"testing"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers/workerstest"
)

// TestConformance runs the shared class suite inline (threads=0, the
// class's fast path) and with a handler pool, plus the h1probe corpus.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		threads int
	}{{"inline", 0}, {"pool", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			workerstest.Run(t, "evloop", workerstest.Options{Config: func(c *config.Config) {
				c.Threads = tc.threads
				c.EvloopLoops = 2
			}})
		})
	}
}

func TestH1Probe(t *testing.T) {
	if testing.Short() {
		t.Skip("h1probe runs python3")
	}
	in := workerstest.Start(t, "evloop", workerstest.Options{Config: func(c *config.Config) { c.Threads = 0 }})
	workerstest.H1Probe(t, in.Addr, false)
	workerstest.H1Probe(t, in.Addr, true)
}
