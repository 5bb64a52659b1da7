package arbiter_test

import (
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"

	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testwait"
	"github.com/multiserve/multiserve/workers"
)

// forClasses runs an end-to-end scenario once per worker class.
func forClasses(t *testing.T, f func(t *testing.T, class string)) {
	for _, class := range e2eClasses {
		t.Run(strings.ReplaceAll(class, "/", "_"), func(t *testing.T) {
			t.Parallel()
			f(t, class)
		})
	}
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("real-process test")
	}
}

// N workers serve, each a child of the arbiter, each answering requests.
func TestWorkersServe(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		m := startMaster(t, testConfig(class, 3), true)
		for pid := range m.servingPids(3) {
			if !m.children()[pid] {
				t.Errorf("pid %d answered but is not a child of the arbiter %d", pid, m.pid())
			}
		}
		if n := len(m.children()); n != 3 {
			t.Errorf("arbiter has %d children, want 3", n)
		}
		if os.Getenv("GOMAXPROCS") == "" {
			procs := max(1, runtime.NumCPU()/3)
			if workers.SingleThread(class) {
				procs = 2 // the serving thread's P and an idle one
			}
			want := fmt.Sprintf("GOMAXPROCS=%d", procs)
			for pid := range m.children() {
				env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
				if !slices.Contains(strings.Split(string(env), "\x00"), want) {
					t.Errorf("worker %d environment lacks %s", pid, want)
				}
			}
		}
		log := m.logText()
		for _, want := range []string{"booting worker pid=", "listening at: http://" + m.addrs[0], "using worker class: " + testConfig(class, 1).WorkerClass, "3 workers"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q", want)
			}
		}
	})
}

// kill -9 of a worker: a replacement is spawned and serves; the other
// worker keeps its pid.
func TestKilledWorkerIsReplaced(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		m := startMaster(t, testConfig(class, 2), true)
		var before map[int]bool
		testwait.Until(t, waitLimit, "2 children", func() bool { before = m.children(); return len(before) == 2 })
		var victim, other int
		for pid := range before {
			if victim == 0 {
				victim = pid
			} else {
				other = pid
			}
		}
		syscall.Kill(victim, syscall.SIGKILL)
		m.waitLog(fmt.Sprintf("worker pid=%d exited signal=SIGKILL", victim))
		var fresh int
		testwait.Until(t, waitLimit, "a replacement worker serving", func() bool {
			pid, err := m.getPid()
			if err != nil {
				t.Logf("request during respawn: %v", err)
			}
			if pid != victim && pid != other && pid != 0 {
				fresh = pid
			}
			return fresh != 0
		})
		if kids := m.children(); !kids[other] || !kids[fresh] || kids[victim] || len(kids) != 2 {
			t.Fatalf("children %v, want {%d (untouched), %d (replacement)}", kids, other, fresh)
		}
	})
}

// A worker whose serving loop is stuck stops beating; the arbiter SIGABRTs
// it after timeout and a replacement serves. stallbeat stands in for a
// class whose heartbeat comes from its serving loop.
func TestSilentWorkerIsKilled(t *testing.T) {
	skipShort(t)
	cfg := testConfig("stallbeat", 1)
	cfg.Timeout = 2 * time.Second
	m := startMaster(t, cfg, true)
	old, err := m.getPid()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := client.Get("http://" + m.addrs[0] + "/hang")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	m.waitLog(fmt.Sprintf("worker %d timed out (was silent for", old))
	m.waitLog(fmt.Sprintf("worker pid=%d exited", old))
	// SIGABRT made the Go worker print its goroutines: the stuck handler
	// shows up in the log.
	if log := m.logText(); !strings.Contains(log, "SIGABRT: abort") || !strings.Contains(log, "testApp.func") {
		t.Errorf("no goroutine dump of the killed worker in the log")
	}
	testwait.Until(t, waitLimit, "a new worker serving", func() bool {
		pid, err := m.getPid()
		return err == nil && pid != old
	})
}

// TERM with a slow request in flight: the request completes, the arbiter
// exits 0 and no process of the group is left.
func TestGracefulStop(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		m := startMaster(t, testConfig(class, 2), true)
		resp, err := client.Get("http://" + m.addrs[0] + "/sleep?d=1s")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// Headers arrived: the request is in flight.
		m.signal(syscall.SIGTERM)
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("in-flight request cut: %v", err)
		}
		if _, err := strconv.Atoi(string(body)); err != nil {
			t.Fatalf("in-flight request body %q", body)
		}
		if code := m.wait(); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
		testwait.Until(t, waitLimit, "process group empty", func() bool { return len(m.group()) == 0 })
	})
}

