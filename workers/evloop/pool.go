package evloop

import (
	stdsync "sync"
)

// pool runs handlers off the event loops on at most size goroutines. It
// grows on demand and its goroutines exit when the queue is empty, so an
// idle worker holds none (a pool of 1000 for a sleepy handler costs nothing
// until it is used).
//
// submit never blocks: it is called from event loops. The queue needs no
// bound of its own because a connection has at most one request in the
// pool at a time (requests on a connection run one after another), so it
// holds at most worker_connections jobs.
type pool struct {
	size int

	mu      stdsync.Mutex
	queue   []func()
	running int
	idle    *stdsync.Cond // signalled when running drops to 0
}

func newPool(size int) *pool {
	p := &pool{size: size}
	p.idle = stdsync.NewCond(&p.mu)
	return p
}

// submit queues job; it starts a goroutine if fewer than size are running.
func (p *pool) submit(job func()) {
	p.mu.Lock()
	p.queue = append(p.queue, job)
	start := p.running < p.size
	if start {
		p.running++
	}
	p.mu.Unlock()
	if start {
		go p.work()
	}
}

func (p *pool) work() {
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running--
			if p.running == 0 {
				p.idle.Broadcast()
			}
			p.mu.Unlock()
			return
		}
		job := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		job()
	}
}

// wait blocks until no job is queued or running.
func (p *pool) wait() {
	p.mu.Lock()
	for p.running > 0 {
		p.idle.Wait()
	}
	p.mu.Unlock()
}
