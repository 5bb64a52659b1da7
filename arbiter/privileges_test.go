package arbiter_test

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

	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/internal/testserver"
)

// procUID is the real uid of pid, from /proc.
func procUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// --user nobody: the arbiter (root) binds, the workers run as nobody, the
// unix socket belongs to nobody and has the umask's mode.
func TestWorkersRunAsUser(t *testing.T) {
	skipShort(t)
	want, _ := testserver.Nobody(t)
	dir, bin := nobodyBinary(t)
	sock := filepath.Join(dir, "s.sock")
	s := testserver.Start(t, bin, "-w", "2", "-k", "goroutine", "-b", "127.0.0.1:0", "-b", "unix:"+sock,
		"--user", "nobody", "--umask", "0007", "echo")
	pid, err := echoPid(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := procUID(t, pid); got != want {
		t.Errorf("worker %d runs as uid %d, want nobody (%d)", pid, got, want)
	}
	if got := procUID(t, s.Pid()); got != 0 {
		t.Errorf("arbiter runs as uid %d, want root", got)
	}
	// The worker fchmod()s its heartbeat file (fd 3) as nobody: it must own it.
	var hb syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, proc.FDHeartbeat), &hb); err != nil {
		t.Fatal(err)
	}
	if int(hb.Uid) != want {
		t.Errorf("heartbeat file owned by %d, want nobody (%d)", hb.Uid, want)
	}
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != want {
		t.Errorf("unix socket owned by %d, want nobody (%d)", uid, want)
	}
	if perm := st.Mode().Perm(); perm&0o007 != 0 {
		t.Errorf("unix socket mode %o, want nothing for others (umask 0007)", perm)
	}
	s.Signal(syscall.SIGTERM)
	if code, err := s.Wait(30e9); err != nil || code != 0 {
		t.Errorf("exit %d, %v", code, err)
	}
}

// nobodyBinary builds multiserve into a fresh directory the user nobody
// can reach.
func nobodyBinary(t *testing.T) (dir, bin string) {
	t.Helper()
	dir = t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	bin, err := testserver.Build(dir, "./cmd/multiserve")
	if err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

// --user nobody with root-owned log files: the arbiter opens them for the
// workers, which write through the inherited descriptors, and after
// logrotate's rename plus USR1 both logs continue in new files at the
// paths, which nobody could not have created.
func TestWorkersRunAsUserLogFiles(t *testing.T) {
	skipShort(t)
	testserver.Nobody(t)
	dir, bin := nobodyBinary(t)
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	errlog, acclog := filepath.Join(logs, "error.log"), filepath.Join(logs, "access.log")
	s := testserver.Launch(t, bin, nil, "-w", "2", "-k", "sync", "-b", "127.0.0.1:0", "--user", "nobody",
		"--error-logfile", errlog, "--access-logfile", acclog, "--log-level", "debug", "echo")
	addr := waitFileMatch(t, errlog, `msg=ready addrs=tcp://(\S+)`)
	if _, err := echoPid(addr); err != nil {
		t.Fatal(err)
	}
	waitFileMatch(t, acclog, `"GET / HTTP/1.1" 200`)
	waitFileMatch(t, errlog, `worker starting`)
	for _, p := range []string{errlog, acclog} {
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
	}
	s.Signal(syscall.SIGUSR1)
	// Both workers got the reopened files before one is retired, or its
	// last lines may still go to the old file.
	movedBy := time.Now().Add(30 * time.Second)
	for b, _ := os.ReadFile(errlog); strings.Count(string(b), "log files reopened") < 2; b, _ = os.ReadFile(errlog) {
		if time.Now().After(movedBy) {
			t.Fatalf("the workers did not move to the reopened error log:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Signal(syscall.SIGTTOU)
	// The retired worker writes its last lines to the new error log.
	waitFileMatch(t, errlog, `graceful stop: SIGTERM`)
	deadline := time.Now().Add(30 * time.Second)
	for !fileHas(acclog, `"GET / HTTP/1.1" 200`) {
		if time.Now().After(deadline) {
			t.Fatalf("no access log line in the new file; log:\n%s", s.Log())
		}
		if _, err := echoPid(addr); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range []string{errlog, acclog} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Uid != 0 {
			t.Errorf("%s: owner %d, %v; want root's file", p, st.Uid, err)
		}
	}
	s.Signal(syscall.SIGTERM)
	if code, err := s.Wait(30e9); err != nil || code != 0 {
		t.Errorf("exit %d, %v; log:\n%s", code, err, s.Log())
	}
}

func fileHas(path, re string) bool {
	b, _ := os.ReadFile(path)
	return regexp.MustCompile(re).Match(b)
}

// waitFileMatch waits for re in the file at path and returns its first
// submatch (or the match).
func waitFileMatch(t *testing.T, path, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if m := rx.FindSubmatch(b); err == nil && m != nil {
			return string(m[len(m)-1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %s:\n%s", re, path, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
