package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime/stime in /proc/PID/stat (USER_HZ). It is
// 100 on every Linux architecture Go supports; sysconf is not reachable
// without cgo.
const clockTick = 10 * time.Millisecond

// procStat holds the /proc/PID/stat fields the bench uses.
type procStat struct {
	pid, ppid                    int
	utime, stime, cutime, cstime uint64 // clock ticks
	start                        uint64 // start time since boot, in ticks: tells a reused pid apart
}

// readStat parses /proc/PID/stat. The command name may contain spaces and
// parentheses, so the fields are counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("bench: read stat of %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state) of proc(5); field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	num := func(n int) uint64 { v, _ := strconv.ParseUint(f[n-3], 10, 64); return v }
	return procStat{
		pid: pid, ppid: int(num(4)),
		utime: num(14), stime: num(15), cutime: num(16), cstime: num(17),
		start: num(22),
	}, nil
}

// allPPIDs maps every live pid to its parent pid.
func allPPIDs() map[int]int {
	m := map[int]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return m
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			m[pid] = st.ppid
		}
	}
	return m
}

// tree returns root and every live descendant of it (workers, and their
// children if any), root first.
func tree(root int) []int {
	kids := map[int][]int{}
	for pid, ppid := range allPPIDs() {
		kids[ppid] = append(kids[ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, kids[out[i]]...)
	}
	return out
}

// treeCPU is the CPU time (user+system) spent so far by root and all its
// live descendants, plus what root's reaped children spent (cutime/cstime),
// so a worker that exits during a run is still counted exactly once.
func treeCPU(root int) time.Duration {
	var ticks uint64
	for i, pid := range tree(root) {
		st, err := readStat(pid)
		if err != nil {
			continue // exited between the walk and the read
		}
		ticks += st.utime + st.stime
		if i == 0 {
			ticks += st.cutime + st.cstime
		}
	}
	return time.Duration(ticks) * clockTick
}

// statusField returns a field of /proc/PID/status ("VmRSS", "Cpus_allowed_list").
func statusField(pid int, name string) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// treeRSS is the summed resident set size of root and its descendants, in KiB.
func treeRSS(root int) int64 {
	var kb int64
	for _, pid := range tree(root) {
		v := strings.TrimSuffix(statusField(pid, "VmRSS"), " kB")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		kb += n
	}
	return kb
}

// treeCPUsAllowed describes where the processes of a tree may run, e.g.
// "0" when every process is pinned to CPU 0, or "0 (3 procs), 0-1 (1 proc)".
func treeCPUsAllowed(root int) string {
	count := map[string]int{}
	var order []string
	for _, pid := range tree(root) {
		v := statusField(pid, "Cpus_allowed_list")
		if v == "" {
			continue
		}
		if count[v] == 0 {
			order = append(order, v)
		}
		count[v]++
	}
	if len(order) == 1 {
		return order[0]
	}
	parts := make([]string, len(order))
	for i, v := range order {
		parts[i] = fmt.Sprintf("%s (%d procs)", v, count[v])
	}
	return strings.Join(parts, ", ")
}

// cpuBusy is the time the given CPUs spent running processes (user, nice,
// system, steal; not idle, iowait or interrupts, which on loopback include
// the client's packets) since boot, from /proc/stat. Against the server's own CPU time over the
// same run it shows how much of the server's CPU other processes took.
func cpuBusy(cpus cpuList) time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	want := map[string]bool{}
	for _, c := range cpus {
		want[fmt.Sprintf("cpu%d", c)] = true
	}
	var ticks uint64
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !want[f[0]] {
			continue
		}
		// user nice system idle iowait irq softirq steal
		for i, v := range f[1:9] {
			if i >= 3 && i <= 6 { // idle iowait irq softirq
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick
}
