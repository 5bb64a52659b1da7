package evloop

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/h1"
)

// Per-connection memory bounds (package doc, "Bounds"). gnet v2 reads every
// readable socket and appends what a handler did not consume to an
// unbounded inbound buffer, and queues whatever the socket does not take in
// an unbounded outbound buffer. evloop bounds both with evloop_conn_buffer:
// a connection that cannot take more input (its handler's body pipe is
// full, a handler runs, or its output is above the bound) has reading
// switched off in its loop's epoll set, and is cut past the bound; no new
// request is taken while its unsent output is above the bound.

const (
	// pauseAt is the waiting input above which a connection stops being
	// read: about one read's worth, so a few pipelined requests behind a
	// busy one do not cost a syscall.
	pauseAt = 64 << 10
	// peekWindow is how much buffered input one parse step looks at: a
	// head or a body slice fits, and gnet's Peek copies what it returns
	// when the bytes span its buffers, so looking at the whole backlog
	// every event would cost time quadratic in it.
	peekWindow = 128 << 10
	// outPoll is how often a loop re-checks connections that wait for
	// their output to drain: gnet reports no drain event.
	outPoll = 5 * time.Millisecond
)

// connBuffer is the bound on what one connection may hold in each
// direction (evloop_conn_buffer).
func (s *server) connBuffer() int {
	if b := s.cfg.EvloopConnBuffer; b > 0 {
		return b
	}
	return 1 << 20
}

// stallLimit is how long a connection's output may make no progress, or a
// streamed body receive nothing, before the connection is cut: the
// blocking classes' rolling write deadline, from the same rule.
func (s *server) stallLimit() time.Duration { return h1.WriteStall(s.cfg) }

// epollFD returns the epoll descriptor of a gnet v2.9.7 event loop
// (eventloop.poller.fd), or -1. gnet has no API to stop reading a
// connection; its poller modifies a connection's events with plain
// epoll_ctl, so evloop does the same on that descriptor. The layout is
// pinned with gnet's version (TestGnetVersionPinned, TestEpollFD).
func epollFD(el any) int {
	v := reflect.ValueOf(el)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return -1
	}
	p := v.Elem().FieldByName("poller")
	if p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
		return -1
	}
	fd := p.Elem().FieldByName("fd")
	if fd.Kind() != reflect.Int {
		return -1
	}
	return int(fd.Int())
}

// setReading switches reading hc's socket on or off in its loop's epoll
// set, keeping the write interest gnet needs while output is queued. gnet
// switches reading back on by itself when its outbound buffer empties, so
// pausing is re-applied after every event that finds the connection
// blocked; resuming is needed only after a pause.
func (hc *hconn) setReading(on bool) {
	epfd := hc.ls.epfd
	if epfd < 0 || hc.closed || (on && !hc.paused) {
		return
	}
	var ev uint32
	if on {
		ev = unix.EPOLLIN | unix.EPOLLPRI
	}
	if hc.c.OutboundBuffered() > 0 {
		ev |= unix.EPOLLOUT
	}
	fd := hc.c.Fd()
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Fd: int32(fd), Events: ev}); err == nil {
		hc.paused = !on
	}
}

// blocked reports whether hc cannot take input now: its handler's body
// pipe is full, a handler runs with no body left to read (what arrives is
// pipelined), or its output is above the bound.
func (hc *hconn) blocked() bool {
	return len(hc.carry) > 0 || hc.outWait || hc.bodyFailed ||
		(hc.phase == phBusy && (hc.p == nil || !hc.p.InBody()))
}

// bound runs after every event: a blocked connection stops being read
// once pauseAt bytes wait and is cut past evloop_conn_buffer (gnet reads a
// paused socket again whenever it empties its outbound buffer); one that
// can take input again is read again.
func (hc *hconn) bound() bool {
	if hc.closed || hc.phase == phLinger {
		return true
	}
	if !hc.blocked() {
		hc.setReading(true)
		return true
	}
	in := hc.c.InboundBuffered()
	if in > hc.s.connBuffer()+pauseAt {
		return false
	}
	if in >= pauseAt || hc.outWait {
		hc.setReading(false)
	}
	return true
}

