package evloop

import (
	"context"
	"strconv"
	"testing"

	"github.com/panjf2000/gnet/v2"
)

// TestEngineLoops: the reflection into gnet finds every event loop of the
// engine (the layout is gnet v2.9.7's; see TestGnetVersionPinned), and the
// accept loop spreads connections over all of them through gnet's own
// connection constructor (gnetconn.go): each loop serves.
func TestEngineLoops(t *testing.T) {
	useGnetAcceptor(t, false)
	cfg := testConfig()
	cfg.EvloopLoops = 3
	hs := startServer(t, cfg, pathHandler)
	if n := len(hs.s.gloops); n != 3 {
		t.Fatalf("%d loops found, want 3", n)
	}
	for i := range 6 { // held open, so each is still counted on its loop below
		c := dial(t, hs.addrs[0])
		c.send(get("/l" + strconv.Itoa(i)))
		if got := body(c.read()); got != "path=/l"+strconv.Itoa(i) {
			t.Fatalf("got %q", got)
		}
	}
	for _, gl := range hs.s.gloops {
		ls := hs.s.loopOf(gl.el)
		n := make(chan int, 1)
		err := gl.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			n <- len(ls.conns)
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if got := <-n; got != 2 {
			t.Errorf("a loop holds %d connections, want 2 of 6 round-robin", got)
		}
	}
}
