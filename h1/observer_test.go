package h1_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
)

// waitCounts polls until the observer shows open/reading (the engine
// reports from the connection's goroutine, after the client's write).
func waitCounts(t *testing.T, o *h1.CountObserver, open, reading int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if o.Open.Load() == open && o.Reading.Load() == reading {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("open=%d reading=%d, want %d %d", o.Open.Load(), o.Reading.Load(), open, reading)
		}
	}
}

// TestObserver: a kept-alive connection counts as open and not reading, a
// partial head as reading, and closing either undoes its counts.
func TestObserver(t *testing.T) {
	obs := &h1.CountObserver{}
	addr, _ := testServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		func(_ *config.Config, s *h1.Server) { s.Observer = obs })
	idle := dialRaw(t, addr)
	idle.send(get)
	idle.read("GET")
	waitCounts(t, obs, 1, 0)
	partial := dialRaw(t, addr)
	partial.send("GET / HTTP/1.1\r\nHo")
	waitCounts(t, obs, 2, 1)
	partial.send("st: h\r\n\r\n" + "GET / HTTP/1.1\r\n") // one done, a pipelined one partial
	partial.read("GET")
	waitCounts(t, obs, 2, 1)
	partial.c.Close()
	waitCounts(t, obs, 1, 0)
	idle.c.Close()
	waitCounts(t, obs, 0, 0)
}
