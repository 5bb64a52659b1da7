package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/tlsconf"
)

// TestCheckConfigMatchesStart feeds each bad configuration to
// --check-config and to a real start: both must fail with the same
// one-line message and exit status, and the start must fail before it
// binds anything (its bind address stays free to take).
func TestCheckConfigMatchesStart(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsconf.WriteTestFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	noDir := filepath.Join(dir, "missing", "x.log")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"class cannot do TLS", []string{"-k", "evloop", "--certfile", files.Cert, "--keyfile", files.Key}, 2, "TLS"},
		{"certificate without key", []string{"--certfile", files.Cert}, 2, "keyfile"},
		{"unknown class", []string{"-k", "theaded"}, 2, "threaded"},
		{"access log cannot be created", []string{"--access-logfile", noDir}, 2, "accesslog: cannot create x.log"},
		{"error log cannot be created", []string{"--error-logfile", noDir}, 2, "errorlog: cannot create x.log"},
		{"log path is a directory", []string{"--access-logfile", dir}, 2, "is a directory"},
		{"unknown app", []string{"nosuchapp"}, 4, `unknown app "nosuchapp"`},
		{"pidfile cannot be created", []string{"--pid", noDir}, 2, "pidfile: cannot create x.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, nil, append([]string{"--check-config"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("--check-config: exit %d, want %d and one line with %q:\n%s", code, tc.code, tc.want, out)
			}
			addr := freeAddr(t)
			startCode, startOut := run(t, nil, append([]string{"-b", addr}, tc.args...)...)
			if startCode != code || startOut != out {
				t.Errorf("start: exit %d, output:\n%s\nwant exit %d and what --check-config printed:\n%s", startCode, startOut, code, out)
			}
		})
	}
}

// TestSettingWarnings: a setting the chosen class does not use, and a
// misspelled MULTISERVE_* variable, are warnings naming what to use, in
// --check-config (which still passes) and in a real start's log.
func TestSettingWarnings(t *testing.T) {
	env := []string{"MULTISERVE_WORKRS=3"}
	args := []string{"-k", "sync", "--threads", "4", "echo"}
	wants := []string{
		"threads = 4 (from flag) has no effect with worker_class sync; use ",
		"-k threaded --threads 4",
		`unknown environment variable "MULTISERVE_WORKRS": ignored; did you mean "MULTISERVE_WORKERS"?`,
	}
	code, out := run(t, env, append([]string{"--check-config"}, args...)...)
	if code != 0 {
		t.Fatalf("--check-config exit %d:\n%s", code, out)
	}
	s := testserver.Launch(t, bin, env, append([]string{"-b", "127.0.0.1:0"}, args...)...)
	if err := s.WaitReady(60 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	s.Signal(syscall.SIGTERM)
	s.Wait(30 * time.Second)
	for _, w := range wants {
		if !strings.Contains(out, w) || !strings.Contains(out, "multiserve: warning: ") {
			t.Errorf("--check-config lacks warning %q:\n%s", w, out)
		}
		if !strings.Contains(s.Log(), "level=WARN msg=") || !strings.Contains(strings.ReplaceAll(s.Log(), `\"`, `"`), w) {
			t.Errorf("start log lacks warning %q:\n%s", w, s.Log())
		}
	}
	for _, w := range []string{"starting app echo", "signal=SIGTERM"} {
		if !strings.Contains(s.Log(), w) {
			t.Errorf("start log lacks %q:\n%s", w, s.Log())
		}
	}
	if code, out := run(t, nil, "--check-config", "-k", "threaded", "--threads", "4"); code != 0 || strings.Contains(out, "warning") {
		t.Errorf("threads with threaded: exit %d, %s", code, out)
	}
}

// freeAddr is a 127.0.0.1 address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestCLI: help in every form a gunicorn user tries, ctl with the
// server's flag name and usage on a bad flag, case-insensitive log level,
// umask as a TOML octal number, and TOML syntax errors with the line.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeFile(t, dir, name, body) }
	umask := write("umask.toml", "umask = 0o022\n")
	broken := write("broken.toml", "workers = 2\nbind = [\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"help", []string{"help"}, 0, []string{"usage: multiserve [flags] [APP]", "multiserve ctl", "multiserve settings"}},
		{"--help", []string{"--help"}, 0, []string{"multiserve ctl", "multiserve settings", "--worker-class"}},
		{"settings --help", []string{"settings", "--help"}, 0, []string{"usage: multiserve settings"}},
		{"ctl with the server's flag", []string{"ctl", "--control-socket", filepath.Join(dir, "no.sock"), "show", "workers"}, 1,
			[]string{"multiserve ctl: control: dial unix " + filepath.Join(dir, "no.sock") + ": connect: no such file"}},
		{"ctl bad flag", []string{"ctl", "--sockett", "x", "reload"}, 2, []string{"unknown flag: --sockett", "usage: multiserve ctl"}},
		{"log level in capitals", []string{"--check-config", "--log-level", "WARNING"}, 0, []string{"configuration OK"}},
		{"umask as a TOML number", []string{"--print-config", "-c", umask}, 0, []string{"0022"}},
		{"TOML syntax error", []string{"--check-config", "-c", broken}, 2, []string{"broken.toml: line 2, column"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestReloadChecksLikeStart: HUP with a configuration a start would refuse
// before binding (a log file that cannot be created, an unknown app)
// changes nothing and says why.
func TestReloadChecksLikeStart(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "ms.toml", "app = \"echo\"\n")
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-c", conf)
	for i, body := range []string{
		"accesslog = \"" + filepath.Join(dir, "missing", "a.log") + "\"\n",
		"app = \"nosuchapp\"\n",
		"app = \"echo\"\nloglevel = \"nope\"\n",
	} {
		writeFile(t, dir, "ms.toml", body)
		s.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(s.Log(), "reload: invalid configuration, nothing changed") <= i {
			if time.Now().After(deadline) {
				t.Fatalf("HUP with %q was not refused:\n%s", body, s.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, w := range []string{"cannot create a.log", `unknown app \"nosuchapp\"`} {
		if !strings.Contains(s.Log(), w) {
			t.Errorf("log lacks %q:\n%s", w, s.Log())
		}
	}
	if strings.Contains(s.Log(), "reloading: starting a new generation") {
		t.Errorf("a refused configuration started a generation:\n%s", s.Log())
	}
	s.Signal(syscall.SIGTERM)
	if code, err := s.Wait(30 * time.Second); err != nil || code != 0 {
		t.Errorf("exit %d, %v", code, err)
	}
}
