package evloop

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/scoreboard"
	"github.com/multiserve/multiserve/workers/evloop/route"
)

const (
	// inlineBodyMax: in inline mode a request whose Content-Length body is
	// at most this is run on the loop once the whole body is buffered;
	// larger and chunked bodies are streamed to a handler off the loop.
	inlineBodyMax = 64 << 10
	// flushAt is the response chunk size handed to gnet at a time.
	flushAt = 64 << 10
	// pipeMax bounds a streamed request body held between loop and handler.
	pipeMax = 64 << 10
	// drainMax is how much of an unread request body is read and dropped
	// to keep the connection alive; beyond it the connection closes.
	drainMax = 256 << 10
)

type phase uint8

const (
	phIdle   phase = iota // between requests, nothing buffered
	phHead                // a request is arriving (head, or an inline body)
	phBusy                // a handler runs off the loop for this connection
	phLinger              // ended: input is dropped until EOF (linger.go)
)

// hconn is evloop's state for one connection. Every field is touched only
// on the connection's loop (handlers off the loop get their own copies).
// Requests on a connection are handled one after another, which is what
// keeps pipelined responses in order: the next request's bytes wait in
// gnet's inbound buffer until the current response is written.
type hconn struct {
	s      *server
	ls     *loopState
	c      gnet.Conn
	p      *h1.Parser // nil while idle (see releaseParser)
	remote string
	proxy  bool // a PROXY header is still due (proxy_protocol)
	phase  phase
	// reading: the observer was told this connection is reading a request
	// (see noteReading).
	reading bool
	since   int64 // coarse time the phase began
	served  int
	closed  bool
	shut    bool // lingering: the write side is shut (linger.go)

	body       *reqBody           // request body streamed to a handler off the loop
	carry      []byte             // body bytes parsed but not yet taken by the pipe
	dropped    int                // body bytes dropped after the handler returned
	bodyFailed bool               // the body is abandoned: close after the response
	cancel     context.CancelFunc // the off-loop request's context

	pend      *http.Request // inline mode: waiting for its small body
	pendRoute *route.Route
	pendKeep  bool

	// Bounds (bounds.go).
	paused    bool  // reading is switched off in the loop's epoll set
	outWait   bool  // no new request until the output drained
	outBroken bool  // an inline response passed the cap: the connection is cut
	lastRead  int64 // coarse time of the last inbound event
	outSeen   int   // outbound bytes queued at the last sweep
	outSince  int64 // coarse time the queued output last shrank
}

// discard drops the first n inbound bytes. gnet's Discard treats n <= 0
// as "everything", which would lose pipelined bytes after an event that
// consumed nothing (BodyEnd, NeedMore).
func (hc *hconn) discard(n int) {
	if n > 0 {
		_, _ = hc.c.Discard(n)
	}
}

func (hc *hconn) setPhase(ph phase) {
	if hc.phase != ph {
		if hc.reading && ph != phHead {
			hc.reading = false
			hc.s.h1.Observer.ReadingDone()
		}
		hc.phase, hc.since = ph, hc.s.now.Load()
	}
}

// noteReading tells the observer (the scoreboard) that the connection is
// reading a request, once an event ends with the connection in phHead. A
// request that arrives whole is answered within its event, and the
// observer never hears of it: the reading state it would have shown lasts
// no longer than the event, and the two shared-memory updates per request
// are saved. setPhase reports the end of the reading.
func (hc *hconn) noteReading() {
	if hc.phase == phHead && !hc.reading && !hc.closed {
		if o := hc.s.h1.Observer; o != nil {
			hc.reading = true
			o.ReadingStarted()
		}
	}
}

// OnOpen enforces worker_connections: above it, a new connection gets a 503
// and is closed, and is not counted.
func (s *server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if wc := s.cfg.WorkerConnections; wc > 0 && s.conns.Load() >= int64(wc) {
		return h1.AppendErrorResponse(nil, http.StatusServiceUnavailable), gnet.Close
	}
	s.conns.Add(1)
	if o := s.h1.Observer; o != nil {
		o.ConnOpened()
	}
	ls := s.loopOf(c.EventLoop())
	hc := &hconn{s: s, ls: ls, c: c, since: s.now.Load()}
	if ra := c.RemoteAddr(); ra != nil {
		hc.remote = ra.String()
	}
	if s.cfg.ProxyProtocol {
		// A peer outside proxy_allow_ips is closed before any byte is read.
		if _, _, _, err := s.h1.Preface(nil, c.RemoteAddr()); err != nil {
			s.conns.Add(-1)
			if o := s.h1.Observer; o != nil {
				o.ConnClosed()
			}
			return nil, gnet.Close
		}
		hc.proxy = true
	}
	c.SetContext(hc)
	ls.conns[hc] = struct{}{}
	return nil, gnet.None
}

