package workers

import (
	"log/slog"
	stdsync "sync"
	"time"

	"github.com/multiserve/multiserve/h1"
)

// ConnSet tracks the open engine connections of a class that serves each
// on a goroutine of its own, so a graceful stop can wait for them and,
// past graceful_timeout, close the stragglers. The zero value is ready;
// it is safe for concurrent use.
type ConnSet struct {
	mu stdsync.Mutex
	m  map[*h1.Conn]struct{}
	wg stdsync.WaitGroup
}

// Add tracks c; call it before starting the goroutine that serves c.
func (s *ConnSet) Add(c *h1.Conn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[*h1.Conn]struct{}{}
	}
	s.m[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
}

// Done stops tracking c once its goroutine is finished with it.
func (s *ConnSet) Done(c *h1.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Drain waits for every tracked connection to be Done, at most grace (0:
// no limit); past it, it closes those still open, logging how many, and
// waits for their goroutines.
func (s *ConnSet) Drain(grace time.Duration, log *slog.Logger) {
	if s.wait(grace) {
		return
	}
	s.mu.Lock()
	log.Warn("graceful_timeout expired, closing connections", "open", len(s.m))
	for c := range s.m {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// wait reports whether every connection was Done within grace (0: no
// limit).
func (s *ConnSet) wait(grace time.Duration) bool {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	if grace <= 0 {
		<-done
		return true
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
