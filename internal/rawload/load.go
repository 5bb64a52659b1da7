package rawload

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shapes a Load.
type Options struct {
	Addr      string // host:port or a unix socket path
	Clients   int    // concurrent connections; default 4
	KeepAlive bool   // keep connections open between requests
	Path      string // default "/"
	// PostEvery makes every n-th request of a client a POST of BodySize
	// bytes to PostPath (default Path); 0 sends GETs only.
	PostEvery int
	PostPath  string
	BodySize  int
	// ReconnectEvery opens a new connection after this many requests on
	// one (spreads the load over the workers); 0: never.
	ReconnectEvery int
	Timeout        time.Duration // per request; default 20 s
	// Pace is a pause after each request (leaves CPU to the server on a
	// small machine); 0: none.
	Pace time.Duration
}

// Load runs Options.Clients clients until Stop. Its counters are safe to
// read while it runs.
type Load struct {
	OK        atomic.Int64 // complete 2xx responses
	Lost      atomic.Int64 // sent, no complete response
	Resets    atomic.Int64 // lost to a connection reset
	BadStatus atomic.Int64 // complete response, not 2xx
	DialErrs  atomic.Int64 // connection attempts that failed: nothing sent
	Closed    atomic.Int64 // responses that closed their connection
	Posts     atomic.Int64 // POSTs answered 2xx
	// AfterMark counts 2xx responses to requests started after Mark.
	AfterMark atomic.Int64

	mark     atomic.Int64 // unix nanos; 0 until Mark
	mu       sync.Mutex
	failures []Result // the first maxFailures lost or non-2xx requests
	kinds    map[string]int
	pids     map[int]int // responses per worker pid
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

const maxFailures = 100

// Start runs the load until Stop is called.
func Start(o Options) *Load {
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.PostPath == "" {
		o.PostPath = o.Path
	}
	l := &Load{stop: make(chan struct{}), kinds: map[string]int{}, pids: map[int]int{}}
	body := bytes.Repeat([]byte("x"), o.BodySize)
	for range o.Clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.run(o, body)
		}()
	}
	return l
}

func (l *Load) run(o Options, body []byte) {
	cl := &Client{Addr: o.Addr, KeepAlive: o.KeepAlive, Timeout: o.Timeout}
	defer cl.Close()
	for n := 1; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		if o.ReconnectEvery > 0 && n%o.ReconnectEvery == 0 {
			cl.Close()
		}
		var r Result
		if o.PostEvery > 0 && n%o.PostEvery == 0 {
			r = cl.Do(http.MethodPost, o.PostPath, body)
		} else {
			r = cl.Get(o.Path)
		}
		l.record(r)
		if r.DialErr {
			time.Sleep(10 * time.Millisecond) // refused or gated: do not spin
		} else if o.Pace > 0 {
			time.Sleep(o.Pace)
		}
	}
}

func (l *Load) record(r Result) {
	ok := r.Err == nil && r.Status/100 == 2
	switch {
	case ok:
		l.OK.Add(1)
		if r.Method == http.MethodPost {
			l.Posts.Add(1)
		}
		if r.Close {
			l.Closed.Add(1)
		}
		if m := l.mark.Load(); m != 0 && r.Start.UnixNano() > m {
			l.AfterMark.Add(1)
		}
	case r.DialErr:
		l.DialErrs.Add(1)
	case r.Err == nil:
		l.BadStatus.Add(1)
	default:
		l.Lost.Add(1)
		if r.Reset() {
			l.Resets.Add(1)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		l.pids[r.Pid]++
		return
	}
	l.kinds[ErrKind(r)]++
	if !r.DialErr && len(l.failures) < maxFailures {
		l.failures = append(l.failures, r)
	}
}

// Mark starts counting AfterMark from now.
func (l *Load) Mark() { l.mark.Store(time.Now().UnixNano()) }

// Stop ends the load and waits for every client; safe to call twice.
func (l *Load) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Failures describes the first lost and non-2xx requests.
func (l *Load) Failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.failures))
	for _, r := range l.failures {
		out = append(out, fmt.Sprintf("%s %s (started %s, took %s, reused=%v, got %d bytes, last pid %d): %v",
			r.Method, ErrKind(r), r.Start.UTC().Format("15:04:05.000000"), r.End.Sub(r.Start).Round(time.Millisecond),
			r.Reused, r.Got, r.Pid, r.Err))
	}
	return out
}

// Pids returns how many 2xx responses each worker pid sent.
func (l *Load) Pids() map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.pids)
}

// String summarises the counts, for a test log.
func (l *Load) String() string {
	l.mu.Lock()
	kinds := make([]string, 0, len(l.kinds))
	for k, n := range l.kinds {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	l.mu.Unlock()
	sort.Strings(kinds)
	return fmt.Sprintf("ok=%d (posts %d, closed %d) lost=%d resets=%d bad-status=%d dial-errors=%d {%s}",
		l.OK.Load(), l.Posts.Load(), l.Closed.Load(), l.Lost.Load(), l.Resets.Load(), l.BadStatus.Load(),
		l.DialErrs.Load(), strings.Join(kinds, ", "))
}

// T is the part of testing.TB that WantNoLoss uses.
type T interface {
	Helper()
	Errorf(format string, args ...any)
}

// WantNoLoss fails t for every lost or non-2xx request; with noDialErrs,
// for failed connects too. Call it after Stop.
func (l *Load) WantNoLoss(t T, noDialErrs bool) {
	t.Helper()
	for _, f := range l.Failures() {
		t.Errorf("request failed: %s", f)
	}
	if n := l.Failed(); n > int64(len(l.Failures())) {
		t.Errorf("%d requests failed in all: %s", n, l)
	}
	if n := l.DialErrs.Load(); noDialErrs && n != 0 {
		t.Errorf("%d connects failed: %s", n, l)
	}
}

// Kinds counts the failures by ErrKind (dial errors included).
func (l *Load) Kinds() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.kinds)
}

// Failed is the number of requests lost or answered with a non-2xx status.
func (l *Load) Failed() int64 { return l.Lost.Load() + l.BadStatus.Load() }
