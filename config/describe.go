package config

import "fmt"

// Describe is the startup banner's concurrency sentence (SPEC §6): how many
// processes and threads, blocking or non-blocking IO, and what that allows,
// for example "2 workers × 1 thread, blocking IO: at most 2 requests in
// flight". It knows every class name, whether or not the class is linked in.
func Describe(c *Config) string {
	w := c.Workers
	workers := plural(w, "worker")
	conns := plural(w*c.WorkerConnections, "connection") + " open"
	switch c.WorkerClass {
	case "sync":
		return fmt.Sprintf("%s × 1 thread, blocking IO: at most %s in flight",
			workers, plural(w, "request"))
	case "threaded":
		return fmt.Sprintf("%s × %s, blocking IO per thread: at most %s in flight, %s",
			workers, plural(c.Threads, "thread"), plural(w*c.Threads, "request"), conns)
	case "evloop":
		loops := plural(c.EvloopLoops, "event loop")
		if c.EvloopLoops == 0 {
			loops = "one event loop per CPU the worker may use"
		}
		if c.Threads == 0 {
			return fmt.Sprintf("%s × %s, non-blocking IO, handlers inline on the loop (a blocking handler stalls its loop): at most %s",
				workers, loops, conns)
		}
		return fmt.Sprintf("%s × %s, non-blocking IO, handlers on a pool of %s per worker: at most %s in flight, %s",
			workers, loops, plural(c.Threads, "goroutine"), plural(w*c.Threads, "request"), conns)
	case "goroutine":
		engine := ""
		if c.HTTPEngine == "net/http" {
			engine = " (net/http engine)"
		}
		return fmt.Sprintf("%s, a goroutine per connection%s, non-blocking IO under blocking-looking code: at most %s",
			workers, engine, conns)
	}
	return fmt.Sprintf("%s of unknown class %q", workers, c.WorkerClass)
}

// plural renders "1 worker", "2 workers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