// outFull reports whether hc's unsent output is above the bound.
func (hc *hconn) outFull() bool {
	return hc.c.OutboundBuffered()+len(hc.ls.sink.buf) > hc.s.connBuffer()
}

// peek returns up to max buffered input bytes (all of them when max <= 0).
func (hc *hconn) peek(max int) []byte {
	n := hc.c.InboundBuffered()
	if max > 0 && n > max {
		n = max
	}
	if n == 0 {
		return nil
	}
	b, _ := hc.c.Peek(n)
	return b
}

// waitOutput parks hc until its output drained below half the bound; the
// loop's poll then runs it again.
func (hc *hconn) waitOutput() {
	hc.outWait = true
	ls := hc.ls
	if ls.outWaiters == nil {
		ls.outWaiters = map[*hconn]struct{}{}
	}
	ls.outWaiters[hc] = struct{}{}
	if !ls.outPolling {
		ls.outPolling = true
		time.AfterFunc(outPoll, func() { hc.s.postOutPoll(ls) })
	}
}

// postOutPoll runs pollOutput on ls's loop.
func (s *server) postOutPoll(ls *loopState) {
	run := gnet.RunnableFunc(func(context.Context) error {
		s.pollOutput(ls)
		return nil
	})
	if err := ls.el.Execute(context.Background(), run); err != nil {
		return // the engine stops: its connections close with it
	}
}

// pollOutput resumes the connections of ls whose output drained; it runs
// again while any still waits. Runs on ls's loop.
func (s *server) pollOutput(ls *loopState) {
	low := s.connBuffer() / 2
	for hc := range ls.outWaiters {
		if hc.closed || hc.outDrained(low) {
			delete(ls.outWaiters, hc)
			hc.outWait = false
			if !hc.closed {
				hc.resume()
			}
		}
	}
	if len(ls.outWaiters) == 0 {
		ls.outPolling = false
		return
	}
	time.AfterFunc(outPoll, func() { s.postOutPoll(ls) })
}

// outDrained reports whether hc's output drained enough to go on: to at
// most low, or, for a lingering connection, entirely.
func (hc *hconn) outDrained(low int) bool {
	out := hc.c.OutboundBuffered()
	if hc.phase == phLinger {
		return out == 0
	}
	return out <= low
}

// resume processes what hc buffered while it waited, on its loop; a
// lingering connection's output is flushed: its write side is shut.
func (hc *hconn) resume() {
	if hc.phase == phLinger {
		if hc.shutWrite() == gnet.Close {
			_ = hc.ls.el.Close(hc.c)
		}
		return
	}
	if hc.run() != gnet.None && !hc.closed {
		_ = hc.ls.el.Close(hc.c)
	}
}

// outStalled reports whether hc's queued output has made no progress for
// the stall limit; sweep cuts such a connection. Runs on hc's loop.
func (hc *hconn) outStalled(now int64) bool {
	out := hc.c.OutboundBuffered()
	if out == 0 || out < hc.outSeen {
		hc.outSeen, hc.outSince = out, now
		return false
	}
	hc.outSeen = out
	return time.Duration(now-hc.outSince) > hc.s.stallLimit()
}

// bodyStalled reports whether a body streamed to a handler has received
// nothing for the stall limit while the handler waits for it (a client
// that stopped sending its body).
func (hc *hconn) bodyStalled(now int64) bool {
	if hc.body == nil || len(hc.carry) > 0 || hc.bodyFailed || hc.p == nil || !hc.p.InBody() {
		return false
	}
	return time.Duration(now-hc.lastRead) > hc.s.stallLimit()
}

// errOutputStalled is an off-loop handler's write error once the client
// read nothing of the queued output for the stall limit.
var errOutputStalled = errors.New("evloop: client stopped reading the response")

// inlineCap is how many times evloop_conn_buffer an inline handler's
// response may leave unsent before it is cut. An inline handler runs on
// the loop, so it cannot wait for a slow client without stalling every
// connection of the loop (a client reading 10 KiB/s would hold it for
// hours); it writes into gnet's outbound buffer instead, which this caps.
const inlineCap = 16

// errOutputCap is an inline handler's write error once its connection has
// inlineCap times evloop_conn_buffer unsent.
var errOutputCap = errors.New("evloop: response too large for what the client reads (inline handlers: use threads > 0 for large responses)")
