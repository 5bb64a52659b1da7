package evloop

import (
	"strings"
	"testing"
)

// TestLowFDBudgetUsesAcceptLoop: with gnet's acceptor chosen, when
// worker_connections exceeds what
// RLIMIT_NOFILE leaves, the worker serves through its own accept loop (which
// backs off on EMFILE) instead of the fd swap, and says why.
func TestLowFDBudgetUsesAcceptLoop(t *testing.T) {
	budget, ok := fdBudget()
	if !ok {
		t.Skip("no RLIMIT_NOFILE or /proc/self/fd")
	}
	useGnetAcceptor(t, true)
	cfg := testConfig()
	cfg.WorkerConnections = budget + 1
	hs := startServer(t, cfg, pathHandler)
	if m := hs.s.mode(); m != "accept-loop" {
		t.Fatalf("mode %s with worker_connections above the fd budget %d", m, budget)
	}
	if !strings.Contains(hs.logText(), "RLIMIT_NOFILE is too low") {
		t.Errorf("no warning logged:\n%s", hs.logText())
	}
	c := dial(t, hs.addrs[0])
	c.send(get("/low"))
	if got := body(c.read()); got != "path=/low" {
		t.Fatalf("got %q", got)
	}
}

// TestFDBudgetCountsAcceptBurst: worker_connections alone fits the
// descriptors, but not with a full accept queue on top, which gnet's
// acceptor takes at once before a connection can be refused: the worker
// serves through its own accept loop.
func TestFDBudgetCountsAcceptBurst(t *testing.T) {
	budget, ok := fdBudget()
	if !ok || budget < 200 {
		t.Skip("no RLIMIT_NOFILE, /proc/self/fd, or too few descriptors")
	}
	useGnetAcceptor(t, true)
	cfg := testConfig()
	cfg.WorkerConnections = budget - 100
	cfg.Backlog = 150
	if acceptBurst(cfg.Backlog) < 101 {
		t.Skip("net.core.somaxconn caps the accept queue below the test's margin")
	}
	hs := startServer(t, cfg, pathHandler)
	if m := hs.s.mode(); m != "accept-loop" {
		t.Fatalf("mode %s: worker_connections %d + accept burst %d exceed the fd budget %d",
			m, cfg.WorkerConnections, acceptBurst(cfg.Backlog), budget)
	}
	if !strings.Contains(hs.logText(), "accept_burst=") {
		t.Errorf("the warning does not name the accept burst:\n%s", hs.logText())
	}
}
