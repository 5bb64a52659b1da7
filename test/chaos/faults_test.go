//go:build chaos

package chaos

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	stdsync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/testwait"
)

// killRecord is one SIGKILL sent to a worker.
type killRecord struct {
	at  time.Time
	pid int
}

// killer SIGKILLs random workers and measures how long until a new pid
// answers a request of the load run.
type killer struct {
	arbiter int
	log     func() string // the arbiter's log, for "booting worker pid=N"
	load    *loadStats

	mu         stdsync.Mutex
	kills      []killRecord
	killed     map[int]bool
	respawn    map[int]time.Duration // killed pid → kill until a new pid answered
	unmeasured int
	wg         stdsync.WaitGroup
}

func newKiller(s *testserver.Server, load *loadStats) *killer {
	return &killer{arbiter: s.Pid(), log: s.Log, load: load, killed: map[int]bool{}, respawn: map[int]time.Duration{}}
}

func (k *killer) isKilled(pid int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.killed[pid]
}

// killRandom SIGKILLs one live worker (none when all are respawning).
func (k *killer) killRandom() {
	pids := workers(k.arbiter)
	var live []int
	for _, p := range pids {
		if !k.isKilled(p) {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return
	}
	pid := live[rand.IntN(len(live))]
	before := map[int]bool{}
	for _, p := range pids {
		before[p] = true
	}
	at := time.Now()
	k.mu.Lock()
	k.kills = append(k.kills, killRecord{at, pid})
	k.killed[pid] = true
	k.mu.Unlock()
	_ = syscall.Kill(pid, syscall.SIGKILL)
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.measure(pid, at, before)
	}()
}

