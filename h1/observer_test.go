package h1_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
)

type countObserver struct{ open, reading atomic.Int64 }

func (o *countObserver) ConnOpened()     { o.open.Add(1) }
func (o *countObserver) ConnClosed()     { o.open.Add(-1) }
func (o *countObserver) ReadingStarted() { o.reading.Add(1) }
func (o *countObserver) ReadingDone()    { o.reading.Add(-1) }

// waitCounts polls until the observer shows open/reading (the engine
// reports from the connection's goroutine, after the client's write).
func (o *countObserver) waitCounts(t *testing.T, open, reading int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if o.open.Load() == open && o.reading.Load() == reading {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("open=%d reading=%d, want %d %d", o.open.Load(), o.reading.Load(), open, reading)
		}
	}
}

// TestObserver: a kept-alive connection counts as open and not reading, a
// partial head as reading, and closing either undoes its counts.
func TestObserver(t *testing.T) {
	obs := &countObserver{}
	addr, _ := testServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		func(_ *config.Config, s *h1.Server) { s.Observer = obs })
	idle := dialRaw(t, addr)
	idle.send(get)
	idle.read("GET")
	obs.waitCounts(t, 1, 0)
	partial := dialRaw(t, addr)
	partial.send("GET / HTTP/1.1\r\nHo")
	obs.waitCounts(t, 2, 1)
	partial.send("st: h\r\n\r\n" + "GET / HTTP/1.1\r\n") // one done, a pipelined one partial
	partial.read("GET")
	obs.waitCounts(t, 2, 1)
	partial.c.Close()
	obs.waitCounts(t, 1, 0)
	idle.c.Close()
	obs.waitCounts(t, 0, 0)
}
