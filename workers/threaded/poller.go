package threaded

import (
	"context"
	"fmt"
	stdsync "sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/fdconn"
	"github.com/multiserve/multiserve/internal/fdpoll"
	"github.com/multiserve/multiserve/workers"
)

// acceptBatch bounds the connections taken from one listener per wakeup,
// so parked connections and the heartbeat are not starved by a flood.
const acceptBatch = 64

// poller owns the epoll instance. Fields above mu are set once in
// newPoller or touched only by the poller goroutine; the rest is shared
// with the threads.
type poller struct {
	env       *workers.Env
	srv       *h1.Server
	ep        int
	waker     *fdpoll.Waker
	listeners map[int]*workers.Listener // by fd
	acceptors map[int]*fdconn.Acceptor  // by listener fd
	maxConns  int
	beat      time.Duration
	events    []unix.EpollEvent

	queue       chan *conn    // readable connections waiting for a thread
	threadsDone chan struct{} // closed when every thread has returned
	threads     int32         // pool size
	busy        atomic.Int32  // threads serving a connection
	saturated   atomic.Bool   // listeners dropped for want of a free thread

	listening   bool      // listeners are in the epoll set
	pauseTo     time.Time // accepting paused (out of descriptors) until then
	full        bool      // accepting paused: no thread free (see threadFree)
	backoff     workers.Backoff
	stopped     bool // stop has run
	queueClosed bool

	mu       stdsync.Mutex
	conns    map[int]*conn // open connections by fd
	gen      int32         // last generation handed out (0 is reserved)
	fresh    idleList      // parked before their first request: header_timeout
	kept     idleList      // parked between requests: keepalive
	partial  idleList      // parked mid-head: header_timeout from its first byte
	stopping bool          // no more parking between requests; threads close instead
	retireAt time.Time     // stopping: when the stop began (retireEnd)
	noPark   bool          // the queue is closing: a parked conn could never be queued again
}

func newPoller(env *workers.Env) (*poller, error) {
	cfg := env.Config
	p := &poller{
		env:         env,
		srv:         env.Engine(),
		listeners:   make(map[int]*workers.Listener, len(env.Listeners)),
		maxConns:    cfg.WorkerConnections,
		beat:        workers.BeatInterval(cfg.Timeout),
		events:      make([]unix.EpollEvent, 256),
		queue:       make(chan *conn, cfg.WorkerConnections), // never full: see enqueue
		threadsDone: make(chan struct{}),
		threads:     int32(cfg.Threads),
		conns:       make(map[int]*conn),
		fresh:       idleList{timeout: cfg.HeaderTimeout},
		kept:        idleList{timeout: cfg.Keepalive},
		partial:     idleList{timeout: cfg.HeaderTimeout},
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("threaded: epoll_create1: %w", err)
	}
	p.ep = ep
	if p.waker, err = fdpoll.NewWaker(); err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("threaded: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.waker.FD())}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, p.waker.FD(), &ev); err != nil {
		p.close()
		return nil, fmt.Errorf("threaded: epoll add waker: %w", err)
	}
	p.acceptors = make(map[int]*fdconn.Acceptor, len(env.Listeners))
	for _, l := range env.Listeners {
		p.listeners[l.FD] = l
		if err := p.addAcceptor(l); err != nil {
			p.close()
			return nil, err
		}
	}
	if err := p.listen(true); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// addAcceptor makes l's Acceptor, with the kernel timeouts of the first
// deadlines every connection sets (the engine's header_timeout read
// deadline for a first request, its rolling write deadline) put on the
// listener once. The per-accept mode check stays: this poller holds other
// clients' connections, which an accept waiting on a listener left
// blocking would leave unanswered.
func (p *poller) addAcceptor(l *workers.Listener) error {
	a, err := fdconn.NewAcceptor(l.FD)
	if err == nil {
		err = a.SetTimeouts(p.env.Config.HeaderTimeout, h1.WriteStall(p.env.Config))
	}
	if err != nil {
		return fmt.Errorf("threaded: listener %s: %w", l.Name, err)
	}
	p.acceptors[l.FD] = a
	return nil
}

// run is the poller loop; it returns nil once stopped and every thread
// has finished, or the first fatal error.
func (p *poller) run(ctx context.Context) error {
	for ready := false; ; {
		p.env.Beat()
		if !ready {
			p.env.Ready() // listeners are armed: connections queue for us
			ready = true
		}
		n, err := unix.EpollWait(p.ep, p.events, fdpoll.Millis(p.wait(time.Now())))
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("threaded: epoll_wait: %w", err)
		}
		for _, ev := range p.events[:max(n, 0)] {
			if err := p.dispatch(ev); err != nil {
				return err
			}
		}
		p.sweep(time.Now())
		if ctx.Err() != nil {
			p.stop()
		}
		p.drained()
		if p.stopped {
			select {
			case <-p.threadsDone:
				return nil
			default:
				continue // keep beating while requests finish
			}
		}
		if err := p.listen(p.wantListen()); err != nil {
			return err
		}
	}
}