// measure waits (bounded) for a worker that did not exist at the kill to
// answer a request, and records kill → first answer.
func (k *killer) measure(pid int, at time.Time, before map[int]bool) {
	deadline := at.Add(5 * time.Second)
	newPid := 0
	// The arbiter's log names each worker it boots; scanning it is much
	// cheaper than walking /proc every few milliseconds.
	for newPid == 0 && time.Now().Before(deadline) {
		for _, m := range bootingRE.FindAllStringSubmatch(k.log(), -1) {
			if p, _ := strconv.Atoi(m[1]); !before[p] && !k.isKilled(p) {
				newPid = p
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	for newPid != 0 && time.Now().Before(deadline) && !k.isKilled(newPid) {
		if seen, ok := k.load.seenAt(newPid); ok {
			k.mu.Lock()
			k.respawn[pid] = seen.Sub(at)
			k.mu.Unlock()
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	k.mu.Lock()
	k.unmeasured++
	k.mu.Unlock()
}

var respawnInRE = regexp.MustCompile(`worker pid=(\d+) exited signal=SIGKILL, respawning.*respawn_in=(\S+)`)

// latencies returns every measured respawn latency, and those of kills the
// arbiter answered without back-off (its log says respawn_in=0s): the
// rest include the per-slot crash back-off.
func (k *killer) latencies(log string) (all, immediate []time.Duration) {
	now := map[int]bool{}
	for _, m := range respawnInRE.FindAllStringSubmatch(log, -1) {
		if p, _ := strconv.Atoi(m[1]); m[2] == "0s" {
			now[p] = true
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for pid, d := range k.respawn {
		all = append(all, d)
		if now[pid] {
			immediate = append(immediate, d)
		}
	}
	return all, immediate
}

// maxRespawnIn is the longest respawn_in the arbiter logged for a
// SIGKILLed worker.
func maxRespawnIn(log string) time.Duration {
	var longest time.Duration
	for _, m := range respawnInRE.FindAllStringSubmatch(log, -1) {
		if d, err := time.ParseDuration(m[2]); err == nil {
			longest = max(longest, d)
		}
	}
	return longest
}

// explained says whether a failed request can be blamed on a kill: its
// connection's worker was killed, or a kill happened while it was in
// flight (a fresh connection's worker is unknown until it answers).
func (k *killer) explained(r result) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.Pid != 0 && k.killed[r.Pid] {
		return true
	}
	for _, kr := range k.kills {
		if !kr.at.Before(r.Start) && !kr.at.After(r.End) {
			return true
		}
	}
	return false
}

// TestKillWorkerStorm: kill -9 a random worker every 200 ms under load.
// Only requests in flight on a killed worker may fail, and a client that
// retries a GET once sees none.
func TestKillWorkerStorm(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		const n = 3
		s := start(t, class, "-w", "3", "echo")
		dumpLogOnFailure(t, s)
		plain, stopPlain := startLoad(t, s.Addr, loadOpts{clients: 3, keepAlive: true, reconnectEvery: 4})
		retry, stopRetry := startLoad(t, s.Addr, loadOpts{clients: 2, keepAlive: true, reconnectEvery: 20, retry: true})
		k := newKiller(s, plain)
		end := time.Now().Add(pick(3*time.Second, 10*time.Second))
		for i := 0; i < 200 && time.Now().Before(end); i++ {
			k.killRandom()
			time.Sleep(200 * time.Millisecond) // the storm's period, not a wait for state
		}
		stopPlain()
		stopRetry()
		k.wg.Wait()

		var unexplained []result
		for _, r := range plain.failures {
			if !k.explained(r) {
				unexplained = append(unexplained, r)
			}
		}
		t.Logf("%s: %d kills; no-retry client %v; retry client %v", class, len(k.kills), plain, retry)
		all, immediate := k.latencies(s.Log())
		t.Logf("%s: respawn kill → new pid serving: p50/max %s; when the arbiter respawned at once (respawn_in=0s, not backing off) %s; %d not measured (new worker killed first or no answer in 5 s)",
			class, durStats(all), durStats(immediate), k.unmeasured)
		addLoad(class, plain)
		addLoad(class, retry)
		summaryOf(class, func(cs *classSummary) {
			cs.unexplained += int64(len(unexplained))
			cs.respawn = append(cs.respawn, all...)
			cs.respawnNow = append(cs.respawnNow, immediate...)
		})
		if len(unexplained) > 0 {
			t.Errorf("%d failures not on a killed worker; the arbiter's longest respawn back-off in the storm was %v (while every slot backs off, no worker serves)",
				len(unexplained), maxRespawnIn(s.Log()))
		}
		for i, r := range unexplained {
			if i == 5 {
				break
			}
			t.Errorf("failure not on a killed worker: %s (pid %d, %v..%v UTC): %v", errKind(r), r.Pid,
				r.Start.UTC().Format("15:04:05.000"), r.End.UTC().Format("15:04:05.000"), r.Err)
		}
		if f := retry.failed.Load(); f != 0 {
			t.Errorf("client retrying once: %d failed requests, want 0", f)
		}
		if plain.sent.Load() == 0 || len(k.kills) == 0 {
			t.Errorf("nothing happened: sent %d, kills %d", plain.sent.Load(), len(k.kills))
		}
		if _, ok := waitWorkers(s.Pid(), n, 30*time.Second); !ok {
			t.Errorf("worker count did not return to %d: %v", n, workers(s.Pid()))
		}
		mustGet(t, s.Addr, "/")
	})
}

// TestHUPStorm: a reload every second under load loses nothing.
func TestHUPStorm(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		s := start(t, class, "-w", "2", "echo")
		dumpLogOnFailure(t, s)
		fresh, stopFresh := startLoad(t, s.Addr, loadOpts{clients: 2})
		kept, stopKept := startLoad(t, s.Addr, loadOpts{clients: 2, keepAlive: true})
		hups := pick(4, 10)
		for i := 0; i < hups; i++ {
			if err := s.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the storm's period
		}
		stopFresh()
		stopKept()
		t.Logf("%s: %d HUPs; Connection: close client %v; keep-alive client %v", class, hups, fresh, kept)
		addLoad(class, fresh)
		addLoad(class, kept)
		for _, st := range []*loadStats{fresh, kept} {
			if f := st.failed.Load(); f != 0 {
				t.Errorf("%d failed requests across HUPs, want 0: %v", f, st)
			}
			logFailures(t, st, 5, s.Log())
		}
		if _, ok := waitWorkers(s.Pid(), 2, 30*time.Second); !ok {
			t.Errorf("worker count after HUPs: %v, want 2", workers(s.Pid()))
		}
	})
}

// logFailures logs up to n failed attempts with UTC times that match the
// server log's, and whether the connection was fresh.
func logFailures(t *testing.T, st *loadStats, n int, serverLog string) {
	t.Helper()
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, r := range st.failures {
		if i == n {
			break
		}
		conn := "fresh connection"
		if r.Reused {
			conn = "kept-alive connection"
		}
		t.Logf("  failed: %s on a %s, %s..%s UTC: %v", errKind(r), conn,
			r.Start.UTC().Format("15:04:05.000"), r.End.UTC().Format("15:04:05.000"), r.Err)
		if i == 0 {
			t.Logf("  server log around the first failure:\n%s", strings.Join(logAround(serverLog, r.Start, r.End, 150*time.Millisecond), "\n"))
		}
	}
}

var logTimeRE = regexp.MustCompile(`^time=(\S+)`)

// logAround returns the server log lines stamped within margin of
// [from, to].
func logAround(log string, from, to time.Time, margin time.Duration) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		m := logTimeRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err == nil && !at.Before(from.Add(-margin)) && !at.After(to.Add(margin)) {
			out = append(out, "    "+l)
		}
	}
	return out
}

