package h1

import (
	"io"
	"net/http"
	"sync"
)

// BodyPipe is a request body that an event loop feeds (Write, End, Fail)
// and a handler reads (Read, Close), for classes whose handler does not own
// the socket. It holds at most max bytes: Write accepts what fits and the
// loop leaves the rest unconsumed in its inbound buffer (backpressure);
// onDrain is called, from the reader's goroutine, when a Write had been
// short and space frees up, so the loop can wake and feed again. The first
// Read sends 100 Continue through the Response when the request asked for
// it.
type BodyPipe struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	max     int
	full    bool // a Write was short since the last drain notification
	ended   bool
	err     error
	closed  bool
	req     *http.Request
	trailer http.Header
	resp    *Response
	onDrain func()
}

// NewBodyPipe returns a pipe for req's body (it sets req.Body). resp may be
// nil; onDrain may be nil when Write is never short (max large enough).
func NewBodyPipe(req *http.Request, resp *Response, max int, onDrain func()) *BodyPipe {
	if max <= 0 {
		max = 64 << 10
	}
	b := &BodyPipe{max: max, req: req, resp: resp, onDrain: onDrain}
	b.cond.L = &b.mu
	req.Body = b
	return b
}

// Write copies as much of p as fits and returns how much it took (the Body
// event's bytes the loop may now discard). Bytes written after the reader
// closed are accepted and dropped.
func (b *BodyPipe) Write(p []byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return len(p)
	}
	n := min(len(p), b.max-len(b.buf))
	b.buf = append(b.buf, p[:n]...)
	if n < len(p) {
		b.full = true
	}
	if n > 0 {
		b.cond.Signal()
	}
	return n
}

// End marks the body complete (Parser BodyEnd) with its trailer (may be nil).
func (b *BodyPipe) End(trailer http.Header) {
	b.mu.Lock()
	b.ended, b.trailer = true, trailer
	b.cond.Signal()
	b.mu.Unlock()
}

// Fail makes the reader see err after the buffered bytes (connection closed,
// parser error: io.ErrUnexpectedEOF or the *Error).
func (b *BodyPipe) Fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.cond.Signal()
	b.mu.Unlock()
}

// Read blocks until body bytes, the end or an error are available.
func (b *BodyPipe) Read(p []byte) (int, error) {
	if b.resp != nil {
		if err := b.resp.continueBeforeRead(); err != nil {
			return 0, err
		}
	}
	b.mu.Lock()
	for len(b.buf) == 0 && !b.ended && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	switch {
	case b.closed:
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	case len(b.buf) > 0:
		n := copy(p, b.buf)
		b.buf = b.buf[:copy(b.buf, b.buf[n:])]
		notify := b.full && b.onDrain != nil
		b.full = false
		b.mu.Unlock()
		if notify {
			b.onDrain()
		}
		return n, nil
	case b.err != nil:
		err := b.err
		b.mu.Unlock()
		return 0, err
	default:
		b.req.Trailer = b.trailer
		b.mu.Unlock()
		return 0, io.EOF
	}
}

// Close stops reading: later Writes are dropped (the loop keeps parsing
// and discarding the rest of the body).
func (b *BodyPipe) Close() error {
	b.mu.Lock()
	b.closed, b.buf = true, nil
	full := b.full && b.onDrain != nil
	b.full = false
	b.cond.Broadcast()
	b.mu.Unlock()
	if full {
		b.onDrain()
	}
	return nil
}

// Complete reports whether End was called and every byte was read.
func (b *BodyPipe) Complete() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ended && len(b.buf) == 0
}
