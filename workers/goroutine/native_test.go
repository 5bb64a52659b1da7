package goroutine_test

import (
	"testing"

	_ "github.com/multiserve/multiserve/workers/goroutine"
	"github.com/multiserve/multiserve/workers/workerstest"
)

func TestConformance(t *testing.T) {
	workerstest.Run(t, "goroutine", workerstest.Options{})
}

func TestH1Probe(t *testing.T) {
	in := workerstest.Start(t, "goroutine", workerstest.Options{})
	workerstest.H1Probe(t, in.Addr, false)
	workerstest.H1Probe(t, in.Addr, true)
}