func (p *poller) dispatch(ev unix.EpollEvent) error {
	fd := int(ev.Fd)
	switch {
	case fd == p.waker.FD() && ev.Pad == 0:
		p.waker.Drain()
	case ev.Pad == 0:
		if l := p.listeners[fd]; l != nil && p.listening {
			return p.accept(l)
		}
	default:
		p.readable(fd, ev.Pad, ev.Events)
	}
	return nil
}

// wait is how long the next epoll_wait may sleep: until the next beat, the
// next idle expiry, or the end of an accept pause.
func (p *poller) wait(now time.Time) time.Duration {
	d := p.beat
	p.mu.Lock()
	for _, l := range p.lists() {
		if l.head != nil {
			d = min(d, l.head.expires.Sub(now))
		}
	}
	p.mu.Unlock()
	if !p.listening && now.Before(p.pauseTo) {
		d = min(d, p.pauseTo.Sub(now))
	}
	return max(d, 0)
}

// accept takes pending connections from l while under the cap.
func (p *poller) accept(l *workers.Listener) error {
	for range acceptBatch {
		if p.openConns() >= p.maxConns {
			return nil // run's wantListen drops the listeners
		}
		if !p.threadFree() {
			p.full = true // so does wantListen, until a thread is free
			return nil
		}
		nc, err := p.acceptors[l.FD].Accept()
		if err != nil {
			switch workers.ClassifyAccept(err) {
			case workers.AcceptDrained:
				return nil
			case workers.AcceptRetry:
				continue
			case workers.AcceptBackoff:
				p.pauseTo = p.backoff.Pause(p.env.Log, time.Now(), l.Name, err)
				return nil
			}
			return fmt.Errorf("threaded: listener %s: %w", l.Name, err)
		}
		c := p.add(nc)
		if requestWaiting(c.fd) {
			p.enqueue(c)
		} else if !p.park(c, &p.fresh, time.Now()) {
			p.forget(c)
		}
	}
	return nil
}

// requestWaiting peeks without blocking: has the client already sent
// something (or closed)? Then a thread can take the connection at once,
// sparing an epoll round trip on the common connect-then-send path.
func requestWaiting(fd int) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return err != unix.EAGAIN && err != unix.EINTR
}

// readable handles an event for a parked connection: hand it to a thread
// (or close it at once if the socket failed).
func (p *poller) readable(fd int, gen int32, events uint32) {
	p.mu.Lock()
	c := p.conns[fd]
	if c == nil || c.gen != gen || !c.parked {
		// A stale event: the connection was closed (and the descriptor
		// perhaps reused) after the kernel reported it.
		p.mu.Unlock()
		return
	}
	c.list.remove(c)
	c.parked = false
	p.mu.Unlock()
	if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		p.forget(c)
		return
	}
	p.enqueue(c)
}

// enqueue hands c to the threads. It never blocks: the queue holds
// worker_connections entries and a connection is in at most one place
// (parked, queued or on a thread), so the queue cannot be full.
func (p *poller) enqueue(c *conn) { p.queue <- c }

// sweep closes parked connections whose idle time is up at now.
func (p *poller) sweep(now time.Time) {
	var expired []*conn
	p.mu.Lock()
	for _, l := range p.lists() {
		for l.head != nil && !now.Before(l.head.expires) {
			c := l.head
			l.remove(c)
			expired = append(expired, p.dropLocked(c))
		}
	}
	p.mu.Unlock()
	for _, c := range expired {
		if requestWaiting(c.fd) && !p.queueClosed {
			// Its request arrived with the deadline: serve it (with
			// Connection: close when stopping) rather than drop it.
			p.enqueue(c)
			continue
		}
		if !c.hc.HeadStart().IsZero() {
			c.hc.HeadTimedOut() // parked mid-head past header_timeout
		}
		_ = c.hc.CloseLingering()
	}
}

// firstRequestGrace is how long, at least, during a graceful stop, a
// connection that was accepted but has not sent its first request yet may
// still send it. Its client most likely sent it already (it is in
// flight), and closing it would fail a request the client cannot tell was
// never seen. The engine gives a fresh connection on a thread the same
// grace.
const firstRequestGrace = time.Second

