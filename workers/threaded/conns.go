package threaded

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/fdconn"
)

// conn is one open connection. It is in exactly one place at a time:
// parked in the poller (parked, on an idle list), in the queue, or on a
// thread. Fields other than nc and hc are guarded by poller.mu.
type conn struct {
	fd         int
	gen        int32 // tells this connection from a later one on the same fd
	nc         *fdconn.Conn
	hc         *h1.Conn
	registered bool // in the epoll set (parking after the first uses MOD)
	parked     bool

	expires    time.Time
	list       *idleList
	prev, next *conn
}

// idleList holds parked connections in expiry order. With one timeout per
// list and the park time as start, that is the order they were parked in
// (push appends); a connection parked mid-head starts from its head's
// first byte instead, and push walks back to its place.
type idleList struct {
	timeout    time.Duration // <= 0: never expires
	head, tail *conn
	n          int
}

// never stands for "no idle limit" (header_timeout or keepalive 0).
const never = 100 * 365 * 24 * time.Hour

// deadline is when a connection parked on l from from expires.
func (l *idleList) deadline(from time.Time) time.Time {
	if l.timeout <= 0 {
		return from.Add(never)
	}
	return from.Add(l.timeout)
}

// push adds c to expire at expires.
func (l *idleList) push(c *conn, expires time.Time) {
	l.n++
	c.expires, c.list = expires, l
	after := l.tail
	for after != nil && after.expires.After(c.expires) {
		after = after.prev
	}
	c.prev = after
	if after != nil {
		c.next, after.next = after.next, c
	} else {
		c.next, l.head = l.head, c
	}
	if c.next != nil {
		c.next.prev = c
	} else {
		l.tail = c
	}
}

// remove unlinks c from its list; l is c.list (nil-safe for unlisted conns).
func (l *idleList) remove(c *conn) {
	if l == nil {
		return
	}
	l.n--
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next, c.list = nil, nil, nil
}

// add registers a freshly accepted connection.
func (p *poller) add(nc *fdconn.Conn) *conn {
	c := &conn{fd: nc.FD(), nc: nc, hc: p.srv.NewConn(nc)}
	p.mu.Lock()
	p.gen++
	if p.gen <= 0 {
		p.gen = 1 // 0 marks the listeners' and the waker's events
	}
	c.gen = p.gen
	p.conns[c.fd] = c
	p.mu.Unlock()
	return c
}

// parkIdle parks c after the engine returned StateIdle: between requests
// (keepalive from now), or mid-head (header_timeout from the head's first
// byte, however many times it was parked since).
func (p *poller) parkIdle(c *conn) bool {
	if start := c.hc.HeadStart(); !start.IsZero() {
		return p.park(c, &p.partial, start)
	}
	return p.park(c, &p.kept, time.Now())
}

// park hands c back to the poller to wait for more of its request, holding
// no thread, until l's timeout after from. It reports false when c must be
// closed instead (stopping, or epoll refused it). The epoll_ctl runs under
// the lock so a sweep cannot close the descriptor, and a new connection
// reuse its number, in between.
func (p *poller) park(c *conn, l *idleList, from time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	expires := l.deadline(from)
	if p.stopping {
		if p.noPark {
			// The queue closes once nothing is parked: then it closes.
			return false
		}
		expires = minTime(expires, p.retireEnd(l))
	}
	c.parked = true
	l.push(c, expires)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(c.fd), Pad: c.gen}
	op := unix.EPOLL_CTL_MOD
	if !c.registered {
		op = unix.EPOLL_CTL_ADD
	}
	if err := unix.EpollCtl(p.ep, op, c.fd, &ev); err != nil {
		p.env.Log.Error("threaded: epoll_ctl on a connection", "fd", c.fd, "err", err)
		c.list.remove(c)
		c.parked = false
		return false
	}
	c.registered = true
	return true
}

// forget closes c (if the engine has not) and forgets it.
func (p *poller) forget(c *conn) {
	p.mu.Lock()
	p.dropLocked(c)
	p.mu.Unlock()
	_ = c.hc.Close()
}

// dropLocked removes c from the table. The engine may already have closed
// the descriptor and accept reused its number: only c's own entry goes.
// Dropping below the cap wakes the poller to accept again.
func (p *poller) dropLocked(c *conn) *conn {
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
		if len(p.conns) == p.maxConns-1 && !p.stopping {
			p.waker.Wake()
		}
	}
	c.parked = false
	return c
}

func (p *poller) openConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
