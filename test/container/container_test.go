// Package container checks what the Dockerfile ships without a Docker
// engine: the binary deploy/build-static.sh makes (the script the
// Dockerfile runs) is static, and the arbiter run as PID 1 of its own PID
// namespace reaps orphans and stops cleanly on TERM.
package container

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// staticBinary builds the image's binary once per test run, with the
// Dockerfile's own script.
func staticBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "multiserve-static-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "multiserve")
		buildErr = testserver.BuildStatic(binPath, "container-test")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestDockerfileBuildsWithScript: the Dockerfile builds with the script
// this package tests, and runs the result as a non-root user.
func TestDockerfileBuildsWithScript(t *testing.T) {
	root, err := testserver.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var runs, users []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 1 && f[0] == "RUN" && strings.Contains(sc.Text(), "go build") {
			t.Errorf("Dockerfile runs go build itself (%q): build with deploy/build-static.sh so the test checks the same binary", sc.Text())
		}
		if len(f) > 1 && f[0] == "RUN" && f[1] == "deploy/build-static.sh" {
			runs = append(runs, sc.Text())
		}
		if len(f) > 1 && f[0] == "USER" {
			users = append(users, f[1])
		}
	}
	if len(runs) != 1 {
		t.Errorf("Dockerfile builds with deploy/build-static.sh %d times, want 1", len(runs))
	}
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1], "0") || strings.HasPrefix(users[len(users)-1], "root") {
		t.Errorf("the image's USER is %v, want a non-root user", users)
	}
}

// TestStaticBinary: no program interpreter (dynamic loader) and no shared
// library, so the binary runs on an image without libc.
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(staticBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has a %v program header: not static", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("binary needs shared libraries %v (%v)", libs, err)
	}
	out, err := exec.Command(staticBinary(t), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "container-test") {
		t.Errorf("--version: %q %v, want the version the script stamped", out, err)
	}
}

// TestArbiterAsPID1: in a new PID namespace the arbiter is PID 1; a process
// orphaned inside the namespace is re-parented to it and must be reaped
// when it exits; TERM stops the arbiter with status 0 and nothing left.
func TestArbiterAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: a new PID namespace needs root")
	}
	for _, tool := range []string{"unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed (util-linux)", tool)
		}
	}
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("skipping: unshare --pid unavailable here: %v", err)
	}
	bin := staticBinary(t)
	s := testserver.Start(t, "unshare", "--pid", "--fork", "--mount-proc", "--",
		bin, "--bind", "127.0.0.1:0", "--workers", "2", "hello")
	arbiter := pid1(t, s)

	// sh exits at once; its sleep, orphaned inside the namespace, is
	// re-parented to the arbiter and exits after a moment.
	out, err := exec.Command("nsenter", "--target", strconv.Itoa(arbiter), "--pid", "--mount", "--",
		"sh", "-c", "sleep 0.3 & echo $!").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		z := zombies(arbiter)
		if len(z) == 0 && len(testserver.Children(arbiter)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s the arbiter has zombie children %v, children %v (want only its 2 workers)\nlog:\n%s",
				z, testserver.Children(arbiter), s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := syscall.Kill(arbiter, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := s.Wait(60 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after TERM: exit %d, %v\nlog:\n%s", code, err, s.Log())
	}
	if !strings.Contains(s.Log(), "arbiter stopped") {
		t.Errorf("no clean stop in the log:\n%s", s.Log())
	}
}

// pid1 is the host pid of the arbiter: unshare's only child.
func pid1(t *testing.T, s *testserver.Server) int {
	t.Helper()
	kids := testserver.Children(s.Pid())
	if len(kids) != 1 {
		t.Fatalf("unshare has children %v, want the arbiter alone", kids)
	}
	return kids[0]
}

// zombies lists pid's exited, unreaped children.
func zombies(pid int) []int {
	var z []int
	for _, k := range testserver.Children(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k))
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
			z = append(z, k)
		}
	}
	return z
}
