//go:build chaos

package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The load client speaks HTTP/1.1 over raw connections so that the suite
// decides what is retried: net/http's Transport silently replays GETs,
// which would hide failures.

// result is one request attempt.
type result struct {
	start, end time.Time
	pid        int // X-Worker-Pid of the response, or of the connection's last response on failure (0 = unknown)
	status     int
	err        error
	reused     bool  // the connection had answered a request before
	got        int64 // response bytes read before the error
	dialErr    bool
}

// countReader counts the bytes read through it since the last reset.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type clientConn struct {
	nc     net.Conn
	cr     *countReader
	br     *bufio.Reader
	pid    int
	served int
}

// client sends GETs, one at a time, over one connection at a time.
type client struct {
	addr      string
	keepAlive bool
	timeout   time.Duration
	c         *clientConn
}

func (cl *client) close() {
	if cl.c != nil {
		_ = cl.c.nc.Close()
		cl.c = nil
	}
}

// once sends one request and reads the whole response.
func (cl *client) once(path string) result {
	res := result{start: time.Now()}
	if cl.c == nil {
		nc, err := net.DialTimeout("tcp", cl.addr, 2*time.Second)
		if err != nil {
			res.err, res.dialErr, res.end = err, true, time.Now()
			return res
		}
		cr := &countReader{r: nc}
		cl.c = &clientConn{nc: nc, cr: cr, br: bufio.NewReader(cr)}
	}
	c := cl.c
	res.reused, res.pid = c.served > 0, c.pid
	c.cr.n = 0
	_ = c.nc.SetDeadline(res.start.Add(cl.timeout))
	hdr := ""
	if !cl.keepAlive {
		hdr = "Connection: close\r\n"
	}
	fail := func(err error) result {
		res.err, res.got, res.end = err, c.cr.n, time.Now()
		cl.close()
		return res
	}
	if _, err := io.WriteString(c.nc, "GET "+path+" HTTP/1.1\r\nHost: chaos\r\n"+hdr+"\r\n"); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fail(err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fail(err)
	}
	if p, _ := strconv.Atoi(resp.Header.Get("X-Worker-Pid")); p > 0 {
		res.pid, c.pid = p, p
	}
	c.served++
	res.status, res.got, res.end = resp.StatusCode, c.cr.n, time.Now()
	if !cl.keepAlive || resp.Close {
		cl.close()
	}
	if resp.StatusCode != http.StatusOK {
		res.err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return res
}

// stale says r failed on a kept-alive connection before any response byte
// arrived: the server had closed the idle connection (or its worker died
// while it was idle). Every HTTP client resends a GET on a fresh
// connection then (RFC 9112 §9.3.1; net/http does), and so does this one.
func (r result) stale() bool {
	return r.err != nil && r.reused && r.got == 0 && !r.dialErr && !isTimeout(r.err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errKind names an error without addresses, for counting.
func errKind(r result) string {
	err := r.err
	switch {
	case err == nil:
		return "ok"
	case r.dialErr && errors.Is(err, syscall.ECONNREFUSED):
		return "dial: connection refused"
	case r.dialErr:
		return "dial: " + short(err)
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("reset (after %d bytes)", r.got)
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("eof (after %d bytes)", r.got)
	}
	return short(err)
}

func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// loadOpts shapes a load run.
type loadOpts struct {
	clients        int
	keepAlive      bool
	retry          bool // retry a failed GET once on a fresh connection
	path           string
	reconnectEvery int           // keep-alive: new connection after this many requests (spreads load over workers)
	timeout        time.Duration // per attempt
	stopOnDialErr  bool          // a client stops at its first dial error (TERM: the listener is gone)
}

// loadStats are a load run's counts. failed counts requests that failed
// after the retries the run allows.
type loadStats struct {
	retry   bool
	sent    atomic.Int64
	failed  atomic.Int64
	stale   atomic.Int64 // stale keep-alive connections resent
	retried atomic.Int64 // explicit retries

	mu        stdsync.Mutex
	failures  []result // failed attempts that were not resent as stale (the first 1000)
	kinds     map[string]int
	lat       []time.Duration // successful requests' latency
	firstSeen map[int]time.Time
	stopped   map[int]int // client index → a dial error ended it
}

const maxRequestsPerClient = 1_000_000 // a bound, never reached in practice

// startLoad runs opts.clients goroutines until stop is called.
func startLoad(t *testing.T, addr string, o loadOpts) (*loadStats, func()) {
	t.Helper()
	if o.path == "" {
		o.path = "/"
	}
	if o.timeout == 0 {
		o.timeout = 5 * time.Second
	}
	st := &loadStats{retry: o.retry, kinds: map[string]int{}, firstSeen: map[int]time.Time{}, stopped: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg stdsync.WaitGroup
	for i := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.run(ctx, i, addr, o)
		}()
	}
	var once stdsync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return st, stop
}

func (st *loadStats) run(ctx context.Context, idx int, addr string, o loadOpts) {
	cl := &client{addr: addr, keepAlive: o.keepAlive, timeout: o.timeout}
	defer cl.close()
	for n := 0; n < maxRequestsPerClient && ctx.Err() == nil; n++ {
		if o.reconnectEvery > 0 && n%o.reconnectEvery == 0 {
			cl.close()
		}
		r := st.get(cl, o)
		if r.dialErr && o.stopOnDialErr {
			st.mu.Lock()
			st.stopped[idx]++
			st.mu.Unlock()
			return
		}
		// Pacing: leave CPU to the server and arbiter on a 2-core box.
		time.Sleep(time.Millisecond)
	}
}

// get sends one GET with the run's retry policy and records the outcome.
func (st *loadStats) get(cl *client, o loadOpts) result {
	r := cl.once(o.path)
	if r.stale() {
		st.stale.Add(1)
		r = cl.once(o.path)
	}
	if r.dialErr && o.stopOnDialErr {
		return r // the listener is gone (TERM): no request was sent
	}
	st.sent.Add(1)
	if r.err != nil && o.retry {
		st.record(r, false)
		st.retried.Add(1)
		r = cl.once(o.path) // on a fresh connection: once closed it
	}
	st.record(r, true)
	return r
}

// record notes an attempt; final says it is the request's last one.
func (st *loadStats) record(r result, final bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if r.pid > 0 && r.err == nil {
		if _, ok := st.firstSeen[r.pid]; !ok {
			st.firstSeen[r.pid] = r.end
		}
	}
	if r.err == nil {
		if final && len(st.lat) < 1_000_000 {
			st.lat = append(st.lat, r.end.Sub(r.start))
		}
		return
	}
	if final {
		st.failed.Add(1)
		st.kinds[errKind(r)]++
	} else {
		st.kinds["retried: "+errKind(r)]++
	}
	if len(st.failures) < 1000 {
		st.failures = append(st.failures, r)
	}
}

// seenAt says when pid first answered a request of this run.
func (st *loadStats) seenAt(pid int) (time.Time, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	at, ok := st.firstSeen[pid]
	return at, ok
}

// latencies returns a copy of the successful requests' latencies.
func (st *loadStats) latencies() []time.Duration {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]time.Duration(nil), st.lat...)
}

// String summarises the run for the test log.
func (st *loadStats) String() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	kinds := make([]string, 0, len(st.kinds))
	for k, n := range st.kinds {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(kinds)
	mode := "no retry"
	if st.retry {
		mode = "1 retry"
	}
	return fmt.Sprintf("[%s] sent=%d failed=%d stale-keepalive-resent=%d retried=%d errors={%s}",
		mode, st.sent.Load(), st.failed.Load(), st.stale.Load(), st.retried.Load(), strings.Join(kinds, ", "))
}

// mustGet sends one GET on a fresh connection and fails the test unless
// it gets a 200.
func mustGet(t *testing.T, addr, path string) result {
	t.Helper()
	cl := &client{addr: addr, timeout: 10 * time.Second}
	defer cl.close()
	r := cl.once(path)
	if r.err != nil {
		t.Errorf("GET %s: %s (%v)", path, errKind(r), r.err)
	}
	return r
}
