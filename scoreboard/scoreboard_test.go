package scoreboard

import (
	"github.com/multiserve/multiserve/h1"

	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func newBoard(t testing.TB, n int) *Board {
	t.Helper()
	b, err := Create(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestAssignRetireTotals(t *testing.T) {
	b := newBoard(t, 4)
	idx, ok := b.Assign(0)
	if !ok || idx != 0 {
		t.Fatalf("Assign = %d %v", idx, ok)
	}
	b.SetPID(idx, 42)
	s := b.Slot(idx)
	if in := s.Info(); in.State != StateBooting || in.PID != 42 {
		t.Fatalf("after Assign: %+v", in)
	}
	s.Started(42)
	st := s.Begin("GET", "/a", "1.2.3.4:5", 3*time.Millisecond)
	if in := s.Info(); in.State != StateHandling || in.InFlight != 1 || in.Current.Path != "/a" || in.Current.Client != "1.2.3.4:5" {
		t.Fatalf("in flight: %+v", in)
	}
	s.End(st, 404, 10)
	if in := s.Info(); in.State != StateIdle || in.InFlight != 0 || in.Requests != 1 || in.Bytes != 10 {
		t.Fatalf("after End: %+v", in)
	}
	live := map[int]Owner{idx: {PID: 42, Class: "sync"}}
	if c := b.Totals(live)["sync"]; c.Requests != 1 || c.Status[3] != 1 || c.QCount != 1 || sum(c.LatBuckets[:]) != 1 {
		t.Fatalf("totals: %+v", c)
	}
	b.Retire(idx, "sync")
	if in := b.Slot(idx).Info(); in.PID != 0 || in.Requests != 0 {
		t.Fatalf("retired slot not empty: %+v", in)
	}
	// Counted once: live map still naming the slot must not double count.
	if c := b.Totals(live)["sync"]; c.Requests != 1 {
		t.Fatalf("after retire: %d requests", c.Requests)
	}
	for i := 0; i < 4; i++ {
		if _, ok := b.Assign(0); !ok {
			t.Fatalf("slot %d not free", i)
		}
	}
	if _, ok := b.Assign(0); ok {
		t.Fatal("Assign beyond capacity")
	}
}

func sum(xs []uint64) (n uint64) {
	for _, x := range xs {
		n += x
	}
	return n
}

func TestLongStringsTruncated(t *testing.T) {
	b := newBoard(t, 1)
	s := b.Slot(0)
	long := "/" + strings.Repeat("x", 200)
	s.Begin("PROPFINDVERYLONGMETHOD", long, "c", 0)
	r := s.Current()
	if r.Path != long[:pathLen] || r.Method != "PROPFINDVERYLONG" {
		t.Fatalf("got %q %q", r.Method, r.Path)
	}
}

// TestSeqlockNoTornReads: concurrent writers of different request blocks;
// a reader only ever sees a method/path pair that was written together.
func TestSeqlockNoTornReads(t *testing.T) {
	b := newBoard(t, 1)
	s := b.Slot(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := fmt.Sprintf("M%d", i%7)
				st := s.Begin(m, "/p/"+m+strings.Repeat("z", i%40), "c"+m, 0)
				s.End(st, 200, 1)
			}
		}()
	}
	for i := 0; i < 20000; i++ {
		r := s.Current()
		if r.Method == "" {
			continue
		}
		if !strings.HasPrefix(r.Path, "/p/"+r.Method) || r.Client != "c"+r.Method {
			close(stop)
			wg.Wait()
			t.Fatalf("torn read: %+v", r)
		}
	}
	close(stop)
	wg.Wait()
}

func TestMiddleware(t *testing.T) {
	b := newBoard(t, 1)
	s := b.Slot(0)
	s.Started(os.Getpid())
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/teapot":
			w.WriteHeader(418)
		}
		io.WriteString(w, "hello")
	}), s)
	for _, p := range []string{"/", "/teapot"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	func() {
		defer func() { recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/panic", nil))
	}()
	c := s.Counters()
	if c.Requests != 3 || c.Status[1] != 1 || c.Status[3] != 1 || c.Status[4] != 1 || c.Bytes != 10 {
		t.Fatalf("counters: %+v", c)
	}
	if in := s.Info(); in.State != StateIdle || in.InFlight != 0 {
		t.Fatalf("state after: %+v", in)
	}
}

// TestAttachInChild: a real second process maps its slot from the
// inherited memfd and its writes show up in the parent's mapping.
func TestAttachInChild(t *testing.T) {
	if os.Getenv("SCOREBOARD_CHILD") == "1" {
		s, err := Attach()
		if err != nil {
			fmt.Println("attach:", err)
			os.Exit(1)
		}
		st := s.Begin("POST", "/child", "peer", 0)
		s.End(st, 201, 7)
		s.Begin("GET", "/hung", "peer2", 0)
		os.Exit(0)
	}
	b := newBoard(t, 8)
	b.Assign(0)
	idx, _ := b.Assign(0)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttachInChild$")
	cmd.ExtraFiles = []*os.File{b.File()}
	cmd.Env = append(os.Environ(), "SCOREBOARD_CHILD=1", SlotEnv(3, idx))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	in := b.Slot(idx).Info()
	if in.PID != cmd.Process.Pid || in.Requests != 1 || in.InFlight != 1 || in.State != StateHandling ||
		in.Current.Path != "/hung" || in.Current.Age() <= 0 || in.Attached.IsZero() {
		t.Fatalf("child slot: %+v", in)
	}
}

// The overhead benchmarks: the same hello handler served over loopback
// keep-alive with and without the middleware, in one run:
//
//	go test -run ^$ -bench Hello -count 5 ./scoreboard
func BenchmarkHello(b *testing.B) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Hello, World!\n") })
	board := newBoard(b, 1)
	s := board.Slot(0)
	s.Started(os.Getpid())
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"off", hello}, {"on", Middleware(hello, s)}} {
		b.Run(tc.name, func(b *testing.B) { benchLoopback(b, tc.h) })
	}
}

