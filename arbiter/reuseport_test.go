package arbiter_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/testwait"
)

// reuse_port: every worker has its own socket; fresh connections spread
// across all of them; SIGKILL of a worker under load fails at most the
// requests it held (one per client at most: each client has one
// connection open, plus a reconnect racing the socket's close), and its
// replacement gets its own socket. Every class, on port 0 (the workers'
// sockets join the group of the port the arbiter resolved).
func TestReusePortSpread(t *testing.T) {
	skipShort(t)
	for _, class := range e2eClasses {
		t.Run(strings.ReplaceAll(class, "/", "_"), func(t *testing.T) {
			cfg := testConfig(class, 3)
			cfg.ReusePort = true
			m := startMaster(t, cfg, true)
			counts := map[int]int{}
			for range 300 {
				pid, err := m.getPid()
				if err != nil {
					t.Fatal(err)
				}
				counts[pid]++
			}
			var spread []int
			for _, n := range counts {
				spread = append(spread, n)
			}
			slices.Sort(spread)
			t.Logf("%s: 300 fresh connections over %d workers: %v (min %d, max %d)",
				class, len(counts), spread, spread[0], spread[len(spread)-1])
			if len(counts) != 3 {
				t.Errorf("served by %d workers, want 3", len(counts))
			}
			if kids := m.children(); len(kids) != 3 {
				t.Fatalf("children %v", kids)
			}

			const clients = 4
			load := startRawLoad(t, m.addrs[0], "/", clients)
			testwait.Until(t, waitLimit, "load running", func() bool { return load.OK.Load() > 50 })
			victim := firstPid(m.children())
			syscall.Kill(victim, syscall.SIGKILL)
			m.waitLog(fmt.Sprintf("worker pid=%d exited signal=SIGKILL", victim))
			testwait.Until(t, waitLimit, "3 workers again", func() bool { return len(m.children()) == 3 })
			before := load.OK.Load()
			testwait.Until(t, waitLimit, "load continues", func() bool { return load.OK.Load() > before+50 })
			load.Stop()
			t.Logf("%s: kill -9 under load: %d ok, %d failed, %d refused", class, load.OK.Load(), load.Failed(), load.DialErrs.Load())
			// Each client has one connection at a time: at most one each was
			// in flight or queued on the killed worker's socket; a reconnect
			// can race that socket's close once more.
			if n := load.Failed() + load.DialErrs.Load(); n > 2*clients {
				t.Errorf("%d requests failed, more than the killed worker can have held (%d clients)", n, clients)
				for _, f := range load.Failures() {
					t.Log(f)
				}
			}
		})
	}
}

// reuse_port with --user nobody: the arbiter (root) makes every worker's
// SO_REUSEPORT socket, so workers running as nobody serve, on port 0 and on
// a privileged port. Had a worker bound its own (evloop used to, through
// gnet), it would have been refused: a SO_REUSEPORT group admits sockets
// of the uid that made it only (root's reservation), nobody cannot bind a
// port under 1024, and port 0 would have been a new port.
func TestReusePortAsNobody(t *testing.T) {
	skipShort(t)
	uid, _ := testserver.Nobody(t)
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755) // nobody must reach the binary
	}
	bin, err := testserver.Build(dir, "./cmd/multiserve")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, class, bind string }{
		{"evloop", "evloop", "127.0.0.1:0"},
		{"evloop-privileged-port", "evloop", freePrivilegedAddr(t)},
		{"goroutine", "goroutine", "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.Start(t, bin, "-w", "2", "-k", tc.class, "-b", tc.bind,
				"--reuse-port", "--user", "nobody", "echo")
			seen := map[int]bool{}
			deadline := time.Now().Add(30 * time.Second)
			for len(seen) < 2 && time.Now().Before(deadline) {
				pid, err := echoPid(s.Addr)
				if err != nil {
					t.Fatal(err)
				}
				seen[pid] = true
			}
			if len(seen) < 2 {
				t.Fatalf("only workers %v answered", seen)
			}
			for pid := range seen {
				if got := procUID(t, pid); got != uid {
					t.Errorf("worker %d runs as uid %d, want nobody (%d)", pid, got, uid)
				}
			}
			s.Signal(syscall.SIGTERM)
			if code, err := s.Wait(30 * time.Second); err != nil || code != 0 {
				t.Errorf("exit %d, %v\n%s", code, err, s.Log())
			}
		})
	}
}

// freePrivilegedAddr finds a loopback port under 1024 nothing listens on
// (the test runs as root).
func freePrivilegedAddr(t *testing.T) string {
	for port := 1023; port >= 900; port-- {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Skip("no free port in 900-1023")
	return ""
}

// reuse_port: a worker retired gracefully (TTOU) under load closes its own
// socket; connections hashed to it meanwhile must not be reset. The worker
// runtime, for every class, gates the socket (a new SYN is dropped and
// retransmitted to a sibling), lets the class accept what is queued, then
// stops the class and closes the socket (workers/ownsocket.go), so no
// request fails. Before that only evloop did it; the other classes kept
// the socket open until they exited and lost 2-8 requests here.
func TestReusePortRetireUnderLoad(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 3)
		cfg.ReusePort = true
		m := startMaster(t, cfg, true)
		load := startRawLoad(t, m.addrs[0], "/", 4)
		testwait.Until(t, waitLimit, "load running", func() bool { return load.OK.Load() > 50 })
		for i := range 2 {
			m.signal(syscall.SIGTTOU)
			m.waitLog(fmt.Sprintf("scaling to %d workers", 2))
			testwait.Until(t, waitLimit, "2 children", func() bool { return len(m.children()) == 2 })
			m.signal(syscall.SIGTTIN)
			testwait.Until(t, waitLimit, "3 children", func() bool { return len(m.children()) == 3 })
			before := load.OK.Load()
			testwait.Until(t, waitLimit, fmt.Sprintf("load continues after retire %d", i+1), func() bool { return load.OK.Load() > before+50 })
		}
		load.Stop()
		t.Logf("%s: 2 workers retired under load: %d ok, %d failed, %d refused",
			class, load.OK.Load(), load.Failed(), load.DialErrs.Load())
		load.WantNoLoss(t, true)
	})
}
