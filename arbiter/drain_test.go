package arbiter_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/rawload"
	"github.com/multiserve/multiserve/internal/testwait"
)

// termUnderLoad lets load get going, marks the time, sends TERM, waits
// for the arbiter to log logLine and to exit, then stops the load; it
// returns the arbiter's exit code.
func termUnderLoad(t *testing.T, m *master, load *rawload.Load, logLine string) int {
	t.Helper()
	testwait.Until(t, waitLimit, "requests served", func() bool { return load.OK.Load() > 20 })
	load.Mark()
	m.signal(syscall.SIGTERM)
	m.waitLog(logLine)
	code := m.wait()
	load.Stop()
	return code
}

// startRawLoad runs n clients against addr until stopped, a fresh
// connection per request (Connection: close), retrying nothing.
func startRawLoad(t *testing.T, addr, path string, n int) *rawload.Load {
	l := rawload.Start(rawload.Options{Addr: addr, Path: path, Clients: n})
	t.Cleanup(l.Stop)
	return l
}

// TERM with shutdown_delay under continuous load: every connection the
// server accepted into its queue is answered; clients only ever see a
// refused (or dropped) connection attempt once the stop began.
func TestShutdownDelayUnderLoad(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 2)
		cfg.ShutdownDelay = time.Second
		m := startMaster(t, cfg, true)
		load := startRawLoad(t, m.addrs[0], "/sleep?d=5ms", 4)
		code := termUnderLoad(t, m, load, "draining: reporting not ready")
		t.Logf("%s: %d ok (%d started after TERM), %d refused at dial, %d failed",
			class, load.OK.Load(), load.AfterMark.Load(), load.DialErrs.Load(), load.Failed())
		if code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		for _, f := range load.Failures() {
			t.Errorf("request failed: %s", f)
		}
		if load.AfterMark.Load() == 0 {
			t.Errorf("nothing served during shutdown_delay")
		}
	})
}
