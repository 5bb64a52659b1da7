package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/multiserve/multiserve/proxyproto"
)

const (
	readBufSize = 4096
	// drainLimit bounds how much of a body the handler left unread is read
	// and discarded to keep the connection; beyond it the connection closes.
	drainLimit = 256 << 10
)

var (
	readBufPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	writerPool  = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, readBufSize) }}
	parserPool  sync.Pool
)

// Conn is one accepted connection served by the blocking engine.
type Conn struct {
	srv    *Server
	nc     net.Conn
	remote string
	// preface: a PROXY header is due before the first request (proxy_protocol).
	preface *proxyproto.Policy
	ctx     context.Context // cancelled when the connection closes
	cancel  context.CancelFunc
	lctx    localAddrCtx // ctx's parent, held here to spare an allocation

	rc      syscall.RawConn // nil unless nc is a netpoller socket
	rawRead func(uintptr) bool
	rawN    int
	rawErr  error
	done    bool    // Serve closed the connection
	p       *Parser // nil while idle on a netpoller socket
	bufp    *[]byte
	buf     []byte // buf[r:w] is unconsumed input
	r, w    int
	bw      *bufio.Writer // held while responses are pending

	served    int
	headStart time.Time
	bodyErr   error // protocol error found while reading a body

	cw        connWriter
	watch     clientWatch
	mu        sync.Mutex // idle, with interrupt
	idle      bool
	idleFresh bool      // idle before its first request
	idleUntil time.Time // idle: the read deadline of the wait (zero: none)
	// idleEnded: the wait for a next request ended without one (idle
	// timeout, retirement), so the client may be sending one right now.
	idleEnded bool
	stopping  atomic.Bool
	hijacked  atomic.Bool  // the handler owns nc now
	obs       atomic.Int32 // obsWaiting, obsReading or obsClosed, for srv.Observer
	closeOnce sync.Once
}

