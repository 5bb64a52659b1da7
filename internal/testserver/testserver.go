// Package testserver builds a multiserve binary and runs it as a real
// process for end-to-end tests: port 0, readiness read from the log,
// process group killed at cleanup.
package testserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	stdsync "sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the Go package pkg (e.g. "./cmd/multiserve", relative to
// the module root) into dir and returns the binary's path.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	return bin, BuildTo(bin, pkg)
}

// Main is a TestMain body for tests of a binary: it builds pkg into a
// temporary directory other users can reach (tests that run it as nobody),
// sets *bin to its path, runs the tests and removes the directory. It
// returns the exit code for os.Exit.
func Main(m *testing.M, bin *string, pkg string) int {
	dir, err := os.MkdirTemp("", filepath.Base(pkg)+"-bin-")
	if err == nil {
		defer os.RemoveAll(dir)
		if err = os.Chmod(dir, 0o755); err == nil {
			*bin, err = Build(dir, pkg)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		return 1
	}
	return m.Run()
}

// BuildTo compiles pkg into the file bin with extra `go build` flags
// (build tags, -ldflags), replacing bin if it exists.
func BuildTo(bin, pkg string, flags ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	args := append(append([]string{"build"}, flags...), "-o", bin, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// BuildStatic builds the release binary into bin with the script the
// Dockerfile runs (deploy/build-static.sh), stamped with version.
func BuildStatic(bin, version string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	out, err := exec.Command(filepath.Join(root, "deploy", "build-static.sh"), bin, version).CombinedOutput()
	if err != nil {
		return fmt.Errorf("deploy/build-static.sh: %v\n%s", err, out)
	}
	return nil
}

// Nobody returns the uid and gid of the user nobody, for tests that run a
// process as another user; it skips t unless the test runs as root and the
// user exists.
func Nobody(t testing.TB) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Skipf("user nobody has non-numeric ids %q:%q", u.Uid, u.Gid)
	}
	return uid, gid
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Server is a running multiserve arbiter.
type Server struct {
	Cmd  *exec.Cmd
	Addr string // host:port of the first TCP bind, once ready
	log  *syncBuffer
	done chan struct{}
	err  error // Wait's result, valid after done is closed
}

var readyRE = regexp.MustCompile(`msg=ready addrs=(\S+)`)

// Start runs bin with args in its own process group and waits until it
// logs readiness (or exits). The process group is SIGKILLed at cleanup.
func Start(t testing.TB, bin string, args ...string) *Server {
	t.Helper()
	s := Launch(t, bin, nil, args...)
	if err := s.WaitReady(60 * time.Second); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, s.Log())
	}
	return s
}

// Launch starts bin without waiting for readiness. env is appended to the
// test's environment.
func Launch(t testing.TB, bin string, env []string, args ...string) *Server {
	t.Helper()
	s := &Server{log: &syncBuffer{}, done: make(chan struct{})}
	s.Cmd = exec.Command(bin, args...)
	s.Cmd.Env = append(os.Environ(), env...)
	s.Cmd.Stdout = s.log
	s.Cmd.Stderr = s.log
	s.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { s.err = s.Cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGKILL) // the group may be gone already
		<-s.done
	})
	return s
}

// WaitReady waits for the ready log line and sets Addr.
func (s *Server) WaitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if m := readyRE.FindStringSubmatch(s.Log()); m != nil {
			first := strings.Split(m[1], ",")[0]
			s.Addr = strings.TrimPrefix(first, "tcp://")
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("server exited before ready: %v", s.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("server not ready after %v", d)
}

// Log returns everything the server printed so far.
func (s *Server) Log() string { return s.log.String() }

// Pid is the arbiter's pid.
func (s *Server) Pid() int { return s.Cmd.Process.Pid }

// Signal sends sig to the arbiter.
func (s *Server) Signal(sig syscall.Signal) error { return syscall.Kill(s.Pid(), sig) }

// Wait waits up to d for the arbiter to exit and returns its exit code.
func (s *Server) Wait(d time.Duration) (int, error) {
	select {
	case <-s.done:
		return s.Cmd.ProcessState.ExitCode(), nil
	case <-time.After(d):
		return -1, fmt.Errorf("server still running after %v", d)
	}
}

// Done is closed when the arbiter has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// URL is http://Addr + path.
func (s *Server) URL(path string) string { return "http://" + s.Addr + path }

// Get fetches path with a fresh connection and a deadline.
func (s *Server) Get(ctx context.Context, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(path), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return resp, buf.Bytes(), err
}

// Children lists the pids whose parent is pid, from /proc.
func Children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		if PPid(p) == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// PPid reads pid's parent from /proc/PID/status (0 when pid is gone).
func PPid(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var pp int
		if _, err := fmt.Sscanf(sc.Text(), "PPid:\t%d", &pp); err == nil {
			return pp
		}
	}
	return 0
}

type syncBuffer struct {
	mu  stdsync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
