package evloop

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fdReserve is the descriptors kept out of the connection budget: gnet's
// pollers and wake-up fds, log files, the odd file a handler opens.
const fdReserve = 32

// fdBudget reports how many connections this process can hold before
// accept(2) fails with EMFILE: RLIMIT_NOFILE's soft limit minus the
// descriptors open now and fdReserve. ok is false when it cannot tell.
//
// Why it matters: in fd-swap mode gnet's own acceptor treats EMFILE as
// fatal (gnet v2.9.7 acceptor_unix.go: any error other than EAGAIN, EINTR,
// ECONNRESET, ECONNABORTED stops the main reactor, and with it the
// engine), and it drains the accept queue before the connections reach
// OnOpen, so no cap applied there can keep it below the limit: a worker
// holding worker_connections can be handed a whole accept queue at once
// (acceptBurst) before any of it is refused. When the budget cannot cover
// both, the worker serves through its own accept loop instead, which
// backs off.
func fdBudget() (budget int, ok bool) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	if r.Cur > 1<<30 {
		return 1 << 30, true // unlimited for any purpose here
	}
	return int(r.Cur) - len(ents) - fdReserve, true
}

// acceptBurst is how many connections gnet's acceptor may take in one go:
// it drains the accept queue, which holds at most the listen backlog as
// the kernel caps it (net.core.somaxconn).
func acceptBurst(backlog int) int {
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 && (backlog <= 0 || n < backlog) {
			return n
		}
	}
	return backlog
}

// fdBudgetShort reports whether worker_connections plus an accept burst
// could exhaust the descriptors, logging why once when it does.
func (s *server) fdBudgetShort() bool {
	budget, ok := fdBudget()
	need := s.cfg.WorkerConnections + acceptBurst(s.cfg.Backlog)
	if !ok || budget >= need {
		return false
	}
	s.log.Warn("evloop: RLIMIT_NOFILE is too low for worker_connections plus a full accept queue: serving through "+
		"its own accept loop (which backs off on EMFILE) instead of the fd swap, "+
		"whose gnet acceptor would stop the worker on EMFILE; raise the limit (ulimit -n) to avoid this",
		"fd_budget", budget, "worker_connections", s.cfg.WorkerConnections, "accept_burst", need-s.cfg.WorkerConnections)
	return true
}
