package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// TestGunicornSettings: WEB_CONCURRENCY is the default worker count,
// raw_env (-e) reaches the workers' environment, chdir their working
// directory, and capture_output points their stdout and stderr at the
// error log file; read from /proc of the real workers.
func TestGunicornSettings(t *testing.T) {
	dir := t.TempDir()
	errlog := filepath.Join(dir, "error.log")
	s := testserver.Launch(t, bin, []string{"WEB_CONCURRENCY=2"}, "-b", "127.0.0.1:0", "-e", "GREETING=a,b", "-e", "OTHER=1",
		"--chdir", dir, "--capture-output", "--error-logfile", "error.log", "echo")
	deadline := time.Now().Add(60 * time.Second)
	var kids []int
	for len(kids) != 2 || !strings.Contains(readFile(errlog), "msg=ready addrs=") {
		if time.Now().After(deadline) {
			t.Fatalf("want 2 workers and a ready line in %s (relative to --chdir); children %v\n%s\n%s", errlog, kids, s.Log(), readFile(errlog))
		}
		time.Sleep(20 * time.Millisecond)
		kids = children(s.Pid())
	}
	for _, pid := range kids {
		env := strings.Split(readFile(fmt.Sprintf("/proc/%d/environ", pid)), "\x00")
		for _, want := range []string{"GREETING=a,b", "OTHER=1"} {
			if !slices.Contains(env, want) {
				t.Errorf("worker %d environment lacks %s", pid, want)
			}
		}
		if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); cwd != dir {
			t.Errorf("worker %d runs in %q, want %q", pid, cwd, dir)
		}
		for _, fd := range []int{1, 2} {
			if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); got != errlog {
				t.Errorf("worker %d fd %d is %q, want the error log", pid, fd, got)
			}
		}
	}
	s.Signal(syscall.SIGTERM)
	if code, err := s.Wait(30 * time.Second); err != nil || code != 0 {
		t.Errorf("exit %d, %v", code, err)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
