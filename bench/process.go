package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// serverProc is one started server (arbiter plus workers, or a peer) in its
// own process group.
type serverProc struct {
	cmd     *exec.Cmd
	pid     int
	addr    string
	logPath string
	done    chan struct{} // closed when the root process has exited
	waitErr error
	known   map[int]uint64 // pid → start time of every process seen in the tree
}

// startServer starts argv pinned to cpus, in a new process group, with
// stdout and stderr going to logPath.
func startServer(argv []string, env []string, dir string, cpus cpuList, addr, logPath string) (*serverProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: create server log: %w", err)
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttr()
	waitc, err := startPinned(cpus, cmd)
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", argv[0], err)
	}
	p := &serverProc{cmd: cmd, pid: cmd.Process.Pid, addr: addr, logPath: logPath,
		done: make(chan struct{}), known: map[int]uint64{}}
	go func() {
		p.waitErr = <-waitc
		close(p.done)
	}()
	return p, nil
}

func (p *serverProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// remember records the processes of the tree so stop can kill any that
// left the process group.
func (p *serverProc) remember() {
	for _, pid := range tree(p.pid) {
		if st, err := readStat(pid); err == nil {
			p.known[pid] = st.start
		}
	}
}

// waitReady polls probePath until the server answers any HTTP response
// and the tree has at least minProcs processes, or the deadline passes.
func (p *serverProc) waitReady(ctx context.Context, probePath string, minProcs int, deadline time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	answered := false
	for {
		if p.exited() {
			return fmt.Errorf("exited during start-up (%v): %s", p.waitErr, p.tail(3))
		}
		if !answered {
			answered = probe(ctx, client, "http://"+p.addr+probePath) == nil
		}
		if answered && len(tree(p.pid)) >= minProcs {
			p.remember()
			return nil
		}
		select {
		case <-ctx.Done():
			if !answered {
				return fmt.Errorf("not answering on %s after %v: %s", p.addr, deadline, p.tail(3))
			}
			return fmt.Errorf("only %d of %d processes after %v", len(tree(p.pid)), minProcs, deadline)
		case <-tick.C:
		}
	}
}

// probe sends one GET and drains the answer; any HTTP status counts.
func probe(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// checkPath asserts that a request answers 200, so that a workload never
// measures a stream of 404s or 400s.
func checkPath(ctx context.Context, addr string, r request, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method, path := cmp.Or(r.method, http.MethodGet), r.path
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// stop sends SIGTERM to the process group, waits up to grace for the root
// to exit, then SIGKILLs the group and any remembered process that is still
// alive (same pid and start time), so nothing outlives the run.
func (p *serverProc) stop(grace time.Duration) {
	p.remember()
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	for pid, start := range p.known {
		if st, err := readStat(pid); err == nil && st.start == start {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	<-p.done
}

// tail returns the last n non-empty lines of the server's log, joined.
func (p *serverProc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// freeAddr picks a loopback port by binding port 0 and closing it. Another
// process could take it before the server binds; the caller retries.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: pick a port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("bench: pick a port: %w", err)
	}
	return addr, nil
}

// isBindError tells a lost port race from a real start-up failure.
func isBindError(err error) bool {
	return err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(strings.ToLower(err.Error()), "address already in use"))
}