// NewConn wraps an accepted connection. nc may do blocking reads/writes; it
// must honour SetReadDeadline/SetWriteDeadline (header_timeout, keepalive
// are enforced through them).
func (s *Server) NewConn(nc net.Conn) *Conn {
	c := &Conn{srv: s, nc: nc}
	c.cw.c = c
	if a := nc.RemoteAddr(); a != nil {
		c.remote = addrString(a)
	}
	var tc *tls.Config
	c.preface, tc = s.resolved()
	if tc != nil {
		t := &tlsConn{Conn: nc, cfg: tc}
		if c.preface == nil {
			t.start(nil, s.config().HeaderTimeout)
		}
		nc, c.nc = t, t // not a netpoller socket any more: no raw reads
	}
	c.lctx = localAddrCtx{Context: context.Background(), addr: nc.LocalAddr()}
	c.ctx, c.cancel = context.WithCancel(&c.lctx)
	switch nc := nc.(type) {
	case *net.TCPConn, *net.UnixConn, NetpollerSocket:
		// Netpoller sockets: idle waits can hold no buffer (readIdle).
		if rc, err := nc.(syscall.Conn).SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	c.acquireParser()
	if s.Observer != nil {
		s.Observer.ConnOpened()
	}
	return c
}

func (c *Conn) acquireParser() { c.p = c.srv.NewParser() }

func (c *Conn) releaseParser() {
	if c.p != nil {
		c.p.Release()
		c.p = nil
	}
}

// Close closes the connection. It is safe to call from another goroutine
// while Serve runs (Serve then returns StateClosed promptly).
func (c *Conn) Close() error {
	return c.close(func(nc net.Conn) error { return nc.Close() })
}

// close ends the connection once, closing nc with how (unless a handler
// hijacked it).
func (c *Conn) close(how func(net.Conn) error) error {
	var err error
	c.closeOnce.Do(func() {
		c.observeClosed()
		c.cancel()
		if !c.hijacked.Load() {
			err = how(c.nc)
		}
	})
	return err
}

// Serve answers requests on the connection, in order (pipelining). With
// park=false it returns only after closing the connection (keep-alive idle
// timeout, client close, error, Connection: close, or ctx done). With
// park=true it first reads (call it when the connection is readable or
// freshly accepted), then returns StateIdle as soon as the connection is
// between requests with no buffered bytes, holding no buffers, so the
// caller can wait for readability without holding a thread; the caller
// then enforces the keepalive idle time. If nc implements [Readable], park
// mode also returns StateIdle mid-head, when part of a request head is
// buffered and nothing more can be read at once (a slow client never holds
// the caller's thread); the bytes stay in the Conn for the next Serve, and
// [Conn.HeadStart] tells the caller when to give up on it. When ctx is done, the request in
// progress is finished with Connection: close and the connection closed.
func (c *Conn) Serve(ctx context.Context, park bool) State {
	if c.done {
		return StateClosed
	}
	if ctx.Err() != nil {
		c.stopping.Store(true) // AfterFunc would only set it asynchronously
	}
	stop := context.AfterFunc(ctx, c.interrupt)
	defer stop()
	fresh := true
	if c.preface != nil {
		c.preface = nil // once per connection, whatever the outcome
		if !c.readPreface() {
			return c.shutdown()
		}
		if t, ok := c.nc.(*tlsConn); ok {
			t.start(c.buf[c.r:c.w], c.srv.config().HeaderTimeout)
			c.r, c.w = 0, 0
		}
	}
	for {
		if c.p == nil {
			c.acquireParser() // released while idle
		}
		start := c.r
		ev, n, _, err := c.p.Next(c.buf[c.r:c.w], 0)
		c.r += n
		if err != nil {
			c.reject(err, c.buf[start:c.w])
			return c.shutdown()
		}
		if ev == BodyEnd {
			continue // the previous request had no body
		}
		if ev == Head {
			c.observeReading(false)
			fresh = false
			c.headStart = time.Time{} // a pipelined head's start is unknown
			if !c.serveRequest() {
				return c.shutdown()
			}
			continue
		}
		if c.r == c.w && !c.p.Pending() {
			c.r, c.w = 0, 0
			if park && !fresh && !tlsPending(c.nc) {
				if !c.flush() {
					return c.shutdown()
				}
				c.releaseBuffers()
				c.releaseParser()
				return StateIdle
			}
		} else {
			c.observeReading(true) // a pipelined head partly buffered
		}
		if park && !fresh && !c.readable() {
			// Mid-head with nothing more to read: a slow client must not
			// hold the caller's thread (see parkMidHead).
			return c.parkMidHead()
		}
		if !c.fillHead(fresh) {
			return c.shutdown()
		}
		fresh = false
	}
}

// NetpollerSocket is what a net.Conn other than *net.TCPConn and
// *net.UnixConn implements when its SyscallConn's Read waits for
// readability in Go's netpoller (internal/fdconn's PollConn): an idle
// wait for its next request then holds no buffer (readIdle).
type NetpollerSocket interface {
	syscall.Conn
	NetpollerSocket()
}

// Readable is what a net.Conn may implement so that park mode never blocks
// on a partial request head: it reports, without blocking, whether a read
// would return at once (data, EOF or an error). internal/fdconn implements
// it with poll(2). Without it, park mode reads a partial head blocking,
// within header_timeout, as before.
type Readable interface {
	Readable() (bool, error)
}

// readable reports whether a read of nc would not block; an error (or a
// conn that cannot tell) counts as readable: the read will then say what
// it is.
func (c *Conn) readable() bool {
	r, ok := c.nc.(Readable)
	if !ok {
		return true
	}
	ready, err := r.Readable()
	return ready || err != nil
}

// parkMidHead returns StateIdle with the partial head kept (buffer and
// parser) for the next Serve call. The read deadline set when the head's
// first byte arrived stays on the conn, so reading the rest after
// header_timeout fails; the caller closes a connection that stays silent
// past HeadStart + header_timeout.
func (c *Conn) parkMidHead() State {
	if !c.flush() {
		return c.shutdown()
	}
	if c.headStart.IsZero() {
		// Pipelined behind the request just served: its time starts now.
		c.headStart = time.Now()
		_ = c.nc.SetReadDeadline(deadline(c.srv.config().HeaderTimeout))
	}
	c.releaseWriter()
	return StateIdle
}

// HeadStart reports when the incomplete request head buffered in c began
// to arrive (for a pipelined head, when Serve parked it), or the zero time
// when no head is partly read. After Serve returned StateIdle,
// a non-zero HeadStart means the connection is parked mid-head: the caller
// should close it at HeadStart + header_timeout if it is still silent.
func (c *Conn) HeadStart() time.Time {
	if c.done || c.p == nil || (c.r == c.w && !c.p.Pending()) {
		return time.Time{}
	}
	return c.headStart
}

// interrupt runs when the worker's ctx is done (it retires): a busy
// connection finishes its request with Connection: close; an idle one
// keeps waiting for its next request, which is answered with Connection:
// close, for at most retireWait from now (docs/deploy.md, "Retiring a
// worker"). Closing it at once would fail a request its client may have
// sent already.
func (c *Conn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping.Store(true)
	if c.idle {
		until := time.Now().Add(c.retireWait(c.idleFresh))
		if c.idleUntil.IsZero() || until.Before(c.idleUntil) {
			c.idleUntil = until
			_ = c.nc.SetReadDeadline(until)
		}
	}
}

// firstRequestGrace: during a graceful stop, a connection accepted before
// the stop still gets its first request read for at least this long (its
// client has most likely sent it already), instead of an EOF it could not
// retry.
const firstRequestGrace = time.Second

// retireWait is how long a connection of a retiring worker may still wait
// for its next request: retire_idle_timeout (Config.RetireIdle), and at
// least firstRequestGrace before its first request.
func (c *Conn) retireWait(fresh bool) time.Duration {
	d := c.srv.config().RetireIdle()
	if fresh {
		d = max(d, firstRequestGrace)
	}
	return d
}

// fillHead reads more of a request head. Waiting for a new request uses the
// keepalive idle time (header_timeout for the first request, or when
// parked); once its first bytes arrived the whole head must arrive within
// header_timeout.
func (c *Conn) fillHead(fresh bool) bool {
	cfg := c.srv.config()
	waiting := c.r == c.w && !c.p.Pending()
	if !c.flush() {
		return false
	}
	if waiting {
		wait := cfg.HeaderTimeout
		if c.served > 0 && !fresh {
			wait = cfg.Keepalive
		}
		c.mu.Lock()
		if c.stopping.Load() {
			wait = minWait(wait, c.retireWait(c.served == 0))
		}
		c.idle, c.idleFresh = true, c.served == 0
		c.idleUntil = deadline(wait)
		_ = c.nc.SetReadDeadline(c.idleUntil)
		c.mu.Unlock()
		n := c.readIdle()
		if n == 0 && c.stopping.Load() {
			// The wait timed out: a request that arrived with the
			// deadline is still served rather than dropped unread.
			n = c.readWaiting()
		}
		c.mu.Lock()
		c.idle = false
		c.mu.Unlock()
		if n == 0 {
			c.idleEnded = true
			return false
		}
		c.observeReading(true)
		c.headStart = time.Now()
		if cfg.HeaderTimeout > 0 {
			_ = c.nc.SetReadDeadline(c.headStart.Add(cfg.HeaderTimeout))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		return true
	}
	if c.read() > 0 {
		return true
	}
	if d := cfg.HeaderTimeout; d > 0 && !c.headStart.IsZero() && !time.Now().Before(c.headStart.Add(d)) {
		c.HeadTimedOut()
	}
	return false
}

// HeadTimedOut records a request whose head did not arrive within
// header_timeout, as 408 for the access log and /metrics (nginx's
// practice); nothing is sent, the caller closes the connection.
func (c *Conn) HeadTimedOut() {
	c.srv.NoteRejected(c.remote, http.StatusRequestTimeout, nil)
}

// readIdle waits for the next request. On a netpoller socket it holds no
// buffer, writer or parser meanwhile (an idle keep-alive connection costs
// its goroutine and little else): the read buffer is taken from the pool
// inside the raw read callback and given back when the socket has nothing.
// The syscalls are those of a plain Read: read, EAGAIN, wait, read.
func (c *Conn) readIdle() int {
	if c.rc == nil {
		return c.read()
	}
	c.releaseBuffers()
	c.releaseParser()
	if c.rawRead == nil {
		c.rawRead = c.rawReadOnce // one allocation per connection, not per wait
	}
	c.rawN, c.rawErr = 0, nil
	err := c.rc.Read(c.rawRead)
	if err != nil || c.rawErr != nil || c.rawN <= 0 {
		return 0
	}
	c.r, c.w = 0, c.rawN
	return c.rawN
}

// rawReadOnce is readIdle's syscall.RawConn callback.
func (c *Conn) rawReadOnce(fd uintptr) bool {
	if c.buf == nil {
		c.acquireReadBuf()
	}
	for {
		c.rawN, c.rawErr = syscall.Read(int(fd), c.buf)
		if c.rawErr != syscall.EINTR {
			break
		}
	}
	if c.rawErr == syscall.EAGAIN {
		c.releaseBuffers()
		return false // wait for readability, then call again
	}
	return true
}

func (c *Conn) acquireReadBuf() {
	c.bufp = readBufPool.Get().(*[]byte)
	c.buf = *c.bufp
}

// fillBody reads more body bytes; every read must make progress within
// header_timeout, so a silent client cannot hold the connection forever.
func (c *Conn) fillBody() error {
	_ = c.nc.SetReadDeadline(deadline(c.srv.config().HeaderTimeout))
	if c.read() == 0 {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// minWait is the shorter of two waits where 0 means no limit.
func minWait(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// read appends at least one byte to the buffer or returns 0 (EOF, timeout,
// error: the connection is done). The buffer grows only while a head is
// incomplete; the head scanner's limits bound it.
func (c *Conn) read() int {
	if c.buf == nil {
		c.acquireReadBuf()
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if c.w == len(c.buf) {
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		} else {
			nb := make([]byte, 2*len(c.buf))
			copy(nb, c.buf)
			c.buf = nb
		}
	}
	n, _ := c.nc.Read(c.buf[c.w:])
	c.w += n
	return n
}

// serveRequest runs one request whose head was just parsed; false means
// the connection must close.
func (c *Conn) serveRequest() bool {
	req, err := c.p.Request(c.ctx, c.remote)
	if err != nil {
		c.reject(err, nil)
		return false
	}
	if t, ok := c.nc.(*tlsConn); ok {
		req.TLS = t.state()
	}
	// Watch for the client going away only when nothing else can arrive
	// meanwhile: no body to read, no pipelined bytes buffered.
	if c.srv.WatchClient && c.p.ContentLength() == 0 && c.r == c.w {
		c.startWatch()
		defer c.stopWatch()
	}
	c.served++
	if c.bw == nil {
		c.bw = writerPool.Get().(*bufio.Writer)
		c.bw.Reset(&c.cw)
	}
	keep := c.p.KeepAlive() && c.srv.keepAliveAllowed()
	w := NewResponse(req, c.bw, keep, c.p.ExpectContinue())
	defer w.Release()
	w.stopping = &c.stopping
	w.hijack = c // an interface, not the method value: no allocation
	var body *bodyReader
	if req.Body == nil {
		body = &bodyReader{c: c, w: w, req: req}
		req.Body = body
	}
	c.bodyErr = nil
	ok := c.srv.runHandler(w, req)
	if c.hijacked.Load() {
		if body != nil {
			body.c = nil
		}
		return false
	}
	if ok && body != nil && !body.done && !c.finishBody(w, body) {
		w.SetClose()
	}
	if c.bodyErr != nil {
		status := StatusOf(c.bodyErr)
		w.writeError(status)
		c.srv.NoteRejected(c.remote, status, []byte(req.Method+" "+req.RequestURI+" "+req.Proto))
		ok = false
	}
	if body != nil {
		body.c = nil // a handler that kept the body can no longer read the connection
	}
	// A response committed keep-alive just before the stop began keeps
	// its connection: its client may already be sending the next request,
	// which fillHead waits for (retireWait) and answers with Connection:
	// close.
	return ok && w.Finish()
}

// aLongTimeAgo is a deadline that makes a pending Read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// watchDelay: handlers that finish sooner are never watched, so the
// common fast request pays only for resetting and stopping a timer.
const watchDelay = 50 * time.Millisecond

// clientWatch is Server.WatchClient's state, reused across requests.
type clientWatch struct {
	mu    sync.Mutex
	t     *time.Timer
	armed bool
	done  chan struct{} // non-nil once the background read started
}

// startWatch arms the timer that, after watchDelay, starts a one-byte read
// in the background: EOF or a reset means the client is gone and cancels
// the connection's context, which every request context derives from.
func (c *Conn) startWatch() {
	c.r, c.w = 0, 0
	c.watch.mu.Lock()
	c.watch.armed, c.watch.done = true, nil
	c.watch.mu.Unlock()
	if c.watch.t == nil {
		c.watch.t = time.AfterFunc(watchDelay, c.watchFire)
	} else {
		c.watch.t.Reset(watchDelay)
	}
}

func (c *Conn) watchFire() {
	c.watch.mu.Lock()
	defer c.watch.mu.Unlock()
	if !c.watch.armed {
		return
	}
	done := make(chan struct{})
	c.watch.done = done
	_ = c.nc.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		n, err := c.nc.Read(c.buf[c.w : c.w+1])
		c.w += n
		var ne net.Error
		if n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			c.cancel()
		}
	}()
}

// stopWatch ends the watch; a byte the background read got stays buffered
// as the start of the next request.
func (c *Conn) stopWatch() {
	c.watch.t.Stop()
	c.watch.mu.Lock()
	c.watch.armed = false
	d := c.watch.done
	c.watch.done = nil
	if d != nil {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
	c.watch.mu.Unlock()
	if d != nil {
		<-d
	}
}

// hijack hands the connection to the handler (http.Hijacker): pending
// responses are flushed, deadlines cleared, and bytes already read but not
// parsed come first from the returned reader. From then on the engine
// never touches nc again and Close leaves it open.
func (c *Conn) hijack() (net.Conn, *bufio.ReadWriter, error) {
	if c.watch.t != nil {
		c.stopWatch()
	}
	if !c.flush() {
		return nil, nil, fmt.Errorf("h1: hijack: flushing pending responses failed")
	}
	c.hijacked.Store(true)
	_ = c.nc.SetDeadline(time.Time{})
	var r io.Reader = c.nc
	if c.r < c.w {
		r = io.MultiReader(bytes.NewReader(bytes.Clone(c.buf[c.r:c.w])), c.nc)
	}
	c.r, c.w = 0, 0
	return c.nc, bufio.NewReadWriter(bufio.NewReader(r), bufio.NewWriter(c.nc)), nil
}

// finishBody drains a body the handler left unread, within drainLimit;
// false means the connection cannot be reused.
func (c *Conn) finishBody(w *Response, b *bodyReader) bool {
	if w.awaitingContinue() || b.err != nil {
		return false
	}
	if c.p.st == stBodyLength && c.p.left > drainLimit {
		return false
	}
	drained := 0
	for drained <= drainLimit {
		ev, n, data, err := c.p.Next(c.buf[c.r:c.w], 0)
		c.r += n
		switch {
		case err != nil:
			c.bodyErr = err
			return false
		case ev == BodyEnd:
			b.done = true
			return true
		case ev == Body:
			drained += len(data)
		default:
			if c.fillBody() != nil {
				c.bodyErr = errBadRequest("incomplete request body")
				return false
			}
		}
	}
	return false
}

// reject answers a request the parser refused, then the connection closes.
func (c *Conn) reject(err error, head []byte) {
	status := StatusOf(err)
	if c.bw == nil {
		c.bw = writerPool.Get().(*bufio.Writer)
		c.bw.Reset(&c.cw)
	}
	var tmp [256]byte
	_, _ = c.bw.Write(appendErrorResponse(tmp[:0], status))
	c.flush()
	c.srv.log().Debug("h1: request rejected", "remote", c.remote, "err", err)
	c.srv.NoteRejected(c.remote, status, head)
}

// flush sends pending responses; false if the connection failed.
func (c *Conn) flush() bool {
	if c.bw == nil || c.bw.Buffered() == 0 {
		return true
	}
	return c.bw.Flush() == nil
}

func (c *Conn) shutdown() State {
	c.flush()
	// After a response that said Connection: close, a client that waits
	// for each response sends nothing more: only input already under way
	// (unread bytes, a body) or an idle wait that ended calls for
	// lingering.
	if c.idleEnded || c.r < c.w || c.p != nil && c.p.Pending() {
		_ = c.CloseLingering()
	} else {
		_ = c.Close()
	}
	c.releaseBuffers()
	c.releaseParser()
	c.done = true
	return StateClosed
}

func (c *Conn) releaseBuffers() {
	c.releaseWriter()
	if c.buf != nil {
		if len(c.buf) == readBufSize {
			readBufPool.Put(c.bufp)
		}
		c.buf, c.bufp, c.r, c.w = nil, nil, 0, 0
	}
}

func (c *Conn) releaseWriter() {
	if c.bw != nil {
		c.bw.Reset(nil)
		writerPool.Put(c.bw)
		c.bw = nil
	}
}

// connWriter writes responses with a rolling write deadline: every write
// must make progress within header_timeout (WriteStallLimit when that is
// 0), so a client that stops reading cannot hold the connection (or a
// sync or threaded worker's thread) forever. The deadline moves at most
// every quarter of that time, not on every write.
type connWriter struct {
	c    *Conn
	last time.Time
}

// WriteStallLimit bounds a write's wait for a client that reads nothing
// when header_timeout is 0 (disabled): no timeout there must not mean a
// thread blocked for good.
const WriteStallLimit = 30 * time.Second

func (w *connWriter) Write(p []byte) (int, error) {
	d := WriteStall(w.c.srv.config())
	if now := time.Now(); now.Sub(w.last) > d/4 {
		_ = w.c.nc.SetWriteDeadline(now.Add(d))
		w.last = now
	}
	return w.c.nc.Write(p)
}

// bodyReader streams a request body from the connection to the handler.
type bodyReader struct {
	c      *Conn
	w      *Response
	req    *http.Request
	done   bool
	closed bool
	err    error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	switch {
	case b.done:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	case b.c == nil || b.closed:
		return 0, http.ErrBodyReadAfterClose
	case len(p) == 0:
		return 0, nil
	}
	if err := b.w.continueBeforeRead(); err != nil {
		b.err = err
		return 0, err
	}
	c := b.c
	for {
		ev, n, data, err := c.p.Next(c.buf[c.r:c.w], len(p))
		c.r += n
		switch {
		case err != nil:
			b.err, c.bodyErr = err, err
			return 0, err
		case ev == Body:
			return copy(p, data), nil
		case ev == BodyEnd:
			b.done = true
			b.req.Trailer = c.p.Trailer()
			return 0, io.EOF
		}
		if err := c.fillBody(); err != nil {
			// A truncated or stalled body is an incomplete request: never
			// answer it as if it were whole.
			b.err, c.bodyErr = err, errBadRequest("incomplete request body")
			return 0, err
		}
	}
}

func (b *bodyReader) Close() error {
	b.closed = true
	return nil
}
