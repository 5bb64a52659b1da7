package workers_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/workers"
)

// TestConnSetDrain: Drain returns at once when the connections are done,
// and past its grace closes an idle straggler and waits for its goroutine.
func TestConnSetDrain(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	srv := &h1.Server{Handler: http.NotFoundHandler(), Config: config.Default(), Log: log}
	var s workers.ConnSet
	s.Drain(0, log) // nothing tracked: returns

	a, b := net.Pipe()
	defer b.Close()
	c := srv.NewConn(a)
	s.Add(c)
	served := make(chan struct{})
	go func() {
		defer close(served)
		defer s.Done(c)
		c.Serve(context.Background(), false)
	}()
	s.Drain(50*time.Millisecond, log)
	select {
	case <-served:
	default:
		t.Fatal("Drain returned while the connection's goroutine still ran")
	}
	b.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Error("the straggler was not closed")
	}
}
