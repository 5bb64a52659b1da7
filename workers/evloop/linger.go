package evloop

import (
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/h1"
)

// Lingering close, h1's (h1.LingerTime, h1.MaxLingering) for connections
// gnet owns. gnet's Close writes what the socket takes at once and drops
// the rest of the queued output, and closing a socket with unread input
// makes the kernel answer with a reset that can destroy the response its
// client has not read yet. So a connection evloop ends while its client may
// still be sending, or while output is still queued, is not closed: it
// discards all further input, waits for its output to flush (the
// outWaiters poll), shuts its write side (the client reads the end of the
// response, then EOF), and is closed by its client's EOF or by the sweep
// h1.LingerTime after the shutdown. Beyond h1.MaxLingering per worker a
// connection is closed at once, as without lingering. Only the close path
// pays for any of this.

// mayStillSend reports whether closing hc now could lose a response:
// input is left unread (a body or pipelined bytes, arrived or on the way:
// a client that asked for keep-alive may be pipelining) or output is
// still queued.
func (hc *hconn) mayStillSend() bool {
	return hc.c.InboundBuffered() > 0 || hc.c.OutboundBuffered() > 0 ||
		hc.pend != nil || hc.bodyFailed || (hc.p != nil && (hc.p.InBody() || hc.p.KeepAlive()))
}

// closeLingering ends hc after its response: lingering where its client
// may still be sending (see mayStillSend, or always when idle is set: an
// idle wait that ended), else gnet.Close, which the caller applies.
func (hc *hconn) closeLingering(idle bool) gnet.Action {
	if hc.closed || hc.phase == phLinger {
		return gnet.None
	}
	if hc.outBroken || !(idle || hc.mayStillSend()) {
		return gnet.Close
	}
	if hc.s.lingering.Add(1) > h1.MaxLingering {
		hc.s.lingering.Add(-1)
		return gnet.Close
	}
	hc.setPhase(phLinger)
	hc.pend, hc.pendRoute, hc.carry = nil, nil, nil
	hc.discard(hc.c.InboundBuffered())
	hc.setReading(true) // read and drop what still comes, or the client blocks
	if hc.c.OutboundBuffered() > 0 {
		hc.waitOutput() // pollOutput shuts the write side once it is flushed
		return gnet.None
	}
	return hc.shutWrite()
}

// endLingering is closeLingering from a loop task (not an event handler),
// which closes through the loop itself.
func (hc *hconn) endLingering(idle bool) {
	if hc.closeLingering(idle) == gnet.Close && !hc.closed {
		_ = hc.ls.el.Close(hc.c)
	}
}

// shutWrite shuts a lingering connection's write side once its output is
// flushed; LingerTime runs from here (expired).
func (hc *hconn) shutWrite() gnet.Action {
	hc.since = hc.s.now.Load()
	if err := unix.Shutdown(hc.c.Fd(), unix.SHUT_WR); err != nil {
		return gnet.Close
	}
	hc.shut = true
	return gnet.None
}

// lingerOver reports whether a lingering connection waited LingerTime
// for its client's EOF since its write side was shut.
func (hc *hconn) lingerOver(now int64) bool {
	return hc.shut && time.Duration(now-hc.since) > h1.LingerTime
}
