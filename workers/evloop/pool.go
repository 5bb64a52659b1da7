package evloop

import (
	"runtime"
	stdsync "sync"
)

// pool runs handlers off the event loops on at most size goroutines. They
// start on demand and then stay, parked, until the pool is closed: a new
// goroutine per request would pay for a fresh stack growing each time.
//
// submit never blocks: it is called from event loops. The queue needs no
// bound of its own because a connection has at most one request in the
// pool at a time (requests on a connection run one after another), so it
// holds at most worker_connections jobs.
type pool struct {
	size int
	// yield, when set, tells whether a pool goroutine should let the
	// loops run before its next job (see loop).
	yield func() bool

	mu      stdsync.Mutex
	work    stdsync.Cond // signalled when a job is queued or the pool closes
	done    stdsync.Cond // signalled when a goroutine exits
	queue   []func()
	running int // goroutines started and not exited
	idle    int // of those, parked waiting for work
	closed  bool
}

func newPool(size int) *pool {
	p := &pool{size: size}
	p.work.L, p.done.L = &p.mu, &p.mu
	return p
}

// submit queues job, waking a parked goroutine or starting one if fewer
// than size run.
func (p *pool) submit(job func()) {
	p.mu.Lock()
	p.queue = append(p.queue, job)
	start := false
	switch {
	case p.idle > 0:
		p.work.Signal()
	case p.running < p.size:
		p.running++
		start = true
	}
	p.mu.Unlock()
	if start {
		go p.loop()
	}
}

func (p *pool) loop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for len(p.queue) == 0 && !p.closed {
			p.idle++
			p.work.Wait()
			p.idle--
		}
		if len(p.queue) == 0 { // closed and drained
			p.running--
			p.done.Broadcast()
			return
		}
		job := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		// With one P for the loops and the pool, a loop that lost its P
		// (a blocking epoll_wait, a preemption) waits on the global run
		// queue, which the scheduler reads only every 61st switch while
		// the local one holds work. A pool goroutine that yields goes
		// there behind the loop: the local queue drains sooner and the
		// global one is read more often, so the loop runs sooner. Worth
		// it while requests wait for the loop to run their handlers
		// inline; a scheduler round trip per job for nothing otherwise.
		if p.yield != nil && p.yield() {
			runtime.Gosched()
		}
		job()
		p.mu.Lock()
	}
}

// close lets the goroutines exit once the queue is empty and waits for
// them; callers bound the wait themselves (a handler may never return).
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.work.Broadcast()
	for p.running > 0 {
		p.done.Wait()
	}
	p.mu.Unlock()
}
