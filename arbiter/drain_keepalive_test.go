package arbiter_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testwait"
)

// keepAliveLoad is a kept-alive client that retries nothing: requests are
// written and read by hand on one connection until a response says
// Connection: close; only then does it dial a new connection (the last
// request was answered, so that is not a retry).
type keepAliveLoad struct {
	ok, dialErr, failed atomic.Int64
	mu                  sync.Mutex
	got                 []answer // every response, in arrival order
	failures            []string
	stop                chan struct{}
	wg                  sync.WaitGroup
}

type answer struct {
	at    time.Time
	close bool // carried Connection: close
}

func startKeepAliveLoad(t *testing.T, addr, path string, n int) *keepAliveLoad {
	l := &keepAliveLoad{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stopped() {
				l.session(addr, path)
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *keepAliveLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *keepAliveLoad) halt() {
	if !l.stopped() {
		close(l.stop)
	}
	l.wg.Wait()
}

// session sends requests on one connection until the server closes it
// with Connection: close (or the load stops).
func (l *keepAliveLoad) session(addr, path string) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		l.dialErr.Add(1) // refused or dropped after the stop began: never existed
		time.Sleep(10 * time.Millisecond)
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for !l.stopped() {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		start := time.Now()
		resp, err := roundTrip(c, br, path)
		if err != nil {
			l.failed.Add(1)
			l.mu.Lock()
			l.failures = append(l.failures, fmt.Sprintf("%s (after %s): %v",
				start.UTC().Format("15:04:05.000000"), time.Since(start).Round(time.Millisecond), err))
			l.mu.Unlock()
			return
		}
		l.ok.Add(1)
		l.mu.Lock()
		l.got = append(l.got, answer{at: time.Now(), close: resp.Close})
		l.mu.Unlock()
		if resp.Close {
			return
		}
	}
}

// roundTrip writes a kept-alive GET and reads its whole response.
func roundTrip(c net.Conn, br *bufio.Reader, path string) (*http.Response, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return resp, err
}

// count returns how many responses arrived in (from, to), and how many of
// them kept the connection alive.
func (l *keepAliveLoad) count(from, to time.Time) (n, keptAlive int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.got {
		if a.at.After(from) && a.at.Before(to) {
			n++
			if !a.close {
				keptAlive++
			}
		}
	}
	return n, keptAlive
}

// logTimes returns the time= of every log line containing s.
func logTimes(t *testing.T, log, s string) []time.Time {
	t.Helper()
	var ts []time.Time
	for line := range strings.Lines(log) {
		if !strings.Contains(line, s) {
			continue
		}
		f, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		tm, err := time.Parse(time.RFC3339, f)
		if err != nil {
			t.Fatalf("log line without a time: %q", line)
		}
		ts = append(ts, tm)
	}
	return ts
}

// TERM with shutdown_delay while kept-alive clients send continuously:
// once the stop begins every worker is told to drain, and the responses
// carry Connection: close (closing their connection) before the workers
// get TERM, so the clients have moved off their connections by then. The
// client retries nothing; no request fails.
func TestDrainClosesKeptAliveConnections(t *testing.T) {
	skipShort(t)
	const clients = 4
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 2)
		cfg.ShutdownDelay = 2 * time.Second
		m := startMaster(t, cfg, true)
		load := startKeepAliveLoad(t, m.addrs[0], "/", clients)
		testwait.Until(t, waitLimit, "requests served", func() bool { return load.ok.Load() > 50 })
		term := time.Now()
		m.signal(syscall.SIGTERM)
		code := m.wait()
		load.halt()
		log := m.logText()
		if code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		for _, f := range load.failures {
			t.Errorf("request failed: %s", f)
		}
		drained := logTimes(t, log, "draining: the arbiter is stopping")
		retire := logTimes(t, log, "stopping workers")
		if len(drained) != 2 || len(retire) != 1 {
			t.Fatalf("%d workers logged the drain (want 2), %d retire lines (want 1)", len(drained), len(retire))
		}
		_, keptBefore := load.count(time.Time{}, term)
		during, keptDuring := load.count(term, retire[0])
		// The log's times are cut to the millisecond: a response that
		// arrived more than 1ms after the later worker logged its drain
		// was requested after it, or was the one in flight then.
		late := drained[0]
		if drained[1].After(late) {
			late = drained[1]
		}
		late = late.Add(time.Millisecond)
		_, keptLate := load.count(late, retire[0])
		t.Logf("%s: %d ok (%d kept alive before TERM; %d between TERM and retire, %d of them kept alive, %d after both workers drained), %d refused at dial",
			class, load.ok.Load(), keptBefore, during, keptDuring, keptLate, load.dialErr.Load())
		if class != "sync" && keptBefore == 0 {
			t.Errorf("no connection was kept alive before TERM: the test proves nothing")
		}
		if during-keptDuring == 0 {
			t.Errorf("no response carried Connection: close between TERM and the workers' TERM")
		}
		if keptLate > clients {
			t.Errorf("%d kept-alive responses after every worker drained; at most %d (one in flight per client)", keptLate, clients)
		}
	})
}

