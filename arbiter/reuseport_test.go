package arbiter_test

import (
	"fmt"
	"sort"
	"syscall"
	"testing"
)

// reuse_port: every worker has its own socket; fresh connections spread
// across all of them; SIGKILL of a worker under load fails at most the
// requests it held (one per client at most: each client has one
// connection open, plus a reconnect racing the socket's close), and its
// replacement gets its own socket.
func TestReusePortSpread(t *testing.T) {
	skipShort(t)
	for _, class := range []string{"sync", "threaded", "goroutine"} {
		t.Run(class, func(t *testing.T) {
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
			sort.Ints(spread)
			t.Logf("%s: 300 fresh connections over %d workers: %v", class, len(counts), spread)
			if len(counts) != 3 {
				t.Errorf("served by %d workers, want 3", len(counts))
			}
			if kids := m.children(); len(kids) != 3 {
				t.Fatalf("children %v", kids)
			}

			const clients = 4
			load := startRawLoad(t, m.addrs[0], "/", clients)
			eventually(t, "load running", func() bool { return load.ok.Load() > 50 })
			victim := firstPid(m.children())
			syscall.Kill(victim, syscall.SIGKILL)
			m.waitLog(fmt.Sprintf("worker pid=%d exited signal=SIGKILL", victim))
			eventually(t, "3 workers again", func() bool { return len(m.children()) == 3 })
			before := load.ok.Load()
			eventually(t, "load continues", func() bool { return load.ok.Load() > before+50 })
			load.halt()
			t.Logf("%s: kill -9 under load: %d ok, %d failed, %d refused", class, load.ok.Load(), load.failed.Load(), load.dialErr.Load())
			// Each client has one connection at a time: at most one each was
			// in flight or queued on the killed worker's socket; a reconnect
			// can race that socket's close once more.
			if n := load.failed.Load() + load.dialErr.Load(); n > 2*clients {
				t.Errorf("%d requests failed, more than the killed worker can have held (%d clients)", n, clients)
				for _, f := range load.failures {
					t.Log(f)
				}
			}
		})
	}
}