func benchLoopback(b *testing.B, h http.Handler) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkMiddlewareOnly is the middleware's own cost per request.
func BenchmarkMiddlewareOnly(b *testing.B) {
	benchMiddleware(b, func(w *httptest.ResponseRecorder) http.ResponseWriter { return w })
}

// BenchmarkMiddlewareEngineMeter is BenchmarkMiddlewareOnly with a writer
// that implements ResponseMeter and HeadTimer, which no engine does yet:
// no wrapper, one clock read.
func BenchmarkMiddlewareEngineMeter(b *testing.B) {
	benchMiddleware(b, func(w *httptest.ResponseRecorder) http.ResponseWriter {
		return &meteredWriter{ResponseWriter: w, head: time.Now()}
	})
}

func benchMiddleware(b *testing.B, writer func(*httptest.ResponseRecorder) http.ResponseWriter) {
	board := newBoard(b, 1)
	s := board.Slot(0)
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }), s)
	r := httptest.NewRequest("GET", "/hello", nil)
	w := writer(httptest.NewRecorder())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, r)
	}
}

// meteredWriter is an engine writer that keeps its own figures
// (ResponseMeter) and its head time (HeadTimer).
type meteredWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	head   time.Time
}

func (w *meteredWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *meteredWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.bytes += int64(len(p))
	return w.ResponseWriter.Write(p)
}

func (w *meteredWriter) ResponseStatus() int  { return w.status }
func (w *meteredWriter) ResponseBytes() int64 { return w.bytes }
func (w *meteredWriter) HeadDone() time.Time  { return w.head }

