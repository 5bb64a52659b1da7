package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// syncSyscallBudget is the most system calls the sync class may make per
// connection-per-request request, the Go runtime's own aside: nginx's
// six (accept4, epoll_ctl, epoll_wait, recvfrom, writev, close) plus one.
// It makes accept4, read, write and close per request and, when the
// queue is empty, an accept4 that finds it so and a poll.
const syncSyscallBudget = 7

// runtimeSyscalls are the Go runtime's, not the serving loop's: the
// scheduler's sleeps and wake-ups, the netpoller, preemption signals,
// memory and thread management. They depend on timing (strace slows every
// call), so the guard leaves them out of the budget and only logs them.
var runtimeSyscalls = map[string]bool{
	"futex": true, "nanosleep": true, "sched_yield": true, "epoll_pwait": true, "epoll_wait": true,
	"tgkill": true, "getpid": true, "rt_sigreturn": true, "rt_sigprocmask": true, "sigaltstack": true,
	"mmap": true, "munmap": true, "madvise": true, "mprotect": true, "clone": true, "clone3": true,
	"set_robust_list": true, "rseq": true, "restart_syscall": true,
}

// TestSyncSyscallsPerRequest is a guard, not a timing: strace counts the
// system calls of a sync worker over 200 connection-per-request
// requests and the test fails when the serving loop's share per request
// exceeds syncSyscallBudget. It skips, saying so, without strace or
// ptrace permission.
func TestSyncSyscallsPerRequest(t *testing.T) {
	const requests = 200
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed: the sync class's syscall budget is not checked")
	}
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "-k", "sync", "hello")
	worker := workerOf(t, s)
	for range 20 { // warm up: page faults, first-use allocations
		connPerRequest(t, s.Addr)
	}
	out := filepath.Join(t.TempDir(), "strace")
	// testserver runs strace like a server: own process group, output
	// captured, killed at cleanup.
	tr := testserver.Launch(t, strace, nil, "-f", "-c", "-o", out, "-p", strconv.Itoa(worker))
	if !attached(tr) {
		t.Skipf("strace could not attach to the worker (ptrace not permitted?): %s", tr.Log())
	}
	for range requests {
		connPerRequest(t, s.Addr)
	}
	tr.Signal(syscall.SIGINT)
	<-tr.Done()
	counts := parseStraceSummary(t, out)
	serving, runtime := 0, 0
	for name, n := range counts {
		if runtimeSyscalls[name] {
			runtime += n
		} else {
			serving += n
		}
	}
	t.Logf("sync worker, %d connection-per-request requests: %.2f syscalls per request by the serving loop, %.2f by the Go runtime; %v",
		requests, float64(serving)/requests, float64(runtime)/requests, counts)
	if per := float64(serving) / requests; per > syncSyscallBudget {
		t.Fatalf("sync makes %.2f syscalls per connection-per-request request, budget %d: %v", per, syncSyscallBudget, counts)
	}
}

// workerOf waits for the arbiter's one worker and returns its pid.
func workerOf(t *testing.T, s *testserver.Server) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if kids := testserver.Children(s.Pid()); len(kids) == 1 {
			return kids[0]
		}
	}
	t.Fatalf("no single worker under arbiter %d\n%s", s.Pid(), s.Log())
	return 0
}

// attached waits until strace reports it is tracing; false if it exited
// first.
func attached(tr *testserver.Server) bool {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if strings.Contains(tr.Log(), "attached") {
			return true
		}
		select {
		case <-tr.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// connPerRequest sends one request on a fresh connection and reads the
// response to the server's close; no retries.
func connPerRequest(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c)
	if err != nil || !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 ")) {
		t.Fatalf("response %q, %v", resp, err)
	}
}

// parseStraceSummary reads `strace -c` output: syscall name -> calls.
func parseStraceSummary(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[len(fields)-1] == "total" {
			continue
		}
		if n, err := strconv.Atoi(fields[3]); err == nil {
			counts[fields[len(fields)-1]] += n
		}
	}
	if len(counts) == 0 {
		t.Fatalf("no syscall counts in strace's summary %s", path)
	}
	return counts
}
