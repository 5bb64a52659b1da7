package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The syscall phase: after a workload's timed runs, strace -c -f attaches
// to every server process, a fixed number of requests is sent, and the
// calls are counted per request. It is separate because tracing slows the
// server down many times; the timed runs never run traced.

// syscallRequests is the fixed request count of a syscall phase, sent over
// syscallConns connections.
const (
	syscallRequests = 1000
	syscallConns    = 4
)

// syscallWorkloads are the workloads that get a syscall phase: the
// cheapest request, kept alive and with a connection each.
var syscallWorkloads = []string{"hello", "conn-per-request"}

// syscallCount is what one configuration asked of the kernel per request.
type syscallCount struct {
	Requests int                `json:"requests"`
	Calls    map[string]float64 `json:"calls_per_request"` // syscall → calls per request
}

// Syscall groups: what the kernel is asked to do.
const (
	groupIO      = "IO"      // moving bytes and connections
	groupPoll    = "polling" // waiting for readiness
	groupRuntime = "runtime" // the language runtime's own sleeping and waking
	groupOther   = "other"
)

var syscallGroups = map[string]string{
	"read": groupIO, "write": groupIO, "readv": groupIO, "writev": groupIO, "recvfrom": groupIO, "sendto": groupIO,
	"recvmsg": groupIO, "sendmsg": groupIO, "accept": groupIO, "accept4": groupIO, "close": groupIO, "shutdown": groupIO,
	"sendfile": groupIO, "splice": groupIO, "pread64": groupIO, "pwrite64": groupIO,
	"epoll_wait": groupPoll, "epoll_pwait": groupPoll, "epoll_pwait2": groupPoll, "epoll_ctl": groupPoll,
	"poll": groupPoll, "ppoll": groupPoll, "select": groupPoll, "pselect6": groupPoll,
	"futex": groupRuntime, "nanosleep": groupRuntime, "clock_nanosleep": groupRuntime, "sched_yield": groupRuntime,
}

// group sums a count's calls per request by group.
func (s *syscallCount) group(g string) float64 {
	t := 0.0
	for name, n := range s.Calls {
		if groupOf(name) == g {
			t += n
		}
	}
	return t
}

func groupOf(name string) string {
	if g, ok := syscallGroups[name]; ok {
		return g
	}
	return groupOther
}

func (s *syscallCount) total() float64 {
	t := 0.0
	for _, n := range s.Calls {
		t += n
	}
	return t
}

// top names the most frequent calls: "read 1.00, write 1.00, epoll_wait 0.52".
func (s *syscallCount) top(n int) string {
	names := sortedKeys(s.Calls)
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(s.Calls[b], s.Calls[a]) })
	var parts []string
	for _, name := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, s.Calls[name]))
	}
	return strings.Join(parts, ", ")
}

// straceRow is one line of strace -c's table:
// "% time seconds usecs/call calls [errors] syscall".
var straceRow = regexp.MustCompile(`(?m)^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$`)

// parseStrace reads strace -c output into calls per syscall.
func parseStrace(out string) map[string]int {
	calls := map[string]int{}
	for _, m := range straceRow.FindAllStringSubmatch(out, -1) {
		if m[2] == "total" {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		calls[m[2]] += n
	}
	return calls
}

// countSyscalls traces the server's processes while n requests are sent.
func (b *bench) countSyscalls(ctx context.Context, wl *workload, srv *serverProc, n int) (*syscallCount, error) {
	bin, err := exec.LookPath("strace")
	if err != nil {
		return nil, errors.New("strace not installed")
	}
	out := filepath.Join(b.tmp, "strace.txt")
	args := []string{"-c", "-f", "-o", out}
	for _, pid := range tree(srv.pid) {
		args = append(args, "-p", strconv.Itoa(pid))
	}
	cmd := exec.Command(bin, args...)
	var errb strings.Builder
	cmd.Stderr = &errb
	done, err := startPinned(b.split.load, cmd)
	if err != nil {
		return nil, fmt.Errorf("start strace: %w", err)
	}
	// strace prints nothing once attached with -o; give the attach time.
	sleepCtx(ctx, 500*time.Millisecond)
	sent, sendErr := fixedRequests(ctx, srv.addr, wl.paths[0], wl.close, n, syscallConns, b.opts.reqTimeout)
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return nil, errors.New("strace did not stop")
	}
	if sendErr != nil {
		return nil, sendErr
	}
	data, rerr := os.ReadFile(out)
	if rerr != nil {
		return nil, fmt.Errorf("strace (exit: %v): read its count: %w: %s", err, rerr, lastLines(errb.String(), 2))
	}
	calls := parseStrace(string(data))
	if len(calls) == 0 {
		return nil, fmt.Errorf("strace counted nothing: %s", lastLines(errb.String()+string(data), 2))
	}
	sc := &syscallCount{Requests: sent, Calls: map[string]float64{}}
	for name, c := range calls {
		sc.Calls[name] = float64(c) / float64(sent)
	}
	return sc, nil
}

