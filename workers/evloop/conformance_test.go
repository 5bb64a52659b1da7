package evloop

import (
	"fmt"
	"testing"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers/workerstest"
)

// TestConformance runs the shared class suite inline (threads=0, the
// class's fast path; also with recycled requests, evloop_reuse_requests) and
// with a handler pool. TestH1Probe runs the h1probe corpus inline, both ways.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		threads int
		reuse   bool
	}{{"inline", 0, false}, {"inline-reuse", 0, true}, {"pool", 4, false}} {
		t.Run(tc.name, func(t *testing.T) {
			workerstest.Run(t, "evloop", workerstest.Options{Config: func(c *config.Config) {
				c.Threads = tc.threads
				c.EvloopLoops = 2
				c.EvloopReuseRequests = tc.reuse
			}})
		})
	}
}

func TestH1Probe(t *testing.T) {
	if testing.Short() {
		t.Skip("h1probe runs python3")
	}
	for _, reuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("evloop_reuse_requests=%v", reuse), func(t *testing.T) {
			in := workerstest.Start(t, "evloop", workerstest.Options{Config: func(c *config.Config) {
				c.Threads = 0
				c.EvloopReuseRequests = reuse
			}})
			workerstest.H1Probe(t, in.Addr, false)
			workerstest.H1Probe(t, in.Addr, true)
		})
	}
}
