//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/rawload"
)

// The load client is rawload's, which retries nothing, so that the suite
// decides what is retried: net/http's Transport silently replays GETs,
// which would hide failures.

// result is one request attempt.
type result = rawload.Result

// client sends GETs, one at a time, over one connection at a time.
type client struct {
	rawload.Client
}

func (cl *client) close() { cl.Close() }

// once sends one GET and reads the whole response; a status other than
// 200 is a failure.
func (cl *client) once(path string) result {
	r := cl.Get(path)
	if r.Err == nil && r.Status != http.StatusOK {
		r.Err = fmt.Errorf("status %d", r.Status)
	}
	return r
}

// stale says r failed on a kept-alive connection before any response byte
// arrived: the server had closed the idle connection (or its worker died
// while it was idle). Every HTTP client resends a GET on a fresh
// connection then (RFC 9112 §9.3.1; net/http does), and so does this one.
func stale(r result) bool {
	return r.Err != nil && r.Reused && r.Got == 0 && !r.DialErr && !isTimeout(r.Err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errKind names an error without addresses, for counting.
func errKind(r result) string { return rawload.ErrKind(r) }

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
	cl := &client{Client: rawload.Client{Addr: addr, KeepAlive: o.keepAlive, Timeout: o.timeout}}
	defer cl.close()
	for n := 0; n < maxRequestsPerClient && ctx.Err() == nil; n++ {
		if o.reconnectEvery > 0 && n%o.reconnectEvery == 0 {
			cl.close()
		}
		r := st.get(cl, o)
		if r.DialErr && o.stopOnDialErr {
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
	if stale(r) {
		st.stale.Add(1)
		r = cl.once(o.path)
	}
	if r.DialErr && o.stopOnDialErr {
		return r // the listener is gone (TERM): no request was sent
	}
	st.sent.Add(1)
	if r.Err != nil && o.retry {
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
	if r.Pid > 0 && r.Err == nil {
		if _, ok := st.firstSeen[r.Pid]; !ok {
			st.firstSeen[r.Pid] = r.End
		}
	}
	if r.Err == nil {
		if final && len(st.lat) < 1_000_000 {
			st.lat = append(st.lat, r.End.Sub(r.Start))
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
	cl := &client{Client: rawload.Client{Addr: addr, Timeout: 10 * time.Second}}
	defer cl.close()
	r := cl.once(path)
	if r.Err != nil {
		t.Errorf("GET %s: %s (%v)", path, errKind(r), r.Err)
	}
	return r
}
