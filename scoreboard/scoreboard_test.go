package scoreboard

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
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

// TestMapInChild: a real second process maps its slot from the inherited
// memfd and its writes show up in the parent's mapping.
func TestMapInChild(t *testing.T) {
	if v := os.Getenv("SCOREBOARD_CHILD"); v != "" {
		idx, _ := strconv.Atoi(v)
		s, err := Map(3, idx)
		if err != nil {
			fmt.Println("map:", err)
			os.Exit(1)
		}
		s.Started(os.Getpid())
		st := s.Begin("POST", "/child", "peer", 0)
		s.End(st, 201, 7)
		s.Begin("GET", "/hung", "peer2", 0)
		os.Exit(0)
	}
	b := newBoard(t, 8)
	b.Assign(0)
	idx, _ := b.Assign(0)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMapInChild$")
	cmd.ExtraFiles = []*os.File{b.File()}
	cmd.Env = append(os.Environ(), "SCOREBOARD_CHILD="+strconv.Itoa(idx))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	in := b.Slot(idx).Info()
	if in.PID != cmd.Process.Pid || in.Requests != 1 || in.InFlight != 1 || in.State != StateHandling ||
		in.Current.Path != "/hung" || in.Current.Age() <= 0 || in.Attached.IsZero() {
		t.Fatalf("child slot: %+v", in)
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

// readingObserver is the part of the engine's connection observer
// (h1.ConnObserver) a request's head uses.
type readingObserver interface {
	ReadingStarted()
	ReadingDone()
}

// BenchmarkReadingPair: what the engine adds per request, through its
// observer interface.
func BenchmarkReadingPair(b *testing.B) {
	var o readingObserver = newBoard(b, 1).Slot(0)
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