// OnClose tears the connection's state down; a handler still running off
// the loop sees its body fail and its context cancelled.
func (s *server) OnClose(c gnet.Conn, _ error) gnet.Action {
	hc, _ := c.Context().(*hconn)
	if hc == nil {
		return gnet.None
	}
	hc.closed = true
	if hc.phase == phLinger {
		s.lingering.Add(-1)
	}
	if o := s.h1.Observer; o != nil {
		if hc.reading {
			hc.reading = false
			o.ReadingDone()
		}
		o.ConnClosed()
	}
	delete(hc.ls.conns, hc)
	if hc.p != nil {
		hc.ls.putParser(hc.p) // nothing else uses it once closed: every path checks closed
		hc.p = nil
	}
	if hc.body != nil {
		hc.body.Fail(io.ErrUnexpectedEOF)
		hc.body.settle()
	}
	if hc.cancel != nil {
		hc.cancel()
	}
	if s.conns.Add(-1) == 0 && s.draining.Load() {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
	return gnet.None
}

// OnTraffic parses and answers what arrived.
func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	hc, _ := c.Context().(*hconn)
	if hc == nil {
		return gnet.Close
	}
	hc.lastRead = s.now.Load()
	if hc.phase == phLinger {
		hc.discard(c.InboundBuffered())
		return gnet.None
	}
	return hc.run()
}

// run processes buffered input and flushes the loop's response buffer, so
// that all responses produced by one event go out in one write.
func (hc *hconn) run() gnet.Action {
	sink := &hc.ls.sink
	sink.hc = hc
	act := hc.process()
	_ = sink.Flush()
	if hc.closed {
		return gnet.None
	}
	hc.noteReading()
	if act == gnet.Close {
		return hc.closeLingering(false)
	}
	if act == gnet.None && !hc.bound() {
		return gnet.Close // input past what a waiting connection may buffer
	}
	return act
}

func (hc *hconn) process() gnet.Action {
	for !hc.closed {
		if hc.phase == phBusy || hc.body != nil {
			if act := hc.feed(); act != gnet.None || hc.phase == phBusy || hc.body != nil {
				return act
			}
		}
		if hc.pend != nil {
			if act, wait := hc.runPending(); wait || act != gnet.None {
				return act
			}
			hc.requestDone()
			continue
		}
		if hc.outFull() {
			hc.waitOutput() // pipelined requests wait until the client reads
			return gnet.None
		}
		buf := hc.peek(peekWindow)
		if len(buf) == 0 {
			hc.setPhase(phIdle)
			hc.releaseParser()
			return gnet.None
		}
		hc.setPhase(phHead)
		if hc.proxy {
			if done, act := hc.preface(buf); !done {
				return act
			}
			continue
		}
		ev, n, err := hc.nextHead(buf)
		if err != nil {
			return hc.fail(err, buf)
		}
		if ev != h1.Head {
			hc.discard(n) // NeedMore: keep the partial head buffered
			return gnet.None
		}
		if act := hc.dispatch(n); act != gnet.None {
			return act
		}
		hc.requestDone()
	}
	return gnet.None
}

// nextHead parses the head at the start of buf (a peekWindow of the
// input); a head longer than the window is parsed again over all of it.
func (hc *hconn) nextHead(buf []byte) (h1.Event, int, error) {
	ev, n, _, err := hc.parser().Next(buf, 0)
	if err == nil && ev == h1.NeedMore && len(buf) == peekWindow && hc.c.InboundBuffered() > peekWindow {
		hc.discard(n)
		var m int
		ev, m, _, err = hc.p.Next(hc.peek(0), 0)
		n = m
	}
	return ev, n, err
}

