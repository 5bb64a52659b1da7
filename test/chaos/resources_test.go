//go:build chaos

package chaos

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/rawload"
	"github.com/multiserve/multiserve/internal/testwait"
)

// openConns dials n connections (bounded parallelism). With request set,
// each sends one keep-alive GET and reads the answer, so the connection
// ends up idle between requests. It returns the open connections.
func openConns(t *testing.T, addr string, n int, request bool) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	var wg stdsync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				conns[i] = openOne(addr, request)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	var open []net.Conn
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	t.Cleanup(func() { closeAll(open) })
	return open
}

func openOne(addr string, request bool) net.Conn {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil
	}
	if !request {
		return c
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: chaos\r\n\r\n"); err != nil {
		c.Close()
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.Close()
		return nil
	}
	_ = c.SetDeadline(time.Time{})
	return c
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

var emfileRE = regexp.MustCompile(`(?i)too many open files|EMFILE`)

// TestFDExhaustion: workers with a low RLIMIT_NOFILE get more connections
// than they have descriptors. They log EMFILE at a bounded rate, do not
// spin a CPU, and serve again once the connections are gone.
func TestFDExhaustion(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		const nWorkers, limit = 2, 64
		args := []string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, limit), serverBin,
			"-b", "127.0.0.1:0", "-k", class, "-w", fmt.Sprint(nWorkers), "echo"}
		s := launchReady(t, class, "/bin/sh", nil, args...)
		dumpLogOnFailure(t, s)
		mustGet(t, s.Addr, "/")
		pids := workers(s.Pid())
		n := pick(300, 600)
		conns := openConns(t, s.Addr, n, false)
		// Let accept hit the limit, then watch a window.
		time.Sleep(500 * time.Millisecond)
		window := 2 * time.Second
		linesBefore := len(emfileRE.FindAllString(s.Log(), -1))
		cpuBefore := map[int]time.Duration{}
		for _, p := range pids {
			cpuBefore[p], _ = cpuTime(p)
		}
		time.Sleep(window) // the measurement window
		lines := len(emfileRE.FindAllString(s.Log(), -1)) - linesBefore
		var busiest time.Duration
		for _, p := range pids {
			after, err := cpuTime(p)
			if err != nil {
				continue // replaced meanwhile
			}
			busiest = max(busiest, after-cpuBefore[p])
		}
		total := len(emfileRE.FindAllString(s.Log(), -1))
		t.Logf("%s: %d connections against %d workers with %d fds each: %d EMFILE log lines in %v (%d in all), busiest worker used %v CPU in %v",
			class, len(conns), nWorkers, limit, lines, window, total, busiest, window)
		if class == "sync" && total == 0 {
			t.Logf("sync: no EMFILE: one connection at a time per process never exhausts descriptors")
		}
		// "Once per interval": at most about one line per worker per second.
		if maxLines := nWorkers * (int(window/time.Second) + 1); lines > maxLines {
			t.Errorf("%d EMFILE lines in %v from %d workers: a log flood (want at most %d)", lines, window, nWorkers, maxLines)
		}
		for _, p := range pids {
			if !procAlive(p) {
				t.Errorf("worker %d died while descriptors were exhausted (it should back off, not exit): %s",
					p, strings.Join(logLines(s.Log(), fmt.Sprintf("pid=%d ", p), "level=ERROR"), " | "))
			}
		}
		if class != "sync" && total == 0 {
			t.Errorf("no EMFILE logged with %d connections against %d fds: the test did not exhaust descriptors", len(conns), limit)
		}
		if busiest > window/2 {
			t.Errorf("a worker used %v CPU in %v with descriptors exhausted: spinning", busiest, window)
		}
		closeAll(conns)
		var r result
		ok := testwait.For(20*time.Second, func() bool {
			cl := &client{Client: rawload.Client{Addr: s.Addr, Timeout: 5 * time.Second}}
			defer cl.close()
			r = cl.once("/")
			return r.Err == nil
		})
		if !ok {
			t.Errorf("no recovery after the connections closed: %s: %v", errKind(r), r.Err)
		}
	})
}

// logLines returns the log lines that contain every one of subs.
func logLines(log string, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// TestIdleKeepAliveMemory: RSS per idle keep-alive connection, from the
// workers' VmRSS before and after opening them.
func TestIdleKeepAliveMemory(t *testing.T) {
	forEachClass(t, func(t *testing.T, class string) {
		if class == "sync" {
			summaryOf(class, func(cs *classSummary) { cs.rssPerConn = "n/a (no keep-alive)" })
			t.Skip("sync closes every connection after its response: no idle keep-alive connections to hold")
		}
		const nWorkers = 2
		n := pick(1000, 10000)
		s := start(t, class, "-w", fmt.Sprint(nWorkers), "--worker-connections", "20000", "hello")
		dumpLogOnFailure(t, s)
		for range 20 {
			mustGet(t, s.Addr, "/")
		}
		pids := workers(s.Pid())
		before := totalRSSKB(pids)
		conns := openConns(t, s.Addr, n, true)
		after := totalRSSKB(pids)
		if len(conns) < n*99/100 {
			t.Errorf("only %d of %d keep-alive connections opened", len(conns), n)
		}
		per := float64(after-before) * 1024 / float64(max(len(conns), 1))
		t.Logf("%s: %d idle keep-alive connections: workers' RSS %d KiB → %d KiB, %.1f KiB per connection",
			class, len(conns), before, after, per/1024)
		summaryOf(class, func(cs *classSummary) {
			cs.rssPerConn = fmt.Sprintf("%.1f KiB (%d conns)", per/1024, len(conns))
		})
		// Bounded: a few buffers per connection, not a per-connection
		// allocation that grows with anything.
		if per > 128*1024 {
			t.Errorf("%.0f KiB per idle connection: unbounded buffers?", per/1024)
		}
		// Still serving with all of them open.
		mustGet(t, s.Addr, "/")
	})
}
