package evloop

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/workers/evloop/route"
)

// loopState is evloop's bookkeeping for one gnet event loop. conns is only
// touched on that loop; the probe counters are shared with the ticker.
type loopState struct {
	el    gnet.EventLoop
	conns map[*hconn]struct{}
	sink  loopSink // response buffer of handlers run on this loop

	// What the loop's inline requests reuse: they run one at a time, on
	// the loop, so one of each serves them all and stays in the CPU cache.
	h1      *h1.Server   // the server's engine without finishRequest (see inlineServer)
	resp    *h1.Response // the Response of inline handlers, recycled
	parsers []*h1.Parser // free parsers of this loop's idle connections
	body    inlineBody   // the Body of an inline request with a small body

	epfd       int                 // the loop's epoll descriptor, -1 if unknown (bounds.go)
	outWaiters map[*hconn]struct{} // connections waiting for their output to drain
	outPolling bool                // a pollOutput is scheduled

	// The ticker posts probe sent+1 to the loop and the loop stores it in
	// seen when it runs it, so seen < sent means the loop has not come
	// round to a task posted a tick ago: it is blocked (or very busy).
	sent, seen atomic.Uint64

	// running is the auto route whose handler runs inline on the loop now
	// (nil between handlers, and always under evloop): the ticker demotes
	// it when the loop misses a probe (lateLoop).
	running atomic.Pointer[route.Route]
	memo    route.Memo // the auto route of the loop's last request
}

// loopOf returns the state of the loop el, creating it on first use
// (startAcceptLoops creates every loop's when the engine runs).
func (s *server) loopOf(el gnet.EventLoop) *loopState {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	ls := s.loopMap[el]
	if ls == nil {
		ls = &loopState{el: el, conns: map[*hconn]struct{}{}, h1: s.inlineServer(), epfd: epollFD(el)}
		s.loopMap[el] = ls
	}
	return ls
}

func (s *server) loopList() []*loopState {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	out := make([]*loopState, 0, len(s.loopMap))
	for _, ls := range s.loopMap {
		out = append(out, ls)
	}
	return out
}

// probeLoops posts a sweep to every known loop and reports whether each
// answered its previous one. gnet's OnTick runs on a ticker goroutine of
// its own, so beating there unconditionally would prove nothing about the
// loops; a loop stuck in a handler never runs its probe, the heartbeat
// stops, and the arbiter replaces the worker after `timeout`.
func (s *server) probeLoops() bool {
	healthy := true
	for _, ls := range s.loopList() {
		if ls.seen.Load() != ls.sent.Load() {
			healthy = false
			s.lateLoop(ls)
			continue // do not pile probes onto a stuck loop
		}
		s.postSweep(ls)
	}
	return healthy
}

// postSweep runs a sweep on ls's loop and marks the probe seen.
func (s *server) postSweep(ls *loopState) {
	n := ls.sent.Add(1)
	err := ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		s.sweep(ls)
		ls.seen.Store(n)
		return nil
	}))
	if err != nil { // engine shutting down: nothing to probe
		ls.seen.Store(n)
	}
}

// sweep closes connections past their keep-alive idle timeout or header
// timeout, and idle ones when draining. Runs on ls's loop.
func (s *server) sweep(ls *loopState) {
	now := s.now.Load()
	for hc := range ls.conns {
		if s.expired(hc, now) {
			if hc.phase == phHead && hc.body == nil && !hc.outStalled(now) {
				s.h1.NoteRejected(hc.remote, http.StatusRequestTimeout, nil) // a head past header_timeout
			}
			if hc.phase == phIdle && hc.served > 0 && hc.c.OutboundBuffered() == 0 {
				hc.endLingering(true) // its client may be sending a next request
				continue
			}
			_ = ls.el.Close(hc.c)
		}
	}
}

// expired decides whether sweep closes hc. A connection that never sent a
// request is held to header_timeout, like one whose head is arriving
// (slowloris); a kept-alive one to keepalive. One whose queued output makes
// no progress, or whose streamed body receives nothing while its handler
// waits, is held to the stall limit (bounds.go). A running handler is
// otherwise left alone (request_timeout is h1's).
func (s *server) expired(hc *hconn, now int64) bool {
	if hc.outStalled(now) {
		return true
	}
	age := time.Duration(now - hc.since)
	switch hc.phase {
	case phBusy:
		return hc.bodyStalled(now)
	case phIdle:
		if s.draining.Load() && s.retireIdleOver(hc, now) {
			return true
		}
		if hc.served == 0 {
			return s.cfg.HeaderTimeout > 0 && age > s.cfg.HeaderTimeout
		}
		return s.cfg.Keepalive > 0 && age > s.cfg.Keepalive
	case phHead:
		return hc.body == nil && s.cfg.HeaderTimeout > 0 && age > s.cfg.HeaderTimeout
	case phLinger:
		return hc.lingerOver(now)
	}
	return false
}

// firstRequestGrace is how long, at least, during a graceful stop, a
// connection that has not sent its first request yet may still send it:
// its client most likely sent it already.
const firstRequestGrace = time.Second

// retireIdleOver reports whether, during a graceful stop, the idle hc has
// waited long enough for its next request: retire_idle_timeout since it
// went idle or since the stop began, whichever is later (so a connection
// is never closed at the instant the worker was told to go), and at least
// firstRequestGrace before its first request.
func (s *server) retireIdleOver(hc *hconn, now int64) bool {
	wait := s.cfg.RetireIdle()
	if hc.served == 0 {
		wait = max(wait, firstRequestGrace)
	}
	return time.Duration(now-max(hc.since, s.retireAt.Load())) > wait
}

// inlineServer is the engine configuration of handlers run on the loop:
// the server's, minus the finishRequest wrapper, which only matters for a
// body streamed off the loop; the graceful-stop Connection: close it adds
// comes from Response.CloseWhen instead (see runInline).
func (s *server) inlineServer() *h1.Server {
	srv := s.env.Engine()
	srv.Log = s.log
	return srv
}

// getParser returns a free parser of the loop, or a new one.
func (ls *loopState) getParser(s *server) *h1.Parser {
	if n := len(ls.parsers); n > 0 {
		p := ls.parsers[n-1]
		ls.parsers = ls.parsers[:n-1]
		return p
	}
	return s.h1.NewParser()
}

// putParser keeps p for the loop's next connection that needs one. The
// free list is bounded: beyond it a parser goes back to h1's pool.
func (ls *loopState) putParser(p *h1.Parser) {
	if len(ls.parsers) >= maxFreeParsers {
		p.Release()
		return
	}
	p.Reset()
	ls.parsers = append(ls.parsers, p)
}

// maxFreeParsers bounds a loop's free parsers: a burst of connections
// that all became idle at once should not pin a parser each.
const maxFreeParsers = 64
