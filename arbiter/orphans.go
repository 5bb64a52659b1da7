package arbiter

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// reapOrphans collects the exited processes the kernel re-parented to the
// arbiter because it is PID 1 (in a container, the arbiter is the PID
// namespace's init): a worker's child left behind when the worker died
// would otherwise stay a zombie until the container stops. Only zombies
// are waited for, and never a worker or the upgrade child, whose statuses
// reap and reapUpgrade collect; outside PID 1 nothing is touched, so a
// program embedding the arbiter keeps its other children's statuses.
func (a *arbiter) reapOrphans() {
	if os.Getpid() != 1 {
		return
	}
	for _, pid := range zombieChildren() {
		if a.workers[pid] != nil || (a.upgrade != nil && a.upgrade.pid == pid) {
			continue
		}
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		for errors.Is(err, unix.EINTR) {
			_, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		if err == nil {
			a.log.Debug("reaped an orphaned process", "pid", pid)
		}
	}
}

// zombieChildren lists this process's exited, unreaped children from /proc.
func zombieChildren() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if state, ppid, ok := procStat(pid); ok && state == "Z" && ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads the state and parent of pid from /proc/PID/stat. The
// command name may hold spaces and parentheses, so fields are counted from
// its last ')'.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, false
	}
	if _, err := fmt.Sscanf(string(b[i+1:]), " %s %d", &state, &ppid); err != nil {
		return "", 0, false
	}
	return state, ppid, true
}
