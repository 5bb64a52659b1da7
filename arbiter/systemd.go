package arbiter

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// systemd integration (docs/deploy.md, deploy/).
//
// Socket activation: when LISTEN_PID is this process and LISTEN_FDS=N, the
// sockets systemd passed (fds 3..3+N-1, named by LISTEN_FDNAMES) are used
// instead of binding --bind; the variables are removed so no worker sees
// them. A USR2 child arbiter receives the same sockets through
// EnvUpgradeFDs, marked as systemd's. These sockets are never gated or
// unlinked: systemd keeps them, and their queue, for the next instance.
//
// Notification (sd_notify, when NOTIFY_SOCKET is set): READY=1 once the
// first generation is ready (with MAINPID= from a USR2 child, so systemd
// follows the new arbiter; the unit needs NotifyAccess=all for that);
// RELOADING=1 with MONOTONIC_USEC on HUP, READY=1 when the reload
// completed or failed; STOPPING=1 when a stop begins; MAINPID= back to the
// old arbiter when a USR2 child exits; WATCHDOG=1 on the arbiter's tick
// while WATCHDOG_USEC is set and at least one worker is ready and beating.

// systemdPrefix names a socket-activated listener ("systemd:NAME").
const systemdPrefix = "systemd:"

// takeSystemd returns the sockets systemd passed to this process, or nil.
func takeSystemd() ([]inheritedFD, error) {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("arbiter: LISTEN_FDS=%q: want a positive count", os.Getenv("LISTEN_FDS"))
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(k)
	}
	fds := make([]inheritedFD, n)
	for i := range fds {
		name := "fd" + strconv.Itoa(3+i)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		fds[i] = inheritedFD{FD: 3 + i, Bind: systemdPrefix + name, Systemd: true}
	}
	return fds, nil
}

// adoptSystemd wraps socket-activated fds as listeners.
func adoptSystemd(fds []inheritedFD) ([]*listener, error) {
	var lns []*listener
	for _, f := range fds {
		ln, err := adoptFD("fd://" + strconv.Itoa(f.FD))
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("%w (socket activation %s)", err, f.Bind)
		}
		ln.name = f.Bind
		lns = append(lns, ln)
	}
	return lns, nil
}

// notifyReady tells systemd the server is ready; a USR2 child also names
// itself the main process.
func (a *arbiter) notifyReady() {
	if a.upgradeChild {
		a.notify(fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid()))
		return
	}
	a.notify("READY=1")
}

// notifyReloading marks the start of a HUP reload.
func (a *arbiter) notifyReloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	a.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
}

// watchdogInterval is WATCHDOG_USEC when it applies to this process.
func watchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

// petWatchdog sends WATCHDOG=1, at most twice per watchdog interval, while
// at least one worker is ready and its heartbeat is within timeout.
func (a *arbiter) petWatchdog(now time.Time) {
	if a.watchdog <= 0 || now.Sub(a.lastPet) < a.watchdog/2 || !a.anyHealthy(now) {
		return
	}
	a.lastPet = now
	a.notify("WATCHDOG=1")
}

func (a *arbiter) anyHealthy(now time.Time) bool {
	for _, w := range a.workers {
		if !w.ready || w.retiring || w.exited || w.killed || !w.abortAt.IsZero() {
			continue
		}
		limit := w.gen.cfg.Timeout
		if limit <= 0 {
			return true
		}
		if silent, err := w.hb.Silence(); err == nil && min(silent, now.Sub(w.readyAt)) <= limit {
			return true
		}
	}
	return false
}