// INT is a quick stop: exit 0, nothing left.
func TestQuickStop(t *testing.T) {
	skipShort(t)
	m := startMaster(t, testConfig("goroutine", 2), true)
	m.signal(syscall.SIGINT)
	if code := m.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	testwait.Until(t, waitLimit, "process group empty", func() bool { return len(m.group()) == 0 })
}

// HUP after editing the config: a whole new generation (new count) replaces
// the old one while a client running throughout sees no failed request.
// An invalid config on a later HUP changes nothing.
func TestReload(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 2)
		m := startMaster(t, cfg, true)
		var old map[int]bool
		testwait.Until(t, waitLimit, "2 children", func() bool { old = m.children(); return len(old) == 2 })

		var ok, failed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := m.getPid(); err != nil {
						failed.Add(1)
						t.Logf("%s request failed during reload: %v", time.Now().UTC().Format("15:04:05.000000"), err)
					} else {
						ok.Add(1)
					}
				}
			}()
		}

		cfg.Workers = 3
		m.writeConfig(cfg)
		m.signal(syscall.SIGHUP)
		var now map[int]bool
		testwait.Until(t, waitLimit, "3 new workers, old ones gone", func() bool {
			now = m.children()
			for pid := range now {
				if old[pid] {
					return false
				}
			}
			return len(now) == 3
		})
		m.servingPids(3)
		close(stop)
		wg.Wait()
		if failed.Load() != 0 || ok.Load() == 0 {
			t.Fatalf("during reload: %d ok, %d failed requests", ok.Load(), failed.Load())
		}

		// A broken config is logged and changes nothing.
		if err := writeFile(m.cfgPath, "{not json"); err != nil {
			t.Fatal(err)
		}
		m.signal(syscall.SIGHUP)
		m.waitLog("reload: invalid configuration, nothing changed")
		if kids := m.children(); len(kids) != 3 {
			t.Fatalf("after invalid reload: children %v, want the same 3 %v", kids, now)
		}
	})
}

// TTIN adds a worker, TTOU retires the oldest.
func TestScale(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		m := startMaster(t, testConfig(class, 2), true)
		var start map[int]bool
		testwait.Until(t, waitLimit, "2 children", func() bool { start = m.children(); return len(start) == 2 })
		m.signal(syscall.SIGTTIN)
		testwait.Until(t, waitLimit, "3 children", func() bool { return len(m.children()) == 3 })
		m.servingPids(3)
		m.signal(syscall.SIGTTOU)
		m.waitLog("scaling to 2 workers")
		m.signal(syscall.SIGTTOU)
		m.waitLog("scaling to 1 workers")
		var left map[int]bool
		testwait.Until(t, waitLimit, "1 child", func() bool { left = m.children(); return len(left) == 1 })
		for pid := range left {
			if start[pid] {
				t.Fatalf("TTOU kept an original worker %d; the oldest should go first", pid)
			}
		}
		if _, err := m.getPid(); err != nil {
			t.Fatal(err)
		}
	})
}

// max_requests: a worker recycles itself after N requests and is replaced,
// with no request failing.
func TestMaxRequests(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 1)
		cfg.MaxRequests = 5
		m := startMaster(t, cfg, true)
		// A worker past its limit serves on until its replacement is
		// ready, so count recycles, not exact per-worker totals.
		testwait.Until(t, waitLimit, "1 child", func() bool { return len(m.children()) == 1 })
		fds := m.fdCount()
		seen := map[int]int{}
		for n := 0; len(seen) < 3; n++ {
			if n == 2000 {
				t.Fatalf("%d requests with max_requests=5 saw workers %v, want at least 3", n, seen)
			}
			pid, err := m.getPid()
			if err != nil {
				t.Fatalf("request failed across a recycle: %v", err)
			}
			seen[pid]++
		}
		m.waitLog("max_requests reached (5)")
		// Each recycle closed the old worker's heartbeat file and status
		// pipe: once a single worker runs again the arbiter holds as many
		// fds as before.
		testwait.Until(t, waitLimit, "arbiter fd count back to "+strconv.Itoa(fds), func() bool {
			return len(m.children()) == 1 && m.fdCount() == fds
		})
	})
}

