package evloop

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestPoolBound: at most size jobs run at once, every job runs, and close
// waits for the goroutines to exit (goleak checks they did).
func TestPoolBound(t *testing.T) {
	p := newPool(3)
	var running, peak, ran atomic.Int32
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for range 20 {
		wg.Add(1)
		p.submit(func() {
			defer wg.Done()
			n := running.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			<-gate
			running.Add(-1)
			ran.Add(1)
		})
	}
	close(gate)
	wg.Wait()
	p.close()
	if ran.Load() != 20 || peak.Load() > 3 {
		t.Fatalf("ran %d jobs with peak concurrency %d, want 20 and <= 3", ran.Load(), peak.Load())
	}
}
