package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// cpuList is a set of CPU numbers, kept sorted.
type cpuList []int

func (c cpuList) String() string {
	parts := make([]string, len(c))
	for i, n := range c {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (c cpuList) set() *unix.CPUSet {
	var s unix.CPUSet
	for _, n := range c {
		s.Set(n)
	}
	return &s
}

// parseCPUList reads "0", "1-3" or "0,2,4-5".
func parseCPUList(s string) (cpuList, error) {
	var out cpuList
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bench: bad CPU list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bench: bad CPU list %q", s)
			}
		}
		for n := a; n <= b; n++ {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: empty CPU list %q", s)
	}
	return out, nil
}

// usableCPUs lists the CPUs this process may run on.
func usableCPUs() cpuList {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		out := make(cpuList, runtime.NumCPU())
		for i := range out {
			out[i] = i
		}
		return out
	}
	var out cpuList
	for n := 0; n < len(s)*64; n++ {
		if s.IsSet(n) {
			out = append(out, n)
		}
	}
	return out
}

// cpuSplit is where the server and the load generators run.
type cpuSplit struct {
	server, load cpuList // nil: no pinning
}

func (c cpuSplit) pinned() bool { return len(c.server) > 0 }

func (c cpuSplit) String() string {
	if !c.pinned() {
		return "no CPU split (fewer than 2 CPUs usable): server and load share the CPUs"
	}
	return fmt.Sprintf("server processes pinned to CPU %s; load generators (wrk, vegeta, slow/idle clients, this runner) pinned to CPU %s (sched_setaffinity)", c.server, c.load)
}

// defaultSplit gives the server the first usable CPU and the load the rest.
func defaultSplit(serverFlag, loadFlag string) (cpuSplit, error) {
	cpus := usableCPUs()
	if serverFlag == "" && loadFlag == "" {
		if len(cpus) < 2 {
			return cpuSplit{}, nil
		}
		return cpuSplit{server: cpus[:1], load: cpus[1:]}, nil
	}
	s, err := parseCPUList(serverFlag)
	if err != nil {
		return cpuSplit{}, err
	}
	l, err := parseCPUList(loadFlag)
	if err != nil {
		return cpuSplit{}, err
	}
	return cpuSplit{server: s, load: l}, nil
}

// pinSelf moves every thread of this process onto the load CPUs. Threads
// the runtime creates later are cloned from these, so they inherit it.
func (c cpuSplit) pinSelf() error {
	if !c.pinned() {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("bench: list own threads: %w", err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, c.load.set()); err != nil && err != unix.ESRCH {
			return fmt.Errorf("bench: pin thread %d to CPU %s: %w", tid, c.load, err)
		}
	}
	runtime.GOMAXPROCS(len(c.load))
	return nil
}

// startPinned starts cmd from a dedicated, locked OS thread whose affinity
// is cpus (none: unchanged), so the child and every process and thread it
// creates inherit it, and waits for cmd on that same thread. Keeping the
// forking thread alive until the child exits matters because Pdeathsig
// fires when the forking *thread* exits; the runner dying kills the child.
// The goroutine ends still locked, so the runtime discards the thread
// instead of reusing it with the wrong affinity. It returns Start's error
// and a channel that yields Wait's.
func startPinned(cpus cpuList, cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if len(cpus) > 0 {
			if err := unix.SchedSetaffinity(0, cpus.set()); err != nil {
				started <- fmt.Errorf("bench: set affinity %s: %w", cpus, err)
				return
			}
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		setAutogroupNice(cmd.Process.Pid)
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// childNice is the nice value given to every server and wrk session (see
// startPinned); 0 leaves priorities alone.
var childNice int

// setNice gives every thread of this process the nice value n (Linux nice
// is per thread), and so to the servers and wrk forked later. With
// autogroup scheduling (sched_autogroup_enabled) nice only ranks threads
// inside one session, so each child also gets its own session (Setsid) and
// that session's autogroup the same nice value; the runner's own autogroup
// too. A negative value (root only) lets the measured processes win the
// CPU from whatever else runs on a shared machine.
func setNice(n int) error {
	childNice = n
	setAutogroupNice(os.Getpid())
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("bench: list own threads: %w", err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && err != unix.ESRCH {
			return fmt.Errorf("bench: set nice %d: %w", n, err)
		}
	}
	return nil
}

// setAutogroupNice applies childNice to pid's scheduling autogroup, when
// the kernel has autogroups and a nice value was asked for.
func setAutogroupNice(pid int) {
	if childNice != 0 {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/autogroup", pid), []byte(strconv.Itoa(childNice)), 0)
	}
}

// childAttr puts a child in its own session (so its own process group and
// scheduling autogroup) and kills it if the thread that forked it dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}