// TERM with shutdown_delay while a client sends continuously over a unix
// socket, a new connection per request, no retries: the queue phase
// unlinks the socket's path (later connects fail at once: ENOENT, or
// ECONNREFUSED once the socket is closed) and the workers serve what was
// already queued, so every connect that succeeded gets its response.
func TestShutdownDelayUnixSocket(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 2)
		cfg.ShutdownDelay = 500 * time.Millisecond
		sock := t.TempDir() + "/ms.sock"
		cfg.Bind = []string{"unix:" + sock}
		m := startMaster(t, cfg, true)
		// More clients than the workers serve at once: connections queue.
		load := startRawLoad(t, sock, "/sleep?d=5ms", 8)
		code := termUnderLoad(t, m, load, "draining: refusing new connections")
		t.Logf("%s: %d ok (%d started after TERM), %d failed; connects refused after the gate: %d %v",
			class, load.OK.Load(), load.AfterMark.Load(), load.Failed(), load.DialErrs.Load(), load.Kinds())
		if code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		for _, f := range load.Failures() {
			t.Errorf("request failed: %s", f)
		}
		for kind := range load.Kinds() {
			if kind != "dial: no such file" && kind != "dial: connection refused" {
				t.Errorf("connect failed with %q, want only ENOENT/ECONNREFUSED", kind)
			}
		}
		if load.AfterMark.Load() == 0 {
			t.Errorf("nothing served during shutdown_delay")
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("%s left after stop (%v)", sock, err)
		}
	})
}

// HUP keeps a unix socket's path: only a stop's queue phase unlinks it.
func TestReloadKeepsUnixSocket(t *testing.T) {
	skipShort(t)
	cfg := testConfig("goroutine", 1)
	sock := t.TempDir() + "/ms.sock"
	cfg.Bind = []string{"unix:" + sock}
	m := startMaster(t, cfg, true)
	m.signal(syscall.SIGHUP)
	m.waitLog("reload complete")
	if _, err := m.getPid(); err != nil {
		t.Fatalf("after HUP: %v", err)
	}
	m.signal(syscall.SIGTERM)
	if code := m.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("%s left after stop (%v)", sock, err)
	}
}

// Roll-back of a USR2 upgrade: the new arbiter is stopped while the old one
// still runs. It must neither filter the shared TCP socket nor unlink the
// unix socket's path: the old arbiter's workers serve on both afterwards.
func TestUpgradeRollbackKeepsSockets(t *testing.T) {
	skipShort(t)
	cfg := testConfig("goroutine", 1)
	sock := t.TempDir() + "/ms.sock"
	cfg.Bind = []string{"127.0.0.1:0", "unix:" + sock}
	m := startMaster(t, cfg, true)
	m.signal(syscall.SIGUSR2)
	newPid := m.upgradedPid()
	t.Cleanup(func() { syscall.Kill(newPid, syscall.SIGKILL) })
	testwait.Until(t, waitLimit, "the new arbiter ready", func() bool { return strings.Count(m.logText(), "msg=ready workers=") == 2 })
	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.waitLog(fmt.Sprintf("upgrade: new arbiter pid=%d exited code=0", newPid))
	if _, err := m.get("/"); err != nil {
		t.Errorf("TCP after the roll-back: %v", err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("unix socket path after the roll-back: %v", err)
	}
	resp, err := unixClient(sock).Get("http://unix/")
	if err != nil {
		t.Fatalf("unix socket after the roll-back: %v", err)
	}
	resp.Body.Close()
}
