package arbiter_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/control"
	"github.com/multiserve/multiserve/internal/rawload"
	"github.com/multiserve/multiserve/internal/testwait"
)

// Every way a worker leaves, under continuous keep-alive load from clients
// that retry nothing (one request in flight per connection, every third a
// POST with a body), one server per class: HUP ×4, a TTIN/TTOU storm,
// `ctl worker add/remove`, max_requests=200 with jitter all along, a USR2
// upgrade (WINCH, then TERM to the old arbiter), and TERM with
// shutdown_delay to the new one; evloop also with a handler pool, and the
// auto class. No request may be lost, no connection
// reset (docs/deploy.md, "Retiring a worker").
func TestRetireUnderKeepAliveLoad(t *testing.T) {
	skipShort(t)
	forRetireClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(strings.TrimSuffix(class, "/pool"), 2)
		if strings.HasSuffix(class, "/pool") {
			cfg.Threads = 4 // evloop: handlers on a pool instead of the loop
		}
		cfg.MaxRequests, cfg.MaxRequestsJitter = 200, 50
		cfg.ShutdownDelay = 300 * time.Millisecond
		cfg.ControlSocket = t.TempDir() + "/ctl.sock"
		m := startMaster(t, cfg, true)
		load := rawload.Start(rawload.Options{
			Addr: m.addrs[0], Clients: 8, KeepAlive: true, PostEvery: 3, BodySize: 2048,
			Timeout: 5 * time.Second, Pace: time.Millisecond,
		})
		t.Cleanup(load.Stop)
		r := &retireRun{t: t, m: m, load: load}
		r.progress("load running")

		r.step("HUP ×4", func() {
			for i := range 4 {
				m.signal(syscall.SIGHUP)
				testwait.Until(t, waitLimit, "reload complete", func() bool { return r.count("reload complete") == i+1 })
				r.progress("after a HUP")
			}
		})
		r.step("TTIN/TTOU storm", func() {
			// Each signal waits for the scaling it causes: two pending
			// signals of one kind coalesce into one, and on a loaded machine
			// no fixed pause keeps them apart. Counted in the log: with
			// max_requests recycling all along, the number of processes is
			// rarely exactly the target.
			for i, sig := range []syscall.Signal{syscall.SIGTTIN, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGTTOU} {
				m.signal(sig)
				testwait.Until(t, waitLimit, fmt.Sprintf("scaling %d", i+1), func() bool { return r.count("msg=\"scaling to ") == i+1 })
			}
			r.progress("after the storm")
		})
		r.step("ctl worker add/remove", func() {
			for _, verb := range []string{"add", "remove"} {
				if _, err := control.Do(cfg.ControlSocket, []string{"worker", verb, "1"}); err != nil {
					t.Fatalf("ctl worker %s 1: %v", verb, err)
				}
				r.progress("after ctl worker " + verb)
			}
			testwait.Until(t, waitLimit, "eight scalings", func() bool { return r.count("msg=\"scaling to ") == 8 })
		})
		r.step("max_requests", func() {
			n := r.count("max_requests reached")
			testwait.Until(t, waitLimit, "two more max_requests recycles", func() bool { return r.count("max_requests reached") >= n+2 })
			r.progress("after the recycles")
		})
		var newPid int
		r.step("USR2, WINCH, TERM old", func() {
			cfg.ControlSocket = "" // the old arbiter holds it until it exits
			m.writeConfig(cfg)
			m.signal(syscall.SIGUSR2)
			newPid = m.upgradedPid()
			testwait.Until(t, waitLimit, "the new arbiter ready", func() bool { return r.count("msg=ready workers=") == 2 })
			r.progress("both arbiters serving")
			m.winchOld(newPid)
			m.signal(syscall.SIGTERM)
			if code := m.wait(); code != 0 {
				t.Errorf("old arbiter exit code %d, want 0", code)
			}
			r.progress("the new arbiter alone")
		})
		r.step("TERM with shutdown_delay", func() {
			if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, waitLimit, "the new arbiter stopped", func() bool { return r.count("arbiter stopped") == 2 })
			load.Stop()
		})
		t.Logf("%s: %s; by step: %s", class, load, strings.Join(r.steps, ", "))
		if load.Closed.Load() == 0 {
			t.Errorf("no response closed its connection: nothing was retired under load?")
		}
		load.WantNoLoss(t, false) // connects refused once the last arbiter stopped are expected
	})
}

// forRetireClasses is forClasses plus evloop with a handler pool and the
// auto class.
func forRetireClasses(t *testing.T, f func(t *testing.T, class string)) {
	forClasses(t, f)
	for _, class := range []string{"evloop/pool", "auto"} {
		t.Run(strings.ReplaceAll(class, "/", "_"), func(t *testing.T) {
			t.Parallel()
			f(t, class)
		})
	}
}

// retireRun is TestRetireUnderKeepAliveLoad's state: the server, the load
// and the requests lost by each step.
type retireRun struct {
	t     *testing.T
	m     *master
	load  *rawload.Load
	steps []string
}

// progress waits until the load got 100 more responses.
func (r *retireRun) progress(what string) {
	r.t.Helper()
	n := r.load.OK.Load()
	testwait.Until(r.t, waitLimit, "requests served "+what, func() bool { return r.load.OK.Load() > n+100 })
}

// step runs f and records the requests lost and reset meanwhile.
func (r *retireRun) step(name string, f func()) {
	r.t.Helper()
	lost, resets := r.load.Failed(), r.load.Resets.Load()
	f()
	r.steps = append(r.steps, fmt.Sprintf("%s lost %d reset %d", name, r.load.Failed()-lost, r.load.Resets.Load()-resets))
}

// count is how many times s occurs in the arbiters' log.
func (r *retireRun) count(s string) int { return strings.Count(r.m.logText(), s) }
