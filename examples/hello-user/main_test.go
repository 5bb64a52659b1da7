package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestGreeter(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"/", "Hello, stranger, from worker " + strconv.Itoa(os.Getpid()) + "\n"},
		{"/?name=Ada", "Hello, Ada, from worker " + strconv.Itoa(os.Getpid()) + "\n"},
	} {
		rec := httptest.NewRecorder()
		greeter{}.ServeHTTP(rec, httptest.NewRequest("GET", tc.target, nil))
		if rec.Code != 200 || rec.Body.String() != tc.want {
			t.Errorf("%s: %d %q", tc.target, rec.Code, rec.Body)
		}
	}
}

// build compiles the example into a temp dir: the real binary a user gets.
func build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the example binary")
	}
	bin := filepath.Join(t.TempDir(), "hello-user")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestCheckConfig(t *testing.T) {
	bin := build(t)
	out, err := exec.Command(bin, "--check-config", "greeter").CombinedOutput()
	if err != nil {
		t.Errorf("--check-config greeter: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--check-config", "greetr").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), `did you mean "greeter"`) {
		t.Errorf("--check-config greetr: %v\n%s", err, out)
	}
}

// TestServes runs the example as a server on a unix socket (no port to
// find) and gets a greeting from a worker that is not the arbiter.
func TestServes(t *testing.T) {
	bin := build(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	cmd := exec.Command(bin, "-b", "unix:"+sock, "-w", "1", "-k", "goroutine", "greeter")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	body := ""
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := client.Get("http://x/?name=Ada")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never served: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling for readiness, with a deadline
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if !strings.HasPrefix(body, "Hello, Ada, from worker ") || strings.HasSuffix(body, " "+pid+"\n") {
		t.Errorf("body %q (arbiter pid %s)", body, pid)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after TERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("no exit within 30 s of TERM")
	}
}
