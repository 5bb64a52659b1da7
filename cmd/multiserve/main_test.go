package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// bin is the multiserve binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "multiserve-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = testserver.Build(dir, "./cmd/multiserve")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// classes is every worker class: each end-to-end test runs against all.
var classes = []string{"sync", "threaded", "evloop", "goroutine"}

// run executes the binary to completion and returns its exit code and output.
func run(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	s := testserver.Launch(t, bin, env, args...)
	code, err := s.Wait(60 * time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	return code, s.Log()
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownKey := write("unknown.toml", "wrokers = 3\n")
	broken := write("broken.toml", "workers = = 3\n")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // substrings of the output
	}{
		{"unknown flag", []string{"--wrokers", "2"}, 2, []string{"wrokers", "workers"}},
		{"unknown class", []string{"-k", "theaded"}, 2, []string{"theaded", "threaded"}},
		{"zero workers", []string{"-w", "0"}, 2, []string{"workers"}},
		{"negative timeout", []string{"-t", "-5s"}, 2, []string{"timeout"}},
		{"bad bind", []string{"-b", "127.0.0.1"}, 2, []string{"bind"}},
		{"unknown config key", []string{"-c", unknownKey}, 2, []string{"wrokers", "workers"}},
		{"broken config file", []string{"-c", broken}, 2, []string{"broken.toml"}},
		{"missing config file", []string{"-c", filepath.Join(dir, "nope.toml")}, 2, []string{"nope.toml"}},
		{"port in use", []string{"-b", taken.Addr().String()}, 1, []string{"address already in use"}},
		{"unknown app", []string{"-b", "127.0.0.1:0", "nosuchapp"}, 4, []string{"nosuchapp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.code == 2 && strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("usage error should be one line:\n%s", out)
			}
		})
	}
}

func TestPrintAndCheckConfig(t *testing.T) {
	code, out := run(t, []string{"MULTISERVE_WORKERS=3"}, "--print-config", "-k", "threaded")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, w := range []string{"workers", "3", "env", "worker_class", "threaded", "flag", "default"} {
		if !strings.Contains(out, w) {
			t.Errorf("--print-config lacks %q:\n%s", w, out)
		}
	}
	if code, out := run(t, nil, "--check-config", "echo"); code != 0 {
		t.Errorf("--check-config exit %d:\n%s", code, out)
	}
}

// TestH1Probe runs ../shared/h1probe (gunicorn's request fixtures) against
// every class through the real binary. sync closes after each response
// (like gunicorn's sync worker), which RFC 9112 §9.6 allows for pipelines:
// --allow-early-close accepts that and nothing else.
func TestH1Probe(t *testing.T) {
	root, err := testserver.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(root, "..", "shared", "h1probe", "h1probe.py")
	if _, err := os.Stat(probe); err != nil {
		t.Skipf("h1probe not found: %v", err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	for _, class := range classes {
		t.Run(class, func(t *testing.T) {
			s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "2", "-k", class, "echo")
			_, port, _ := net.SplitHostPort(s.Addr)
			args := []string{probe, "--host", "127.0.0.1", "--port", port}
			if class == "sync" {
				args = append(args, "--allow-early-close")
			}
			out, err := exec.Command("python3", args...).CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			t.Logf("h1probe %s: %s", class, lines[len(lines)-1])
			if err != nil {
				t.Errorf("h1probe failed: %v\n%s\nserver log:\n%s", err, out, s.Log())
			}
		})
	}
}
