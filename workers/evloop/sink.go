package evloop

import (
	"net"
	stdsync "sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// asyncSink is the h1.Sink of handlers run off the loop. Writes collect in
// a buffer; every flushAt bytes (and on Flush) the chunk is handed to the
// loop with AsyncWrite and the handler waits until the loop has taken it,
// so one chunk is in flight per response. When the client reads slower
// than the handler writes, gnet's outbound buffer grows; above high
// (evloop_conn_buffer) the handler waits for it to drain (gnet has no drain
// event, so it re-checks with a short back-off), and fails once nothing
// drained for stall (the stall limit: the client stopped reading).
type asyncSink struct {
	c     gnet.Conn
	done  <-chan struct{} // the request context: closed when the connection is
	high  int             // queued bytes above which the handler waits
	stall time.Duration   // how long the queue may stay put before the cut

	mu  stdsync.Mutex // the Response and a 100-continue from the body reader
	buf []byte
	err error
}

func (a *asyncSink) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return 0, a.err
	}
	a.buf = append(a.buf, p...)
	if len(a.buf) >= flushAt {
		a.send()
	}
	if a.err != nil {
		return 0, a.err
	}
	return len(p), nil
}

func (a *asyncSink) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil && len(a.buf) > 0 {
		a.send()
	}
	return a.err
}

// send hands a.buf to the loop and waits until it is written or queued.
func (a *asyncSink) send() {
	queued, ok := a.write(a.buf)
	if !ok {
		a.buf = nil // the loop may still read the old buffer: never reuse it
		return
	}
	a.buf = a.buf[:0]
	last, since := queued, time.Now()
	for wait := time.Millisecond; queued > a.high; wait = min(2*wait, 50*time.Millisecond) {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-a.done:
			t.Stop()
			a.err = net.ErrClosed
			return
		}
		if queued, ok = a.write(nil); !ok {
			return
		}
		if queued < last {
			last, since = queued, time.Now()
		} else if time.Since(since) > a.stall {
			a.err = errOutputStalled
			_ = a.c.Close() // the sweep would too; the handler need not wait for it
			return
		}
	}
}

// write runs one AsyncWrite and reports the outbound backlog after it.
func (a *asyncSink) write(p []byte) (queued int, ok bool) {
	ch := make(chan int, 1)
	err := a.c.AsyncWrite(p, func(c gnet.Conn, err error) error {
		n := -1
		if err == nil {
			n = c.OutboundBuffered()
		}
		ch <- n
		return nil
	})
	if err != nil {
		a.err = err
		return 0, false
	}
	select {
	case n := <-ch:
		if n < 0 {
			a.err = net.ErrClosed
			return 0, false
		}
		return n, true
	case <-a.done:
		a.err = net.ErrClosed
		return 0, false
	}
}

// finish hands the rest of the response to the loop and runs then there
// (on the loop) once it is written, without waiting for it.
func (a *asyncSink) finish(then func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return // the connection is gone; OnClose cleaned up
	}
	buf := a.buf
	a.buf = nil
	err := a.c.AsyncWrite(buf, func(gnet.Conn, error) error {
		then()
		return nil
	})
	if err != nil {
		a.err = err
	}
}
