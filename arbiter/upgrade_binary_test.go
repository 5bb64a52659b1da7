package arbiter_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/testwait"
)

// buildVersion builds cmd/multiserve stamped with version into path.
func buildVersion(t *testing.T, path, version string) {
	t.Helper()
	err := testserver.BuildTo(path, "./cmd/multiserve",
		"-ldflags", "-X github.com/multiserve/multiserve/internal/version.Version="+version)
	if err != nil {
		t.Fatal(err)
	}
}

// The operator's binary upgrade with the real binary: build 1.0.0, start
// it, replace the file in place with 2.0.0, USR2, WINCH, TERM the old
// arbiter; a client sending requests throughout sees no failure and the
// new version's workers answer at the end.
//
// threaded used to fail here: the new arbiter puts the sockets it adopts in
// blocking mode, on the file description the old workers share, and an old
// poller then sat in accept4 with its accepted connections unanswered
// (fdconn.Accept now restores O_NONBLOCK first).
func TestUpgradeSwapsBinary(t *testing.T) {
	skipShort(t)
	builds := t.TempDir()
	oldBin, newBin := filepath.Join(builds, "old"), filepath.Join(builds, "new")
	buildVersion(t, oldBin, "1.0.0-old")
	buildVersion(t, newBin, "2.0.0-new")
	for _, class := range []string{"sync", "threaded", "evloop", "goroutine"} {
		t.Run(class, func(t *testing.T) { upgradeSwapsBinary(t, class, oldBin, newBin) })
	}
}

func upgradeSwapsBinary(t *testing.T, class, oldBin, newBin string) {
	dir := t.TempDir()
	bin, pidfile := filepath.Join(dir, "multiserve"), filepath.Join(dir, "pid")
	copyFile(t, oldBin, bin)
	s := testserver.Start(t, bin, "-w", "2", "-k", class, "-b", "127.0.0.1:0", "--pid", pidfile, "echo")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	load := startRawLoad(t, s.Addr, "/", 3)
	testwait.Until(t, waitLimit, "requests served", func() bool { return load.OK.Load() > 20 })

	copyFile(t, newBin, bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	s.Signal(syscall.SIGUSR2)
	testwait.Until(t, waitLimit, "the new version ready", func() bool {
		return strings.Contains(s.Log(), "multiserve 2.0.0-new starting") && strings.Count(s.Log(), "msg=ready workers=") == 2
	})
	newPid := readPid(pidfile)
	if newPid == 0 || newPid == s.Pid() {
		t.Fatalf("pidfile has %d after the upgrade", newPid)
	}
	s.Signal(syscall.SIGWINCH)
	testwait.Until(t, waitLimit, "old workers gone", func() bool {
		for _, pid := range testserver.Children(s.Pid()) {
			if pid != newPid {
				return false
			}
		}
		return true
	})
	s.Signal(syscall.SIGTERM)
	testwait.Until(t, waitLimit, "old arbiter gone", func() bool {
		return errors.Is(syscall.Kill(s.Pid(), 0), syscall.ESRCH)
	})
	testwait.Until(t, waitLimit, "served by the new version's workers", func() bool {
		pid, err := echoPid(s.Addr)
		return err == nil && testserver.PPid(pid) == newPid
	})
	load.Stop()
	t.Logf("%d ok, %d refused at dial, %d failed", load.OK.Load(), load.DialErrs.Load(), load.Failed())
	load.WantNoLoss(t, true)
	// The new arbiter holds the log pipe: stop it so the test's Wait ends.
	syscall.Kill(newPid, syscall.SIGTERM)
	if _, err := s.Wait(30 * time.Second); err != nil {
		t.Error(err)
	}
}

// copyFile copies an executable.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// echoPid asks the echo app which worker answered.
func echoPid(addr string) (int, error) {
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		PID int `json:"pid"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("echo: %w", err)
	}
	return body.PID, nil
}