// TestMiddlewareEngineMeter: with a writer implementing ResponseMeter and
// HeadTimer the middleware takes status, bytes and start from it: the
// latency runs from the head time, the block's start is the head time.
func TestMiddlewareEngineMeter(t *testing.T) {
	s := newBoard(t, 1).Slot(0)
	s.Started(os.Getpid())
	var inHandler Info
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		inHandler = s.Info()
		w.WriteHeader(404)
		io.WriteString(w, "nope")
	}), s)
	head := time.Now().Add(-30 * time.Millisecond)
	h.ServeHTTP(&meteredWriter{ResponseWriter: httptest.NewRecorder(), head: head}, httptest.NewRequest("GET", "/x", nil))
	if inHandler.InFlight != 1 || inHandler.Current.Age() < 30*time.Millisecond || inHandler.Current.Path != "/x" {
		t.Fatalf("in handler: %+v (age %v)", inHandler, inHandler.Current.Age())
	}
	func() {
		defer func() { recover() }()
		h.ServeHTTP(&meteredWriter{ResponseWriter: httptest.NewRecorder(), head: time.Now()}, httptest.NewRequest("GET", "/panic", nil))
	}()
	c := s.Counters()
	// 30 ms lands in the 50 ms bucket (index 5) or above.
	if c.Requests != 2 || c.Status[3] != 1 || c.Status[4] != 1 || c.Bytes != 4 || sum(c.LatBuckets[5:]) < 1 {
		t.Fatalf("counters: %+v", c)
	}
	if in := s.Info(); in.InFlight != 0 || in.State != StateIdle {
		t.Fatalf("after: %+v", in)
	}
}

// TestDerivedState: the state readers see follows the counters, busiest
// first, whatever order connections and requests report in.
func TestDerivedState(t *testing.T) {
	s := newBoard(t, 1).Slot(0)
	s.Started(1)
	want := func(st State, conns, reading int64) {
		t.Helper()
		if in := s.Info(); in.State != st || in.Connections != conns || in.Reading != reading {
			t.Fatalf("got %v conns=%d reading=%d, want %v %d %d", in.State, in.Connections, in.Reading, st, conns, reading)
		}
	}
	want(StateIdle, 0, 0)
	s.ConnOpened()
	s.ConnOpened()
	want(StateKeepAlive, 2, 0)
	s.ReadingStarted()
	want(StateReading, 2, 1)
	st := s.Begin("GET", "/", "c", 0)
	want(StateHandling, 2, 1)
	s.End(st, 200, 0)
	want(StateReading, 2, 1)
	s.ReadingDone()
	want(StateKeepAlive, 2, 0)
	s.ConnClosed()
	s.ConnClosed()
	want(StateIdle, 0, 0)
	s.SetState(StateBooting)
	s.ConnOpened()
	want(StateBooting, 1, 0) // a lifecycle state is not overridden
}

// BenchmarkReadingPair: what the engine adds per request, through the
// h1.ConnObserver interface.
func BenchmarkReadingPair(b *testing.B) {
	var o h1.ConnObserver = newBoard(b, 1).Slot(0)
	for b.Loop() {
		o.ReadingStarted()
		o.ReadingDone()
	}
}

// TestRequestBlockRewrites: the block skips unchanged words and writes
// only the words a value needs, so every mix of longer and shorter,
// same and different values must read back exactly.
func TestRequestBlockRewrites(t *testing.T) {
	s := newBoard(t, 1).Slot(0)
	for _, v := range []string{"/", "/a/long/path/of/many/words?q=1", "/a/long", "/a/long/path/of/many/words?q=2", "", "/12345678", "/1234567", "/12345678"} {
		s.End(s.Begin("GET", v, "10.0.0.1:"+v, 0), 200, 0)
		if r := s.Current(); r.Path != v || r.Client != "10.0.0.1:"+v || r.Method != "GET" {
			t.Fatalf("wrote %q, read %+v", v, r)
		}
	}
	if in := s.Info(); in.Requests != 8 || in.InFlight != 0 {
		t.Fatalf("derived counts: %+v", in)
	}
}
