package arbiter

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/proc"
)

// USR2 binary upgrade (gunicorn's, nginx's).
//
// The arbiter moves its pidfile to PIDFILE.oldbin and starts the executable
// at the path it was started from (a binary replaced in place is the new
// version) with the same arguments, as a new arbiter. The new arbiter
// inherits every listening socket (fds 3.. in the order of EnvUpgradeFDs,
// which maps each to its --bind entry) and adopts them instead of binding;
// it writes PIDFILE with its own pid and boots its own workers. Both
// arbiters' workers now accept on the same sockets. The operator then sends
// the old arbiter WINCH (its workers stop gracefully, it keeps running so
// it can take over again with TTIN/HUP if the new version misbehaves) and
// TERM or QUIT (it exits; the sockets stay open in the new arbiter: the old
// one neither filters nor unlinks them).
//
// If the new arbiter exits (it could not start, or was stopped) while the
// old one runs, PIDFILE.oldbin is moved back and the old one serves on.
// The executable path is resolved when the arbiter starts
// (Options.Executable), not from /proc/self/exe, which names the deleted
// old file after an in-place replacement.

// EnvUpgradeFDs names the listening sockets a USR2 child arbiter inherits:
// a JSON list of {"fd":N,"bind":"--bind entry"}.
const EnvUpgradeFDs = "MULTISERVE_UPGRADE_FDS"

// OldPidSuffix is appended to the pidfile's name while a USR2 upgrade runs.
const OldPidSuffix = ".oldbin"

type inheritedFD struct {
	FD      int    `json:"fd"`
	Bind    string `json:"bind"`
	Systemd bool   `json:"systemd,omitempty"` // socket-activated: adopted whatever --bind says
}

// upgradeState is the running USR2 child arbiter.
type upgradeState struct {
	pid     int
	started time.Time
}

// startUpgrade handles USR2.
func (a *arbiter) startUpgrade() {
	if a.stop != nil {
		return
	}
	if a.upgrade != nil {
		a.log.Warn(fmt.Sprintf("USR2 ignored: new arbiter pid=%d is already running", a.upgrade.pid))
		return
	}
	pidfile := a.gen.cfg.Pidfile
	if pidfile != "" {
		if err := os.Rename(pidfile, pidfile+OldPidSuffix); err != nil {
			a.log.Error("upgrade: move pidfile aside", "err", err)
		}
	}
	cmd := exec.Command(a.exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Dir = a.opt.StartDir // its relative arguments are relative to it, not to chdir
	var fds []inheritedFD
	for i, ln := range a.lns {
		cmd.ExtraFiles = append(cmd.ExtraFiles, ln.file)
		fds = append(fds, inheritedFD{FD: 3 + i, Bind: ln.name, Systemd: strings.HasPrefix(ln.name, systemdPrefix)})
	}
	js, _ := json.Marshal(fds)
	cmd.Env = append(upgradeEnv(), EnvUpgradeFDs+"="+string(js))
	if err := cmd.Start(); err != nil {
		a.log.Error("upgrade: cannot start the new arbiter; this one keeps serving", "err", err)
		a.restorePidfile()
		return
	}
	a.upgrade = &upgradeState{pid: cmd.Process.Pid, started: time.Now()}
	cmd.Process.Release() // reaped with wait4 in reapUpgrade
	a.setTitle()
	a.log.Info(fmt.Sprintf("upgrade: started new arbiter pid=%d (%s); send this one WINCH then TERM once it is ready",
		a.upgrade.pid, a.exe), "new_pid", a.upgrade.pid)
	a.notify(fmt.Sprintf("MAINPID=%d", a.upgrade.pid))
}

// upgradeEnv is this process's environment without the variables that
// describe only this process's inheritance.
func upgradeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		switch {
		case proc.IsProtocolVar(kv), key == EnvUpgradeFDs,
			key == "LISTEN_FDS", key == "LISTEN_PID", key == "LISTEN_FDNAMES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// reapUpgrade notices that the USR2 child arbiter exited.
func (a *arbiter) reapUpgrade() {
	if a.upgrade == nil {
		return
	}
	var ws unix.WaitStatus
	got, err := unix.Wait4(a.upgrade.pid, &ws, unix.WNOHANG, nil)
	for errors.Is(err, unix.EINTR) {
		got, err = unix.Wait4(a.upgrade.pid, &ws, unix.WNOHANG, nil)
	}
	if err == nil && got == 0 {
		return
	}
	st := exitStatus{code: -1}
	if ws.Exited() {
		st.code = ws.ExitStatus()
	} else {
		st.signal = ws.Signal()
	}
	a.log.Error(fmt.Sprintf("upgrade: new arbiter pid=%d exited %s; this arbiter keeps serving", a.upgrade.pid, st),
		"new_pid", a.upgrade.pid)
	a.upgrade = nil
	a.restorePidfile()
	a.setTitle()
	a.notify(fmt.Sprintf("MAINPID=%d", os.Getpid()))
}

// restorePidfile moves PIDFILE.oldbin back after a failed upgrade.
func (a *arbiter) restorePidfile() {
	p := a.gen.cfg.Pidfile
	if p == "" {
		return
	}
	if err := os.Rename(p+OldPidSuffix, p); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Error("upgrade: restore pidfile", "err", err)
	}
}

// takeInherited returns the sockets a USR2 parent handed over and removes
// the variable so no child sees it.
func takeInherited() ([]inheritedFD, error) {
	v, ok := os.LookupEnv(EnvUpgradeFDs)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvUpgradeFDs)
	var fds []inheritedFD
	if err := json.Unmarshal([]byte(v), &fds); err != nil {
		return nil, fmt.Errorf("arbiter: %s: %w", EnvUpgradeFDs, err)
	}
	for _, f := range fds {
		unix.CloseOnExec(f.FD)
	}
	return fds, nil
}
