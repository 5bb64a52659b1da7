package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// TestProcessTitles: ps tells the arbiter, its workers (class, name,
// generation) and the old arbiter during a USR2 upgrade apart, from
// /proc/PID/cmdline.
func TestProcessTitles(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "ms.pid")
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "2", "-k", "threaded", "--name", "shop", "--pid", pidfile, "echo")
	arbiter := "multiserve: arbiter [shop]"
	waitTitle(t, s.Pid(), func(title string) bool { return title == arbiter })
	workerRE := regexp.MustCompile(`^multiserve: worker \d+ \[threaded\] shop \(gen (\d)\)$`)
	waitChildren := func(gen string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var titles []string
			n := 0
			for _, pid := range children(s.Pid()) {
				title := argv0(pid)
				titles = append(titles, title)
				if m := workerRE.FindStringSubmatch(title); m != nil && m[1] == gen {
					n++
				}
			}
			if n == 2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("want 2 workers of gen %s, children are %q\n%s", gen, titles, s.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitChildren("1")
	s.Signal(syscall.SIGHUP)
	waitChildren("2")
	s.Signal(syscall.SIGUSR2)
	var newPid int
	waitTitle(t, s.Pid(), func(title string) bool {
		_, err := fmt.Sscanf(title, arbiter+" (old, new arbiter pid %d)", &newPid)
		return err == nil
	})
	waitTitle(t, newPid, func(title string) bool { return title == arbiter })
	syscall.Kill(newPid, syscall.SIGQUIT)
	waitTitle(t, s.Pid(), func(title string) bool { return title == arbiter }) // the upgrade ended
}

// argv0 is the first argument in /proc/PID/cmdline, NULs trimmed.
func argv0(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	first, _, _ := strings.Cut(strings.TrimRight(string(b), "\x00"), "\x00")
	return first
}

func waitTitle(t *testing.T, pid int, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok(argv0(pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d's title is %q", pid, argv0(pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// children are the pids whose parent is ppid, from /proc/*/stat.
func children(ppid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; parse after ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}