// TestTTINTTOUStorm: 20 mixed TTIN/TTOU in 2 s under load; a client that
// retries once loses nothing and the count converges.
func TestTTINTTOUStorm(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		const initial = 2
		s := start(t, class, "-w", "2", "echo")
		dumpLogOnFailure(t, s)
		load, stop := startLoad(t, s.Addr, loadOpts{clients: 3, keepAlive: true, reconnectEvery: 20, retry: true})
		want := initial
		rng := rand.New(rand.NewPCG(1, uint64(len(class))))
		var ins, outs int
		for i := 0; i < 20; i++ {
			sig := syscall.SIGTTIN
			// Stay within 1..5 workers: the test is about churn, not about TTOU at 1.
			if (rng.IntN(2) == 0 && want > 1) || want >= 5 {
				sig = syscall.SIGTTOU
			}
			// Two pending signals of one kind coalesce: wait until the
			// arbiter has taken this one before the next, so every signal
			// counts however loaded the machine is.
			seen := strings.Count(s.Log(), "signal=SIGTT")
			if err := s.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if !testwait.For(10*time.Second, func() bool { return strings.Count(s.Log(), "signal=SIGTT") > seen }) {
				t.Fatalf("the arbiter did not log signal %d of the storm", i+1)
			}
			if sig == syscall.SIGTTIN {
				want++
				ins++
			} else {
				want--
				outs++
			}
			time.Sleep(100 * time.Millisecond) // 20 signals in 2 s
		}
		got, ok := waitWorkers(s.Pid(), want, 30*time.Second)
		stop()
		t.Logf("%s: %d TTIN, %d TTOU: want %d workers, have %d; client %v", class, ins, outs, want, len(got), load)
		addLoad(class, load)
		if !ok {
			t.Errorf("worker count did not converge to %d: %v", want, workers(s.Pid()))
		}
		if f := load.failed.Load(); f != 0 {
			t.Errorf("client retrying once: %d failed requests, want 0", f)
		}
	})
}

// TestTermUnderLoad: TERM while clients send; every request that got a
// connection is answered in full; exit 0; no process left.
func TestTermUnderLoad(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		s := start(t, class, "-w", "2", "sim")
		dumpLogOnFailure(t, s)
		path := "/?io=20ms"
		fresh, stopFresh := startLoad(t, s.Addr, loadOpts{clients: 3, path: path, stopOnDialErr: true})
		kept, stopKept := startLoad(t, s.Addr, loadOpts{clients: 3, path: path, keepAlive: true, stopOnDialErr: true})
		testwait.For(5*time.Second, func() bool { return fresh.sent.Load() > 20 && kept.sent.Load() > 20 })
		pids := workers(s.Pid())
		if err := s.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		termAt := time.Now()
		code, err := s.Wait(30 * time.Second)
		exitAt := time.Now()
		// Clients stop at their first dial error; give them a bounded moment.
		testwait.For(5*time.Second, func() bool { return len(fresh.stoppedClients()) == 3 && len(kept.stoppedClients()) == 3 })
		stopFresh()
		stopKept()
		t.Logf("%s: Connection: close client %v; keep-alive client %v", class, fresh, kept)
		addLoad(class, fresh)
		addLoad(class, kept)
		if err != nil || code != 0 {
			t.Errorf("arbiter exit: code %d, %v; want 0", code, err)
		}
		for _, st := range []*loadStats{fresh, kept} {
			for _, r := range st.failures {
				if !r.DialErr {
					t.Errorf("accepted request not answered: %s: %v (sent %v after TERM, failed %v before the arbiter's exit was seen)%s",
						errKind(r), r.Err, r.Start.Sub(termAt).Round(time.Millisecond),
						exitAt.Sub(r.End).Round(time.Millisecond), backlogHint(r, exitAt))
				}
			}
		}
		for _, p := range pids {
			if procAlive(p) {
				t.Errorf("worker %d still running after the arbiter exited", p)
			}
		}
		if left := groupMembers(s.Pid()); len(left) > 0 {
			t.Errorf("processes left in the server's process group: %v", left)
		}
	})
}

