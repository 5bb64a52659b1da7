package arbiter_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

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
	dir := t.TempDir()
	// nobody must reach the binary it is executed as.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	bin, err := testserver.Build(dir, "./cmd/multiserve")
	if err != nil {
		t.Fatal(err)
	}
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