// retireEnd is when, during a graceful stop, a connection parked on l is
// closed at the latest: a kept-alive one after retire_idle_timeout (a
// request arriving meanwhile is served with Connection: close), a fresh or
// mid-head one after at least firstRequestGrace.
func (p *poller) retireEnd(l *idleList) time.Time {
	if l == &p.kept {
		return p.retireAt.Add(p.env.Config.RetireIdle())
	}
	return p.retireAt.Add(max(p.env.Config.RetireIdle(), firstRequestGrace))
}

// stop begins the graceful stop: no more accepting; parked connections
// whose next request already arrived go to the threads, the others may
// wait until retireEnd for their next request. The queue closes (and the
// threads finish) once nothing is parked any more: see drained.
func (p *poller) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.listen(false)
	// Out of the epoll set: no thread accepts on them again, so the
	// runtime may close an own reuse_port socket while requests finish.
	p.env.DoneListening()
	var ready []*conn
	p.mu.Lock()
	p.stopping, p.retireAt = true, time.Now()
	for c := p.kept.head; c != nil; {
		next := c.next
		if requestWaiting(c.fd) {
			p.kept.remove(c)
			c.parked = false
			ready = append(ready, c)
		}
		c = next
	}
	for _, l := range p.lists() {
		end := p.retireEnd(l)
		for c := l.head; c != nil; c = c.next {
			c.expires = minTime(c.expires, end) // the list stays in expiry order
		}
	}
	p.mu.Unlock()
	for _, c := range ready {
		p.enqueue(c)
	}
	p.drained()
}

// drained closes the queue once stopping and nothing is parked: only the
// poller sends on the queue, and with the listeners gone and no connection
// parked it has nothing left to send. The threads then finish what is
// queued and return.
func (p *poller) drained() {
	if !p.stopped || p.queueClosed {
		return
	}
	p.mu.Lock()
	parked := p.fresh.n + p.kept.n + p.partial.n
	p.noPark = parked == 0 // set with the count, under mu: park sees it
	p.mu.Unlock()
	if parked == 0 {
		close(p.queue)
		p.queueClosed = true
	}
}

// abandon closes every parked connection at once and closes the queue: the
// stop after a fatal poller error, when no loop is left to sweep.
func (p *poller) abandon() {
	p.stop()
	p.sweep(time.Now().Add(2 * never))
	p.drained()
}

// lists are the idle lists the sweep and the wait look at.
func (p *poller) lists() [3]*idleList { return [3]*idleList{&p.fresh, &p.kept, &p.partial} }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (p *poller) wantListen() bool {
	if p.full {
		p.full = !p.threadFree()
	}
	return !p.stopped && !p.full && p.openConns() < p.maxConns && !time.Now().Before(p.pauseTo)
}

// threadFree reports whether a thread is free for one more connection
// (not busy nor spoken for by the queue). A listener that is readable
// while none is gets dropped from the epoll set (full) until one is: new
// connections then wait in the kernel's backlog, where an idle sibling
// worker takes them, instead of being queued here behind slow requests.
// Listeners are dropped only when a connection arrives at a full worker,
// so a saturated keep-alive load pays nothing. The saturated flag is set
// before the check, and a thread going idle clears it and wakes the
// poller: one of the two always sees the other.
func (p *poller) threadFree() bool {
	p.saturated.Store(true)
	if p.busy.Load()+int32(len(p.queue)) < p.threads {
		p.saturated.Store(false)
		return true
	}
	return false
}

// threadIdle is called by a thread done with a connection.
func (p *poller) threadIdle() {
	p.busy.Add(-1)
	if p.saturated.CompareAndSwap(true, false) {
		p.waker.Wake()
	}
}

// listen adds the listeners to the epoll set or removes them. Not with
// EPOLLEXCLUSIVE: the kernel then wakes the first idle instance in the
// listener's wait queue, always the same worker while load is light, so
// one worker would take every connection. Waking every idle worker (the
// herd; the loser gets EAGAIN) spreads connections as gunicorn's do.
func (p *poller) listen(on bool) error {
	if on == p.listening {
		return nil
	}
	for fd, l := range p.listeners {
		var err error
		if on {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
			err = unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, fd, &ev)
		} else {
			err = unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, fd, nil)
		}
		if err != nil {
			return fmt.Errorf("threaded: epoll %s listener %s: %w", map[bool]string{true: "add", false: "remove"}[on], l.Name, err)
		}
	}
	p.listening = on
	return nil
}

func (p *poller) close() {
	if p.waker != nil {
		_ = p.waker.Close()
	}
	_ = unix.Close(p.ep)
}