// syscallPhase counts a configuration's syscalls per request once (in the
// first round) on the workloads that have a syscall phase.
func (b *bench) syscallPhase(ctx context.Context, wl *workload, t *target, srv *serverProc, r *result) {
	if !b.opts.syscalls || b.round != 1 || r.Status != statusOK || !slices.Contains(syscallWorkloads, wl.name) || ctx.Err() != nil {
		return
	}
	sc, err := b.countSyscalls(ctx, wl, srv, syscallRequests)
	if err != nil {
		b.logf("%s %-16s %-16s syscalls not counted: %v", b.tag(), wl.name, t.name, err)
		return
	}
	r.Syscalls = sc
	b.logf("%s %-16s %-16s syscalls per request: %.2f (IO %.2f, polling %.2f, runtime %.2f)", b.tag(), wl.name, t.name,
		sc.total(), sc.group(groupIO), sc.group(groupPoll), sc.group(groupRuntime))
}

// fixedRequests sends n requests over conns connections (a new connection
// per request when close), each waiting for its answer, and returns how
// many were answered; any failure is an error, since the count is per
// answered request.
func fixedRequests(ctx context.Context, addr, path string, close bool, n, conns int, timeout time.Duration) (int, error) {
	var mu sync.Mutex
	var firstErr error
	sent := 0
	var wg sync.WaitGroup
	for i := range conns {
		share := n / conns
		if i < n%conns {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for range share {
				if conn == nil {
					c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
					if err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						return
					}
					conn, br = c, bufio.NewReader(c)
				}
				keep, err := roundTrip(conn, br, request{path: path}, close, time.Now().Add(timeout))
				mu.Lock()
				if err != nil {
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				sent++
				mu.Unlock()
				if !keep {
					conn.Close()
					conn = nil
				}
			}
		}()
	}
	wg.Wait()
	return sent, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// writeSyscalls renders the syscalls-per-request table.
func (b *bench) writeSyscalls(w *strings.Builder) {
	var rows []string
	for _, name := range syscallWorkloads {
		for _, r := range b.results {
			if r.Workload != name || r.Syscalls == nil {
				continue
			}
			s := r.Syscalls
			rows = append(rows, fmt.Sprintf("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s |", name, label(r), s.total(),
				s.group(groupIO), s.group(groupPoll), s.group(groupRuntime), s.group(groupOther), s.top(4)))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "## Syscalls per request\n\nCounted by `strace -c -f` on every server process in a separate phase after the timed runs (tracing slows a server many times over, so no timed number was traced): %d requests on %d connections (a new connection per request on conn-per-request). IO: read, write, accept, close and their variants; polling: epoll and poll; runtime: futex, nanosleep, sched_yield (a runtime parking and waking threads); other: everything else (e.g. signals, clock reads, setsockopt).\n\n", syscallRequests, syscallConns)
	w.WriteString("| workload | config | total | IO | polling | runtime | other | most frequent (calls per request) |\n|---|---|--:|--:|--:|--:|--:|---|\n")
	w.WriteString(strings.Join(rows, "\n") + "\n\n")
}
