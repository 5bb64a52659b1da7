//go:build chaos

// Package chaos is the fault suite: real multiserve processes of
// every worker class under load from a Go client on loopback, while the
// test kills workers, reloads, scales, stops the arbiter, feeds hostile
// clients and exhausts descriptors. Every loop is bounded in count and
// time; every process group is SIGKILLed at cleanup.
//
//	make test-chaos                 # quick mode (CHAOS_QUICK=1)
//	make test-chaos CHAOS_FULL=1    # the full durations
//
// The suite prints a per-class summary table at the end.
package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// classes are the worker classes every scenario runs against. A class the
// binary does not know yet is skipped with its name, so the suite picks it
// up when it lands.
var classes = []string{"sync", "threaded", "evloop", "goroutine"}

// Binaries built once by TestMain.
var (
	serverBin string // ./cmd/multiserve
	crashBin  string // ./test/chaos/crashapp
)

// quick is CHAOS_QUICK=1: durations and counts shortened so the suite for
// four classes stays within a few minutes on two cores.
var quick = os.Getenv("CHAOS_QUICK") == "1"

// pick returns q in quick mode and f otherwise.
func pick[T any](q, f T) T {
	if quick {
		return q
	}
	return f
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if serverBin, err = testserver.Build(dir, "./cmd/multiserve"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if crashBin, err = buildTagged(dir, "./test/chaos/crashapp", "chaos"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	// Thousands of connections (idle keep-alive memory test) need
	// descriptors in this process and in the servers it starts. Setting
	// the limit explicitly also makes os/exec pass it on to children
	// instead of restoring the soft limit the process started with.
	raiseNoFile()
	code := m.Run()
	printSummary(os.Stdout)
	return code
}

// buildTagged is testserver.Build with build tags.
func buildTagged(dir, pkg, tags string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	return bin, testserver.BuildTo(bin, pkg, "-tags", tags)
}

func raiseNoFile() {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return
	}
	r.Cur = r.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
}

// forEachClass runs fn as one subtest per worker class.
func forEachClass(t *testing.T, fn func(t *testing.T, class string)) {
	for _, class := range classes {
		t.Run(class, func(t *testing.T) {
			summaryOf(class, func(*classSummary) {}) // a row even without load counts
			t.Cleanup(func() {
				if t.Failed() {
					noteFailure(class, strings.TrimPrefix(t.Name(), "Test"))
				}
			})
			fn(t, class)
		})
	}
}

// start runs the multiserve binary (or bin, when set) for class with args
// and waits for readiness. A class the binary does not know is skipped.
func start(t *testing.T, class string, args ...string) *testserver.Server {
	t.Helper()
	return startBin(t, serverBin, nil, class, args...)
}

func startBin(t *testing.T, bin string, env []string, class string, args ...string) *testserver.Server {
	t.Helper()
	return launchReady(t, class, bin, env, append([]string{"-b", "127.0.0.1:0", "-k", class}, args...)...)
}

// launchReady runs bin with exactly args and waits for the server's
// readiness line; a class the binary does not know is skipped.
func launchReady(t *testing.T, class, bin string, env []string, args ...string) *testserver.Server {
	t.Helper()
	s := testserver.Launch(t, bin, env, args...)
	if err := s.WaitReady(30 * time.Second); err != nil {
		if strings.Contains(s.Log(), "unknown worker class") {
			t.Skipf("worker class %s is not registered yet", class)
		}
		t.Fatalf("%s: %v\nlog:\n%s", class, err, s.Log())
	}
	return s
}

// dumpLogOnFailure prints the server's log when the test failed.
func dumpLogOnFailure(t *testing.T, s *testserver.Server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (tail):\n%s", tail(s.Log(), 60))
		}
	})
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