// backlogHint explains a reset that came as the arbiter exited: the
// connection sat in the listen backlog that the arbiter still held while
// no worker accepted any more.
func backlogHint(r result, exitAt time.Time) string {
	if r.Got == 0 && !r.Reused && r.End.Sub(exitAt).Abs() < 100*time.Millisecond {
		return ": fresh connection reset when the arbiter exited (it was in the listen backlog)"
	}
	return ""
}

// stoppedClients lists the clients a dial error ended.
func (st *loadStats) stoppedClients() []int {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []int
	for i := range st.stopped {
		out = append(out, i)
	}
	return out
}

// TestArbiterKilled: SIGKILL the arbiter; its workers are gone within 2 s
// and the port can be bound again.
func TestArbiterKilled(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		s := start(t, class, "-w", "2", "echo")
		dumpLogOnFailure(t, s)
		pids := workers(s.Pid())
		mustGet(t, s.Addr, "/")
		if err := s.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		gone := testwait.For(2*time.Second, func() bool {
			for _, p := range pids {
				if procAlive(p) {
					return false
				}
			}
			return true
		})
		took := time.Since(begin)
		if !gone {
			for _, p := range pids {
				if procAlive(p) {
					t.Errorf("worker %d alive 2 s after the arbiter was SIGKILLed", p)
				}
			}
			return
		}
		t.Logf("%s: %d workers gone %v after the arbiter's SIGKILL", class, len(pids), took.Round(time.Millisecond))
		var ln net.Listener
		var err error
		if !testwait.For(2*time.Second, func() bool { ln, err = net.Listen("tcp", s.Addr); return err == nil }) {
			t.Fatalf("port %s not free: %v", s.Addr, err)
		}
		ln.Close()
	})
}

var bootingRE = regexp.MustCompile(`booting worker pid=(\d+)`)

// TestCrashAtBootBackoff: after a successful start, respawns that crash at
// boot are backed off (no fork bomb) while the other workers serve; once
// the fault is gone the count recovers.
func TestCrashAtBootBackoff(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		const n = 3
		marker := filepath.Join(t.TempDir(), "crash")
		s := startBin(t, crashBin, []string{"CHAOS_CRASH_MARKER=" + marker}, class, "-w", "3", "crashecho")
		dumpLogOnFailure(t, s)
		pids, ok := waitWorkers(s.Pid(), n, 10*time.Second)
		if !ok {
			t.Fatalf("want %d workers, have %v", n, pids)
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		load, stop := startLoad(t, s.Addr, loadOpts{clients: 2, keepAlive: true, reconnectEvery: 10, retry: true})
		bootsBefore := len(bootingRE.FindAllString(s.Log(), -1))
		_ = syscall.Kill(pids[0], syscall.SIGKILL)
		window := pick(3*time.Second, 6*time.Second)
		time.Sleep(window) // observation window: count boot attempts in it
		attempts := len(bootingRE.FindAllString(s.Log(), -1)) - bootsBefore
		live := len(workers(s.Pid()))
		if err := os.Remove(marker); err != nil {
			t.Fatal(err)
		}
		// The slot's back-off after a few crashes is a few seconds.
		_, recovered := waitWorkers(s.Pid(), n, 40*time.Second)
		stop()
		t.Logf("%s: %d boot attempts in %v while the marker existed (%d workers live); client %v",
			class, attempts, window, live, load)
		addLoad(class, load)
		// Back-off 0, 250 ms, 500 ms, 1 s... gives a handful; a respawn per
		// crash with no back-off would give hundreds.
		if maxAttempts := int(window/time.Second)*2 + 4; attempts > maxAttempts {
			t.Errorf("%d boot attempts in %v: no back-off (want at most %d)", attempts, window, maxAttempts)
		}
		if attempts < 2 {
			t.Errorf("%d boot attempts in %v: the crashing slot is not retried", attempts, window)
		}
		if load.sent.Load() == 0 || load.failed.Load() != 0 {
			t.Errorf("healthy workers did not keep serving: %v", load)
		}
		if !recovered {
			t.Errorf("worker count did not recover to %d after the fault was removed: %v", n, workers(s.Pid()))
		}
		mustGet(t, s.Addr, "/")
	})
}
