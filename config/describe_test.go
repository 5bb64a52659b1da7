package config

import (
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	tests := []struct {
		class                string
		workers, threads, wc int
		loops                int
		engine               string
		want                 string
	}{
		{"sync", 2, 1, 1000, 0, "native", "2 workers × 1 thread, blocking IO: at most 2 requests in flight"},
		{"sync", 1, 8, 1000, 0, "native", "1 worker × 1 thread, blocking IO: at most 1 request in flight"},
		{"threaded", 2, 4, 100, 0, "native",
			"2 workers × 4 threads, blocking IO per thread: at most 8 requests in flight, 200 connections open"},
		{"evloop", 2, 0, 1000, 0, "native",
			"2 workers × one event loop per CPU the worker may use, non-blocking IO, handlers inline on the loop (a blocking handler stalls its loop): at most 2000 connections open"},
		{"evloop", 1, 16, 1000, 2, "native",
			"1 worker × 2 event loops, non-blocking IO, handlers on a pool of 16 goroutines per worker: at most 16 requests in flight, 1000 connections open"},
		{"goroutine", 3, 1, 1000, 0, "native",
			"3 workers, a goroutine per connection, non-blocking IO under blocking-looking code: at most 3000 connections open"},
		{"goroutine", 1, 1, 1, 0, "net/http",
			"1 worker, a goroutine per connection (net/http engine), non-blocking IO under blocking-looking code: at most 1 connection open"},
		{"fibers", 2, 1, 1000, 0, "native", `2 workers of unknown class "fibers"`},
	}
	for _, tt := range tests {
		c := Default()
		c.WorkerClass, c.Workers, c.Threads, c.WorkerConnections = tt.class, tt.workers, tt.threads, tt.wc
		c.EvloopLoops, c.HTTPEngine = tt.loops, tt.engine
		if got := Describe(c); got != tt.want {
			t.Errorf("Describe(%s)\n got %q\nwant %q", tt.class, got, tt.want)
		}
	}
	// Every class ships a sentence of its own.
	for _, class := range WorkerClasses {
		c := Default()
		c.WorkerClass = class
		if got := Describe(c); got == "" || strings.Contains(got, "unknown class") {
			t.Errorf("Describe(%s) = %q", class, got)
		}
	}
}
