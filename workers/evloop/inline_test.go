package evloop

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/multiserve/multiserve/workers"
)

// countObserver counts what an h1.ConnObserver is told.
type countObserver struct{ conns, reading, started atomic.Int64 }

func (o *countObserver) ConnOpened()     { o.conns.Add(1) }
func (o *countObserver) ConnClosed()     { o.conns.Add(-1) }
func (o *countObserver) ReadingStarted() { o.reading.Add(1); o.started.Add(1) }
func (o *countObserver) ReadingDone()    { o.reading.Add(-1) }

// memServer is a server driven by hand through OnOpen/OnTraffic/OnClose
// on a memConn (no engine, no sockets): the inline request path only.
func memServer(t *testing.T, h http.Handler) (*server, *memConn, *countObserver) {
	t.Helper()
	s := newServer(&workers.Env{Handler: h, Config: testConfig(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, false)
	o := &countObserver{}
	s.h1.Observer = o
	c := &memConn{keep: true}
	if _, act := s.OnOpen(c); act != gnet.None {
		t.Fatal("OnOpen refused")
	}
	return s, c, o
}

// feed appends in to the connection's inbound bytes and runs OnTraffic;
// it returns the action and what was written.
func feed(s *server, c *memConn, in string) (gnet.Action, string) {
	c.in = append(c.in, in...)
	c.sent = c.sent[:0]
	act := s.OnTraffic(c)
	return act, string(c.sent)
}

// TestInlineObserverReading: the observer hears of a connection reading a
// request only when a head stays incomplete past an event, and of the end
// of it when the request is answered or the connection closes.
func TestInlineObserverReading(t *testing.T) {
	s, c, o := memServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	if act, out := feed(s, c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"); act != gnet.None || !strings.HasSuffix(out, "ok /a") {
		t.Fatalf("whole request: act %v out %q", act, out)
	}
	if o.started.Load() != 0 || o.reading.Load() != 0 {
		t.Fatalf("whole request: started %d reading %d, want 0 0", o.started.Load(), o.reading.Load())
	}
	if _, out := feed(s, c, "GET /b HTTP/1.1\r\nHo"); out != "" || o.reading.Load() != 1 {
		t.Fatalf("partial head: out %q reading %d, want none and 1", out, o.reading.Load())
	}
	if _, out := feed(s, c, "st: x\r\n"); out != "" || o.reading.Load() != 1 || o.started.Load() != 1 {
		t.Fatalf("more of the head: out %q reading %d started %d, want none, 1, 1", out, o.reading.Load(), o.started.Load())
	}
	if _, out := feed(s, c, "\r\n"); !strings.HasSuffix(out, "ok /b") || o.reading.Load() != 0 {
		t.Fatalf("head completed: out %q reading %d, want answered and 0", out, o.reading.Load())
	}
	feed(s, c, "GET /c HTTP/1.1\r\n")
	if o.reading.Load() != 1 {
		t.Fatalf("partial head again: reading %d", o.reading.Load())
	}
	s.OnClose(c, nil)
	if o.reading.Load() != 0 || o.conns.Load() != 0 {
		t.Fatalf("after close: reading %d conns %d, want 0 0", o.reading.Load(), o.conns.Load())
	}
}

// TestInlineRecycledState: requests answered inline one after another on
// the loop's recycled Response, parser and body reader see nothing of the
// request before them (headers, status, body), pipelined or not.
func TestInlineRecycledState(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("reuseRequests=%v", reuse), func(t *testing.T) { testInlineRecycledState(t, reuse) })
	}
}

func testInlineRecycledState(t *testing.T, reuse bool) {
	var kept []string // strings a handler keeps must survive recycling
	reqs := map[*http.Request]bool{}
	s, c, _ := memServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kept = append(kept, r.URL.Path, r.Header.Get("X-Id"))
		reqs[r] = true
		if r.URL.Path == "/set" {
			w.Header().Set("X-Set", "1")
			w.WriteHeader(http.StatusTeapot)
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" ["+string(b)+"]")
	}))
	s.cfg.EvloopReuseRequests = reuse
	_, out := feed(s, c, "POST /set HTTP/1.1\r\nHost: x\r\nX-Id: 1\r\nContent-Length: 5\r\n\r\nhello"+
		"GET /plain HTTP/1.1\r\nHost: x\r\nX-Id: 2\r\n\r\n"+
		"POST /p HTTP/1.1\r\nHost: x\r\nX-Id: 3\r\nContent-Length: 3\r\n\r\nab")
	resps := strings.Split(out, "HTTP/1.1 ")[1:]
	if len(resps) != 2 {
		t.Fatalf("want 2 responses before the body completes, got %q", out)
	}
	if !strings.HasPrefix(resps[0], "418") || !strings.Contains(resps[0], "X-Set: 1") || !strings.HasSuffix(resps[0], "POST /set [hello]") {
		t.Errorf("first response %q", resps[0])
	}
	if !strings.HasPrefix(resps[1], "200") || strings.Contains(resps[1], "X-Set") || !strings.HasSuffix(resps[1], "GET /plain []") {
		t.Errorf("second response %q (state of the first leaked?)", resps[1])
	}
	if _, out = feed(s, c, "c"); !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.HasSuffix(out, "POST /p [abc]") {
		t.Errorf("third response %q", out)
	}
	if want := []string{"/set", "1", "/plain", "2", "/p", "3"}; !slices.Equal(kept, want) {
		t.Errorf("strings kept by the handler: %q, want %q", kept, want)
	}
	// The setting takes effect: one recycled Request, or one per request.
	if want := map[bool]int{true: 1, false: 3}[reuse]; len(reqs) != want {
		t.Errorf("%d distinct *http.Request for 3 requests, want %d", len(reqs), want)
	}
}

// TestInlineDrainingCloses: once the worker drains, an inline response
// carries Connection: close, also when the stop begins while the handler
// runs, and the connection closes after it.
func TestInlineDrainingCloses(t *testing.T) {
	var s *server
	s, c, _ := memServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stop" {
			s.draining.Store(true)
		}
		io.WriteString(w, "ok")
	}))
	if act, out := feed(s, c, get("/")); act != gnet.None || strings.Contains(out, "Connection: close") {
		t.Fatalf("before the stop: act %v out %q", act, out)
	}
	if act, out := feed(s, c, get("/stop")); act != gnet.Close || !strings.Contains(out, "Connection: close\r\n") {
		t.Fatalf("stop during the handler: act %v out %q, want close and Connection: close", act, out)
	}
}