// arbiter SIGKILLed: the workers notice (parent pipe EOF) and exit, and the
// port can be bound again.
func TestArbiterKilled(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		m := startMaster(t, testConfig(class, 2), true)
		testwait.Until(t, waitLimit, "2 children", func() bool { return len(m.children()) == 2 })
		killed := time.Now()
		m.signal(syscall.SIGKILL)
		m.wait()
		for len(m.group()) != 0 {
			if time.Since(killed) > 2*time.Second {
				t.Fatalf("workers %v still running 2s after the arbiter was killed", m.group())
			}
			time.Sleep(10 * time.Millisecond)
		}
		ln, err := net.Listen("tcp", m.addrs[0])
		if err != nil {
			t.Fatalf("port not free after the arbiter died: %v", err)
		}
		ln.Close()
	})
}

// Start-up failures: the exit code (README, "Exit codes") and message, nothing left.
func TestStartupFailures(t *testing.T) {
	skipShort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	for _, tc := range []struct {
		name string
		edit func(cfg *testConfigT)
		code int
		want string
	}{
		{"port in use", func(c *testConfigT) { c.Bind = []string{taken.Addr().String()} }, 1,
			"bind " + taken.Addr().String() + ": address already in use"},
		{"unknown class", func(c *testConfigT) { c.WorkerClass = "nosuch" }, 2, `unknown worker class "nosuch"`},
		{"app load error", func(c *testConfigT) { c.App = "failload" }, 4, "boom: cannot load the app"},
		{"boot error", func(c *testConfigT) { c.WorkerClass = "failboot" }, 3, "failboot: cannot open the widget"},
		{"boot timeout", func(c *testConfigT) { c.WorkerClass, c.BootTimeout = "neverready", time.Second }, 3,
			"not ready within boot_timeout (1s)"},
		{"no workers", func(c *testConfigT) { c.Workers = 0 }, 2, "workers must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig("goroutine", 2)
			tc.edit(cfg)
			m := startMaster(t, cfg, false)
			if code := m.wait(); code != tc.code {
				t.Fatalf("exit code %d, want %d", code, tc.code)
			}
			if log := m.logText(); !strings.Contains(log, tc.want) {
				t.Fatalf("log lacks %q:\n%s", tc.want, log)
			}
			testwait.Until(t, waitLimit, "process group empty", func() bool { return len(m.group()) == 0 })
		})
	}
}

// A worker crashing after start-up is respawned (logged loudly), and the
// others keep serving.
func TestCrashedWorkerIsRespawned(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		m := startMaster(t, testConfig(class, 2), true)
		// The request that crashes the worker fails; that is the point.
		m.get("/exit?code=7")
		m.waitLog("exited code=7, respawning")
		testwait.Until(t, waitLimit, "2 workers again", func() bool { return len(m.children()) == 2 })
		if _, err := m.getPid(); err != nil {
			t.Fatal(err)
		}
	})
}

// A unix socket bind serves; the pidfile exists while running; both are
// removed after a clean stop.
func TestUnixSocketAndPidfile(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	cfg := testConfig("goroutine", 1)
	sock := dir + "/ms.sock"
	cfg.Bind = []string{"unix:" + sock}
	cfg.Pidfile = dir + "/ms.pid"
	m := startMaster(t, cfg, true)
	if m.addrs[0] != sock {
		t.Fatalf("ready address %q, want %q", m.addrs[0], sock)
	}
	if _, err := m.getPid(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg.Pidfile)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(m.pid()) {
		t.Fatalf("pidfile %q (%v), want %d", b, err, m.pid())
	}
	m.signal(syscall.SIGTERM)
	if code := m.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, p := range []string{sock, cfg.Pidfile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after stop (%v)", p, err)
		}
	}
}

// HUP with a config whose workers cannot boot: the new generation is
// stopped and the old one keeps serving, untouched.
func TestReloadFailureKeepsOldGeneration(t *testing.T) {
	skipShort(t)
	cfg := testConfig("goroutine+net/http", 2)
	m := startMaster(t, cfg, true)
	var old map[int]bool
	testwait.Until(t, waitLimit, "2 children", func() bool { old = m.children(); return len(old) == 2 })
	cfg.App = "failload"
	m.writeConfig(cfg)
	m.signal(syscall.SIGHUP)
	m.waitLog("reload failed, the old generation keeps serving")
	testwait.Until(t, waitLimit, "only the old workers", func() bool {
		return maps.Equal(m.children(), old)
	})
	for range 10 {
		pid, err := m.getPid()
		if err != nil || !old[pid] {
			t.Fatalf("after a failed reload: pid %d, err %v; want one of %v", pid, err, old)
		}
	}
}

