package arbiter_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/multiserve/multiserve/arbiter"
	"github.com/multiserve/multiserve/internal/testwait"
)

var newPidRE = regexp.MustCompile(`new_pid=(\d+)`)

// upgradedPid waits for the USR2 log line and returns the new arbiter's pid.
func (m *master) upgradedPid() int {
	m.t.Helper()
	m.waitLog("upgrade: started new arbiter pid=")
	sm := newPidRE.FindStringSubmatch(m.logText())
	pid, _ := strconv.Atoi(sm[1])
	return pid
}

// winchOld sends WINCH to the old arbiter after a USR2 and waits until its
// workers are gone (newPid, the new arbiter, is its child too).
func (m *master) winchOld(newPid int) {
	m.t.Helper()
	m.signal(syscall.SIGWINCH)
	testwait.Until(m.t, waitLimit, "old workers gone", func() bool {
		kids := m.children()
		delete(kids, newPid)
		return len(kids) == 0
	})
}

func readPid(path string) int {
	b, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// USR2 starts a new arbiter on the same sockets; WINCH retires the old
// workers and TERM the old arbiter, while a client that retries nothing
// sends requests throughout: none fails, and afterwards the new arbiter's
// workers answer.
func TestUpgradeUnderLoad(t *testing.T) {
	skipShort(t)
	cfg := testConfig("goroutine", 2)
	cfg.Pidfile = t.TempDir() + "/pid"
	m := startMaster(t, cfg, true)
	load := startRawLoad(t, m.addrs[0], "/", 3)
	testwait.Until(t, waitLimit, "requests served", func() bool { return load.OK.Load() > 20 })

	m.signal(syscall.SIGUSR2)
	newPid := m.upgradedPid()
	testwait.Until(t, waitLimit, "the new arbiter ready", func() bool { return strings.Count(m.logText(), "msg=ready workers=") == 2 })
	if got := readPid(cfg.Pidfile); got != newPid {
		t.Errorf("pidfile has %d, want the new arbiter %d", got, newPid)
	}
	if got := readPid(cfg.Pidfile + arbiter.OldPidSuffix); got != m.pid() {
		t.Errorf("pidfile%s has %d, want the old arbiter %d", arbiter.OldPidSuffix, got, m.pid())
	}

	m.winchOld(newPid)
	m.signal(syscall.SIGTERM)
	if code := m.wait(); code != 0 {
		t.Errorf("old arbiter exit code %d, want 0", code)
	}
	testwait.Until(t, waitLimit, "served by the new arbiter's workers", func() bool {
		pid, err := m.getPid()
		return err == nil && procsWhere(func(p, ppid, _ int) bool { return p == pid && ppid == newPid })[pid]
	})
	if _, err := os.Stat(cfg.Pidfile + arbiter.OldPidSuffix); !os.IsNotExist(err) {
		t.Errorf("old pidfile left behind: %v", err)
	}
	load.Stop()
	t.Logf("%d ok, %d refused at dial, %d failed", load.OK.Load(), load.DialErrs.Load(), load.Failed())
	load.WantNoLoss(t, true)
	syscall.Kill(newPid, syscall.SIGTERM)
}

// A new arbiter that cannot start leaves the old one serving, with its
// pidfile back in place.
func TestUpgradeFailureKeepsOld(t *testing.T) {
	skipShort(t)
	cfg := testConfig("goroutine", 1)
	cfg.Pidfile = t.TempDir() + "/pid"
	m := startMaster(t, cfg, true)
	if err := writeFile(m.cfgPath, "{not json"); err != nil {
		t.Fatal(err)
	}
	m.signal(syscall.SIGUSR2)
	newPid := m.upgradedPid()
	m.waitLog("upgrade: new arbiter pid=" + strconv.Itoa(newPid) + " exited code=2; this arbiter keeps serving")
	if got := readPid(cfg.Pidfile); got != m.pid() {
		t.Errorf("pidfile has %d, want %d (restored)", got, m.pid())
	}
	if _, err := m.getPid(); err != nil {
		t.Fatal(err)
	}
}
