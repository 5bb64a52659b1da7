package arbiter_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rawLoad is a client that retries nothing: each request is a fresh
// connection (Connection: close) written and read by hand, so neither
// net/http's transport nor anything else hides a reset by retrying.
type rawLoad struct {
	ok, dialErr, failed atomic.Int64
	afterSignal         atomic.Int64 // requests answered that started after mark
	mark                atomic.Int64 // unix nanos; 0 until set
	mu                  sync.Mutex
	failures            []string
	dialErrs            map[string]int // dial errors by kind
	stop                chan struct{}
	wg                  sync.WaitGroup
}

// wantAllServed fails t for every failed request and for any connect
// that failed; call it after halt.
func (l *rawLoad) wantAllServed(t *testing.T) {
	t.Helper()
	for _, f := range l.failures {
		t.Errorf("request failed: %s", f)
	}
	if n := l.dialErr.Load(); n != 0 {
		t.Errorf("%d connects failed: %v", n, l.dialErrs)
	}
}

// termUnderLoad lets load get going, marks the time, sends TERM, waits
// for the arbiter to log logLine and to exit, then stops the load; it
// returns the arbiter's exit code.
func termUnderLoad(t *testing.T, m *master, load *rawLoad, logLine string) int {
	t.Helper()
	eventually(t, "requests served", func() bool { return load.ok.Load() > 20 })
	load.mark.Store(time.Now().UnixNano())
	m.signal(syscall.SIGTERM)
	m.waitLog(logLine)
	code := m.wait()
	load.halt()
	return code
}

// startRawLoad runs n clients against addr until stop is called.
func startRawLoad(t *testing.T, addr, path string, n int) *rawLoad {
	l := &rawLoad{stop: make(chan struct{}), dialErrs: map[string]int{}}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(addr, path)
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *rawLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *rawLoad) one(addr, path string) {
	start := time.Now()
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		// Refused, the SYN was dropped or the unix path unlinked after the
		// stop began: the connection never existed, no request was lost.
		l.dialErr.Add(1)
		l.mu.Lock()
		l.dialErrs[dialErrText(err)]++
		l.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path)
	var b []byte
	if err == nil {
		b, err = io.ReadAll(c)
	}
	if err == nil && !bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")) {
		err = errors.New("not a 200 response")
	}
	if err != nil {
		l.failed.Add(1)
		l.mu.Lock()
		l.failures = append(l.failures, fmt.Sprintf("%s (started %s, got %d bytes): %v",
			start.UTC().Format("15:04:05.000000"), time.Since(start).Round(time.Millisecond), len(b), err))
		l.mu.Unlock()
		return
	}
	l.ok.Add(1)
	if m := l.mark.Load(); m != 0 && start.UnixNano() > m {
		l.afterSignal.Add(1)
	}
}

// TERM with shutdown_delay under continuous load: every connection the
// server accepted into its queue is answered; clients only ever see a
// refused (or dropped) connection attempt once the stop began.
func TestShutdownDelayUnderLoad(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 2)
		cfg.ShutdownDelay = time.Second
		m := startMaster(t, cfg, true)
		load := startRawLoad(t, m.addrs[0], "/sleep?d=5ms", 4)
		code := termUnderLoad(t, m, load, "draining: reporting not ready")
		t.Logf("%s: %d ok (%d started after TERM), %d refused at dial, %d failed",
			class, load.ok.Load(), load.afterSignal.Load(), load.dialErr.Load(), load.failed.Load())
		if code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		for _, f := range load.failures {
			t.Errorf("request failed: %s", f)
		}
		if load.afterSignal.Load() == 0 {
			t.Errorf("nothing served during shutdown_delay")
		}
	})
}

// dialErrText is the kind of a dial error: its errno when it has one.
func dialErrText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}