// preface consumes the PROXY header (h1.Server.Preface, the same check the
// blocking classes make) and reports whether it is complete; the header's
// source address becomes the request's RemoteAddr. A refused or malformed
// header closes the connection unanswered. Until it is complete the
// connection is in phHead, so header_timeout bounds it.
func (hc *hconn) preface(buf []byte) (bool, gnet.Action) {
	n, remote, done, err := hc.s.h1.Preface(buf, hc.c.RemoteAddr())
	switch {
	case err != nil:
		return false, gnet.Close
	case !done:
		return false, gnet.None
	}
	hc.discard(n)
	hc.remote, hc.proxy = remote, false
	return true, gnet.None
}

// parser returns the connection's parser, taking one from h1's pool when
// it was released while the connection was idle.
func (hc *hconn) parser() *h1.Parser {
	if hc.p == nil {
		hc.p = hc.ls.getParser(hc.s)
	}
	return hc.p
}

// releaseParser gives the parser back to the loop while the connection is
// idle with nothing buffered: the connections of a loop then share a few
// parsers that stay hot in the CPU cache, instead of one each touched cold
// every request (and an idle connection holds none).
func (hc *hconn) releaseParser() {
	if hc.p != nil && !hc.p.Pending() && !hc.p.InBody() {
		hc.ls.putParser(hc.p)
		hc.p = nil
	}
}

// requestDone restarts the timeout clock once a request was answered on
// the loop, so a long pipelined stream is not held to one header_timeout.
func (hc *hconn) requestDone() {
	if hc.phase == phHead && hc.pend == nil {
		hc.setPhase(phIdle)
	}
}

// dispatch starts the request whose head is the first n buffered bytes.
func (hc *hconn) dispatch(n int) gnet.Action {
	s := hc.s
	cl := hc.p.ContentLength()
	keep := hc.p.KeepAlive() && s.cfg.Keepalive > 0 && !s.draining.Load()
	expect := hc.p.ExpectContinue()
	// Off the loop: everything with a pool; inline, bodies that are large,
	// chunked, or wait for a 100 Continue that only the handler's first
	// read may send; under auto, the requests of a pooled route too.
	offload := !s.inline || cl < 0 || cl > inlineBodyMax || (expect && cl > 0)
	req, cancel, err := hc.newRequest(offload)
	hc.discard(n)
	if err != nil {
		return hc.fail(err, nil)
	}
	rt, req, detached := s.placeRoute(hc.ls, req, offload)
	if detached != nil {
		offload, cancel = true, detached
	}
	hc.served++
	if cl == 0 {
		_, _, _, _ = hc.p.Next(nil, 0) // BodyEnd of a request without a body
	}
	switch {
	case offload:
		hc.offload(req, rt, keep, expect, cancel)
		return gnet.None
	case cl == 0:
		return hc.runInline(req, rt, keep)
	}
	hc.pend, hc.pendRoute, hc.pendKeep = req, rt, keep
	return gnet.None
}

// newRequest builds the request whose head the parser just read; see
// requestContext for its context.
func (hc *hconn) newRequest(offload bool) (*http.Request, context.CancelFunc, error) {
	// evloop_reuse_requests: an inline handler gets the parser's recycled
	// Request, which it must not use after it returned (package doc).
	if !offload && hc.s.cfg.EvloopReuseRequests {
		req, err := hc.p.InlineRequest(hc.remote)
		return req, nil, err
	}
	ctx, cancel := requestContext(offload)
	req, err := hc.p.Request(ctx, hc.remote)
	if err != nil && cancel != nil {
		cancel()
		cancel = nil
	}
	return req, cancel, err
}

// requestContext returns the context of a new request: cancellable (by
// OnClose, when the client goes away) for a handler off the loop; an inline
// handler blocks the loop, so nothing could cancel it anyway.
func requestContext(offload bool) (context.Context, context.CancelFunc) {
	if offload {
		return context.WithCancel(context.Background())
	}
	return context.Background(), nil
}

