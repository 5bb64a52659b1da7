package evloop

import (
	"testing"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers/workerstest"
)

// TestConformance runs the shared class suite inline (threads=0, the
// class's fast path; also with recycled requests, EnvReuseRequests) and
// with a handler pool. TestH1Probe runs the h1probe corpus inline, both ways.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		threads int
		reuse   bool
	}{{"inline", 0, false}, {"inline-reuse", 0, true}, {"pool", 4, false}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.reuse {
				t.Setenv(EnvReuseRequests, "1")
			}
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
	for _, reuse := range []string{"0", "1"} {
		t.Run(EnvReuseRequests+"="+reuse, func(t *testing.T) {
			t.Setenv(EnvReuseRequests, reuse)
			in := workerstest.Start(t, "evloop", workerstest.Options{Config: func(c *config.Config) { c.Threads = 0 }})
			workerstest.H1Probe(t, in.Addr, false)
			workerstest.H1Probe(t, in.Addr, true)
		})
	}
}
