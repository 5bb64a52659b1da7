package perconn_test

import (
	"testing"

	"github.com/multiserve/multiserve/examples/customclass/perconn"
	"github.com/multiserve/multiserve/workers/workerstest"
)

// TestConformance: the class outside the tree passes the suite every
// built-in class passes.
func TestConformance(t *testing.T) {
	workerstest.Run(t, perconn.Name, workerstest.Options{})
}

// TestH1Probe runs the shared h1probe corpus against it, both ways.
func TestH1Probe(t *testing.T) {
	in := workerstest.Start(t, perconn.Name, workerstest.Options{})
	workerstest.H1Probe(t, in.Addr, false)
	workerstest.H1Probe(t, in.Addr, true)
}
