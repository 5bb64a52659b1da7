package h1_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
)

// Server.Draining: connections idle when it is set stay open; the next
// response on each carries Connection: close and the connection closes.
func TestDrainingClosesAfterNextResponse(t *testing.T) {
	var draining atomic.Bool
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	addr, _ := testServer(t, ok, func(_ *config.Config, s *h1.Server) { s.Draining = &draining })
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*rawConn{a, b} {
		c.send(get)
		if resp, _, _ := c.read("GET"); resp.Close {
			t.Fatal("closed before draining")
		}
	}
	draining.Store(true)
	for _, c := range []*rawConn{a, b} {
		c.send(get) // idle until now: still served
		resp, body, err := c.read("GET")
		if err != nil || body != "ok" {
			t.Fatalf("request on a connection idle at the drain: %q, %v", body, err)
		}
		if !resp.Close || !c.closed() {
			t.Fatal("draining: response without Connection: close, or connection left open")
		}
	}
}