// runPending runs an inline request once its whole body is buffered.
func (hc *hconn) runPending() (act gnet.Action, wait bool) {
	req := hc.pend
	if int64(hc.c.InboundBuffered()) < req.ContentLength {
		return gnet.None, true
	}
	buf := hc.peek(int(req.ContentLength))
	ev, n, data, err := hc.p.Next(buf, 0)
	if err != nil || ev != h1.Body {
		return hc.fail(err, nil), true
	}
	hc.pend = nil
	body := &hc.ls.body
	body.Reset(data)
	req.Body = body
	act = hc.runInline(req, hc.pendRoute, hc.pendKeep)
	if !hc.closed {
		hc.discard(n)
		_, _, _, _ = hc.p.Next(nil, 0) // BodyEnd
	}
	return act, false
}

// runInline runs the handler on the loop, writing into the loop's buffer,
// with the loop's Response. A graceful stop that begins while the handler
// runs makes the response carry Connection: close (CloseWhen). Under auto,
// rt is the request's route, which hears the handler's time.
func (hc *hconn) runInline(req *http.Request, rt *route.Route, keep bool) gnet.Action {
	ls := hc.ls
	w := ls.resp
	if w == nil {
		w = h1.NewResponse(req, &ls.sink, keep, false)
		ls.resp = w
	} else {
		w.Recycle(req, &ls.sink, keep, false)
	}
	w.CloseWhen(&hc.s.draining)
	var start int64
	if rt != nil {
		start = ls.enterInline(rt)
	}
	keepAfter := ls.h1.Handle(w, req)
	if rt != nil {
		hc.s.leaveInline(ls, rt, start)
	}
	// A response committed keep-alive just before the stop began keeps
	// its connection: its client may already be sending the next request,
	// which is answered with Connection: close (see expired).
	if !keepAfter {
		return gnet.Close
	}
	return gnet.None
}

// inlineBody is the Body of an inline request whose small body is
// buffered whole: a reader over gnet's inbound buffer, one per loop. Like
// any request Body (net/http's rule), it must not be read after the
// handler returned.
type inlineBody struct{ bytes.Reader }

func (*inlineBody) Close() error { return nil }

// fail answers a request the parser refused and closes the connection.
func (hc *hconn) fail(err error, head []byte) gnet.Action {
	status := h1.StatusOf(err)
	hc.ls.sink.buf = h1.AppendErrorResponse(hc.ls.sink.buf, status)
	hc.s.h1.NoteRejected(hc.remote, status, head)
	return gnet.Close
}

// offload hands the request to the pool; its body, if any, is streamed.
// Under auto, rt is the request's route, which hears the handler's time.
func (hc *hconn) offload(req *http.Request, rt *route.Route, keep, expect bool, cancel context.CancelFunc) {
	hc.setPhase(phBusy)
	hc.cancel = cancel
	sink := &asyncSink{c: hc.c, done: req.Context().Done(), high: hc.s.connBuffer(), stall: hc.s.stallLimit()}
	hasBody := req.Body == nil
	w := h1.NewResponse(req, sink, keep, expect && hasBody)
	if hasBody {
		hc.body, hc.dropped = newReqBody(req, w, hc.c), 0
	}
	hc.s.pool.submit(func() {
		start := scoreboard.Now()
		keepAfter := hc.s.h1.Handle(w, req)
		if rt != nil {
			hc.s.routes.Observe(rt, time.Duration(scoreboard.Now()-start), false)
		}
		w.Release()
		sink.finish(func() { hc.afterOffload(keepAfter) })
	})
}

// afterOffload runs on the loop once an off-loop response is written: the
// connection closes or goes on with the rest of the request body (dropped,
// up to drainMax) and its buffered pipelined requests.
func (hc *hconn) afterOffload(keepAfter bool) {
	if hc.closed {
		return
	}
	if hc.cancel != nil {
		hc.cancel()
		hc.cancel = nil
	}
	if !keepAfter || hc.bodyFailed {
		hc.endLingering(false)
		return
	}
	hc.setPhase(phIdle)
	if hc.run() == gnet.Close && !hc.closed {
		_ = hc.ls.el.Close(hc.c)
	}
}

