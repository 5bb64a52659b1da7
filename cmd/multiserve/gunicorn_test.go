package main

import (
	"context"
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
	"github.com/multiserve/multiserve/internal/testwait"
)

// TestGunicornSettings: WEB_CONCURRENCY is the default worker count,
// raw_env (-e) reaches the workers' environment, chdir their working
// directory, and capture_output points their stdout and stderr at the
// arbiter's pipe; read from /proc of the real workers.
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
		env := environ(t, pid)
		for _, want := range []string{"GREETING=a,b", "OTHER=1"} {
			if !env[want] {
				t.Errorf("worker %d environment lacks %s", pid, want)
			}
		}
		if cwd, _ := os.Readlink(procPath(pid, "cwd")); cwd != dir {
			t.Errorf("worker %d runs in %q, want %q", pid, cwd, dir)
		}
		// capture_output: stdout and stderr are one pipe the arbiter reads
		// (arbiter TestCaptureOutput checks what arrives in the log).
		out, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/1", pid))
		if errOut, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid)); !strings.HasPrefix(out, "pipe:") || errOut != out {
			t.Errorf("worker %d stdout %q and stderr %q, want one pipe", pid, out, errOut)
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

// TestGunicornLeftOut: gunicorn's --preload, --daemon/-D and --reload, as
// flags or config keys, fail with one line naming what to use instead.
func TestGunicornLeftOut(t *testing.T) {
	dir := t.TempDir()
	preload := filepath.Join(dir, "g.toml")
	if err := os.WriteFile(preload, []byte("preload_app = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--preload"}, []string{"--preload", "re-executed"}},
		{[]string{"--daemon"}, []string{"--daemon", "systemd"}},
		{[]string{"-D"}, []string{"-D", "systemd"}},
		{[]string{"--reload"}, []string{"--reload", "HUP", "USR2"}},
		{[]string{"--reload=true"}, []string{"--reload", "HUP"}},
		{[]string{"-c", preload}, []string{"preload_app in " + preload, "re-executed"}},
	} {
		code, out := run(t, nil, tc.args...)
		if code != 2 || strings.Count(strings.TrimSpace(out), "\n") > 0 || strings.Contains(out, "unknown") {
			t.Errorf("%v: exit %d, want 2 and one line that is not 'unknown':\n%s", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// TestGunicornSettingsBad: raw_env, chdir and WEB_CONCURRENCY values that
// cannot work are usage errors naming the setting and where it came from.
func TestGunicornSettingsBad(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want []string
	}{
		{nil, []string{"-e", "NOVALUE"}, []string{"raw_env", "KEY=VALUE"}},
		{nil, []string{"-e", "1X=y"}, []string{"raw_env", "digit"}},
		{nil, []string{"-e", "MULTISERVE_WORKERS=3"}, []string{"raw_env", "multiserve's own"}},
		{nil, []string{"--chdir", "/nonexistent/dir"}, []string{"chdir", "existing directory"}},
		{[]string{"WEB_CONCURRENCY=many"}, nil, []string{"workers", "WEB_CONCURRENCY", "integer"}},
		{[]string{"WEB_CONCURRENCY=0"}, nil, []string{"workers", "WEB_CONCURRENCY", "at least 1"}},
	} {
		for _, check := range []bool{true, false} {
			args := tc.args
			if check {
				args = append([]string{"--check-config"}, args...)
			}
			code, out := run(t, tc.env, args...)
			if code != 2 || strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("%v %v: exit %d, want 2 and one line:\n%s", tc.env, args, code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%v %v: output lacks %q:\n%s", tc.env, args, w, out)
				}
			}
		}
	}
}

// TestWebConcurrency: WEB_CONCURRENCY is the default for workers, below
// the flag, MULTISERVE_WORKERS and the config file.
func TestWebConcurrency(t *testing.T) {
	file := filepath.Join(t.TempDir(), "w.toml")
	if err := os.WriteFile(file, []byte("workers = 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^workers\s+(\S+)\s+(\S+)$`)
	for _, tc := range []struct {
		env          []string
		args         []string
		value, where string
	}{
		{nil, nil, "1", "default"},
		{[]string{"WEB_CONCURRENCY=3"}, nil, "3", "env"},
		{[]string{"WEB_CONCURRENCY=3"}, []string{"-c", file}, "4", "file"},
		{[]string{"WEB_CONCURRENCY=3", "MULTISERVE_WORKERS=2"}, nil, "2", "env"},
		{[]string{"WEB_CONCURRENCY=3"}, []string{"-w", "5"}, "5", "flag"},
	} {
		code, out := run(t, append([]string{"WEB_CONCURRENCY=", "MULTISERVE_WORKERS="}, tc.env...), append([]string{"--print-config"}, tc.args...)...)
		m := line.FindStringSubmatch(out)
		if code != 0 || m == nil || m[1] != tc.value || m[2] != tc.where {
			t.Errorf("%v %v: exit %d, want workers %s from %s:\n%s", tc.env, tc.args, code, tc.value, tc.where, out)
		}
	}
}

// TestChdirAndRawEnv starts the server with a relative config file,
// --chdir and -e, and checks in /proc that the arbiter and its worker run
// in the chdir with the extra environment, that a relative log path lands
// there, and that HUP re-reads the relative config file from the start
// directory (the new generation has the file's new worker count).
func TestChdirAndRawEnv(t *testing.T) {
	work := t.TempDir()
	launch := t.TempDir()
	cfgPath := filepath.Join(launch, "ms.toml")
	writeCfg := func(workers string) {
		body := "workers = " + workers + "\naccesslog = \"access.log\"\n"
		if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("1")
	t.Chdir(launch) // the server starts here: -c ms.toml is relative to it
	s := testserver.Start(t, bin, "-c", "ms.toml", "--chdir", work, "-e", "GREETING=a,b", "-e", "HOME=/elsewhere",
		"-b", "127.0.0.1:0", "--graceful-timeout", "5", "echo")
	if got, _ := os.Readlink(procPath(s.Pid(), "cwd")); got != work {
		t.Errorf("arbiter cwd %q, want %q", got, work)
	}
	w := workerOf(t, s)
	if got, _ := os.Readlink(procPath(w, "cwd")); got != work {
		t.Errorf("worker cwd %q, want %q", got, work)
	}
	env := environ(t, w)
	for _, kv := range []string{"GREETING=a,b", "HOME=/elsewhere"} {
		if !env[kv] {
			t.Errorf("worker environment lacks %s", kv)
		}
	}
	if env["HOME="+os.Getenv("HOME")] && os.Getenv("HOME") != "/elsewhere" {
		t.Errorf("the inherited HOME is still there beside raw_env's")
	}
	if environ(t, s.Pid())["GREETING=a,b"] {
		t.Errorf("raw_env reached the arbiter's own environment")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := s.Get(ctx, "/logged"); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, waitLimit, "the access log in the chdir", func() bool {
		b, _ := os.ReadFile(filepath.Join(work, "access.log"))
		return strings.Contains(string(b), "/logged")
	})

	writeCfg("2")
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, waitLimit, "reload complete", func() bool { return strings.Contains(s.Log(), "reload complete") })
	testwait.Until(t, waitLimit, "the new generation's two workers", func() bool {
		kids := testserver.Children(s.Pid())
		return len(kids) == 2 && kids[0] != w && kids[1] != w
	})
}

func procPath(pid int, name string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), name)
}

// environ is a process's environment as a set of KEY=VALUE entries.
func environ(t *testing.T, pid int) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(procPath(pid, "environ"))
	if err != nil {
		return nil // exited meanwhile
	}
	out := map[string]bool{}
	for _, kv := range strings.Split(string(b), "\x00") {
		out[kv] = true
	}
	return out
}

// waitLimit is how long a test waits for a process change.
const waitLimit = 60 * time.Second