// USR1 reaches the workers, which reopen their error log: after the file
// was moved away (logrotate), later lines land in a new file at the path.
func TestUSR1ReopensWorkerLogs(t *testing.T) {
	skipShort(t)
	cfg := testConfig("goroutine+net/http", 2)
	cfg.Errorlog = t.TempDir() + "/worker.log"
	m := startMaster(t, cfg, true)
	testwait.Until(t, waitLimit, "workers logging to the file", func() bool {
		b, _ := os.ReadFile(cfg.Errorlog)
		return strings.Count(string(b), "worker starting") == 2
	})
	if err := os.Rename(cfg.Errorlog, cfg.Errorlog+".1"); err != nil {
		t.Fatal(err)
	}
	m.signal(syscall.SIGUSR1)
	// The arbiter reopens first, then hands each worker its new file:
	// retire one only after both say they moved, or its last lines may
	// still go to the old file.
	testwait.Until(t, waitLimit, "both workers in the reopened log file", func() bool {
		b, _ := os.ReadFile(cfg.Errorlog)
		return strings.Count(string(b), "log files reopened") == 2
	})
	m.signal(syscall.SIGTTOU)
	testwait.Until(t, waitLimit, "the retired worker's line in the new file", func() bool {
		b, _ := os.ReadFile(cfg.Errorlog)
		return strings.Contains(string(b), "graceful stop: SIGTERM")
	})
}

// A worker that keeps failing after start-up is respawned with growing
// back-off, logged each time, while the healthy worker keeps serving and
// the arbiter keeps running; once the cause is gone the pool recovers.
func TestCrashLoopBacksOff(t *testing.T) {
	skipShort(t)
	marker := t.TempDir() + "/fail"
	cfg := testConfig("goroutine+net/http", 2)
	cfg.App = "failif:" + marker
	m := startMaster(t, cfg, true)
	var kids map[int]bool
	testwait.Until(t, waitLimit, "2 children", func() bool { kids = m.children(); return len(kids) == 2 })
	if err := writeFile(marker, ""); err != nil {
		t.Fatal(err)
	}
	victim := firstPid(kids)
	syscall.Kill(victim, syscall.SIGKILL)
	m.waitLog("crashes=3")
	if _, err := m.getPid(); err != nil {
		t.Fatalf("healthy worker stopped serving during the crash loop: %v", err)
	}
	log := m.logText()
	if !strings.Contains(log, "respawn_in=250ms") || !strings.Contains(log, "respawn_in=500ms") {
		t.Errorf("back-off did not grow (want respawn_in=250ms, then 500ms)")
	}
	os.Remove(marker)
	testwait.Until(t, waitLimit, "2 children again", func() bool { return len(m.children()) == 2 })
	m.servingPids(2)
}

func firstPid(m map[int]bool) int {
	for pid := range m {
		return pid
	}
	return 0
}

// WINCH retires every worker and keeps the arbiter; TTIN brings one back.
func TestWinch(t *testing.T) {
	skipShort(t)
	m := startMaster(t, testConfig("goroutine+net/http", 2), true)
	m.signal(syscall.SIGWINCH)
	testwait.Until(t, waitLimit, "no workers", func() bool { return len(m.children()) == 0 })
	select {
	case <-m.exited:
		t.Fatal("arbiter exited on WINCH")
	default:
	}
	m.signal(syscall.SIGTTIN)
	testwait.Until(t, waitLimit, "1 worker again", func() bool { return len(m.children()) == 1 })
	if _, err := m.getPid(); err != nil {
		t.Fatal(err)
	}
}

// A frozen worker (SIGSTOP: no thread runs, so nothing beats) is SIGABRTed
// after timeout, which a stopped process cannot act on, and SIGKILLed after
// the abort grace; a replacement serves.
func TestFrozenWorkerIsKilled(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 1)
		cfg.Timeout = time.Second
		m := startMaster(t, cfg, true)
		old, err := m.getPid()
		if err != nil {
			t.Fatal(err)
		}
		syscall.Kill(old, syscall.SIGSTOP)
		m.waitLog(fmt.Sprintf("worker %d timed out", old))
		m.waitLog(fmt.Sprintf("worker pid=%d did not exit after SIGABRT: SIGKILL", old))
		m.waitLog(fmt.Sprintf("worker pid=%d exited signal=SIGKILL", old))
		testwait.Until(t, waitLimit, "a new worker serving", func() bool {
			pid, err := m.getPid()
			return err == nil && pid != old
		})
	})
}