// feed moves buffered body bytes into the pipe of the request's handler,
// as much as the pipe takes (the rest waits for the reader's onDrain Wake).
// Once the handler returned, the pipe drops them and feed counts them: the
// body is read to its end (or its framing error) up to drainMax, while
// finishRequest holds the response back (see there).
func (hc *hconn) feed() gnet.Action {
	b := hc.body
	if hc.bodyFailed {
		return gnet.None // the connection closes once the handler returned
	}
	if len(hc.carry) > 0 {
		k := b.Write(hc.carry)
		hc.carry = hc.carry[:copy(hc.carry, hc.carry[k:])]
		if len(hc.carry) > 0 {
			return gnet.None
		}
	}
	for hc.p != nil && hc.p.InBody() {
		buf := hc.peek(peekWindow)
		ev, n, data, err := hc.p.Next(buf, pipeMax)
		if err == nil && ev == h1.NeedMore && len(buf) == peekWindow {
			hc.discard(n) // a trailer section longer than the window
			buf = hc.peek(0)
			ev, n, data, err = hc.p.Next(buf, pipeMax)
		}
		if err != nil {
			return hc.bodyError(err)
		}
		hc.discard(n)
		switch ev {
		case h1.NeedMore:
			return gnet.None
		case h1.Body:
			if b.handlerDone.Load() {
				if hc.dropped += len(data); hc.dropped > drainMax {
					return hc.abandonBody()
				}
			}
			if k := b.Write(data); k < len(data) {
				hc.carry = append(hc.carry[:0], data[k:]...)
				return gnet.None
			}
		case h1.BodyEnd:
			b.End(hc.p.Trailer())
			b.settle()
		}
	}
	if hc.phase != phBusy {
		hc.body, hc.carry = nil, nil // an idle connection keeps no body buffer
	}
	return gnet.None
}

// bodyError handles a parser error inside a streamed body: the reader sees
// it, the handler's response is replaced by the error if still possible
// (see finishRequest), and the connection closes after it.
func (hc *hconn) bodyError(err error) gnet.Action {
	var he *h1.Error
	if errors.As(err, &he) {
		hc.body.rejected.Store(int32(he.Status)) // before Fail: the handler may return at once
	}
	hc.body.Fail(err)
	return hc.abandonBody()
}

// abandonBody stops reading a body that will not be consumed: the
// connection closes after the response.
func (hc *hconn) abandonBody() gnet.Action {
	hc.body.settle()
	if hc.phase != phBusy {
		return gnet.Close
	}
	hc.bodyFailed = true
	return gnet.None
}

// reqBody is the body of a request handled off the loop: h1's bounded pipe
// (which also sends 100 Continue on the first read) plus what the loop and
// the handler's goroutine tell each other about it.
type reqBody struct {
	*h1.BodyPipe
	rejected    atomic.Int32  // status of a framing error found in it
	handlerDone atomic.Bool   // the handler returned: the rest is dropped
	settled     chan struct{} // closed when the loop is done with the body
	settleOnce  stdsync.Once
}

func newReqBody(req *http.Request, w *h1.Response, c gnet.Conn) *reqBody {
	rb := &reqBody{
		BodyPipe: h1.NewBodyPipe(req, w, pipeMax, func() { _ = c.Wake(nil) }),
		settled:  make(chan struct{}),
	}
	req.Body = rb
	return rb
}

// settle marks the body's fate known: ended, malformed, abandoned or cut.
func (rb *reqBody) settle() { rb.settleOnce.Do(func() { close(rb.settled) }) }

// loopSink is the h1.Sink of handlers run on the loop: it batches the
// responses of one event into a single gnet write.
type loopSink struct {
	hc  *hconn
	buf []byte
}

// Write batches p; every flushAt bytes the batch goes to gnet. The loop
// never waits for the client: a response that leaves more than inlineCap
// times evloop_conn_buffer unsent fails here and the connection closes
// after it (bounds.go).
func (k *loopSink) Write(p []byte) (int, error) {
	k.buf = append(k.buf, p...)
	if len(k.buf) < flushAt {
		return len(p), nil
	}
	if err := k.Flush(); err != nil {
		return 0, err
	}
	if k.hc.c.OutboundBuffered() > inlineCap*k.hc.s.connBuffer() {
		k.hc.outBroken = true
		return 0, errOutputCap
	}
	return len(p), nil
}

func (k *loopSink) Flush() error {
	if len(k.buf) == 0 {
		return nil
	}
	defer func() { k.buf = k.buf[:0] }()
	if k.hc.closed {
		return net.ErrClosed
	}
	if k.hc.outBroken {
		return errOutputCap
	}
	_, err := k.hc.c.Write(k.buf)
	return err
}
