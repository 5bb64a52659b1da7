//go:build chaos

package chaos

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/testwait"
)

// workers lists the arbiter's live (not zombie) children.
func workers(arbiter int) []int {
	var live []int
	for _, p := range testserver.Children(arbiter) {
		if procAlive(p) {
			live = append(live, p)
		}
	}
	return live
}

// waitWorkers polls until the arbiter has exactly n live workers.
func waitWorkers(arbiter, n int, d time.Duration) ([]int, bool) {
	var got []int
	ok := testwait.For(d, func() bool {
		got = workers(arbiter)
		return len(got) == n
	})
	return got, ok
}

// statFields returns the fields of /proc/PID/stat after the command
// name: [0] is the state, [1] the ppid, [2] the process group, [11] utime
// and [12] stime (fields 3, 4, 5, 14, 15 of proc(5)).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("chaos: /proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return nil, fmt.Errorf("chaos: /proc/%d/stat: short", pid)
	}
	return f, nil
}

// procAlive says whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	f, err := statFields(pid)
	return err == nil && f[0] != "Z"
}

// cpuTime is pid's utime+stime.
func cpuTime(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("chaos: /proc/%d/stat: bad times", pid)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// statusKB reads a "Key:  N kB" line of /proc/PID/status.
func statusKB(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("chaos: /proc/%d/status: no %s", pid, key)
}

// totalRSSKB sums VmRSS over pids.
func totalRSSKB(pids []int) int64 {
	var sum int64
	for _, p := range pids {
		if kb, err := statusKB(p, "VmRSS"); err == nil {
			sum += kb
		}
	}
	return sum
}

// groupMembers lists the live processes whose process group is pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := statFields(pid); err == nil && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
