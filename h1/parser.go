package h1

import (
	"context"
	"net/http"

	"github.com/multiserve/multiserve/config"
)

// Event is what Parser.Next found in the bytes it was offered.
type Event uint8

const (
	// NeedMore: no complete unit yet. Keep the unconsumed bytes and call
	// Next again with more bytes appended.
	NeedMore Event = iota
	// Head: a request head was parsed. Its fields point into the bytes
	// offered; call Request (or inspect the head) before those bytes are
	// discarded or overwritten.
	Head
	// Body: data holds request body bytes (a slice of the bytes offered).
	Body
	// BodyEnd: the request body is complete (also sent, with n == 0, for a
	// request without a body). Trailers are readable until the bytes offered
	// are discarded. The next Next call parses the next request's head.
	BodyEnd
)

func (e Event) String() string {
	switch e {
	case NeedMore:
		return "NeedMore"
	case Head:
		return "Head"
	case Body:
		return "Body"
	default:
		return "BodyEnd"
	}
}

type parserState uint8

const (
	stHead parserState = iota
	stBodyLength
	stBodyChunked
	stBodyEnd
	stFailed
)

// Parser is the incremental HTTP/1.1 request decoder for one connection:
// the single code path that validates every request, used by the blocking
// Conn and directly by event-loop classes. It never copies or buffers
// input itself; the caller owns the buffer. The zero value is not usable;
// get one from Server.NewParser. A Parser is not safe for concurrent use.
type Parser struct {
	lim   limits
	st    parserState
	sc    headScanner
	h     head
	left  int64 // Content-Length bytes left
	total int64 // body bytes so far (limit_request_body)
	ck    chunkedDecoder
	err   error
	// skipped: the one empty line allowed before this request line was seen.
	skipped bool
	// tmpl carries tmplCtx for Request (see template).
	tmpl    *http.Request
	tmplCtx context.Context
	// What InlineRequest reuses (reuse), and the chunks stash appends to
	// (raw, vals): kept across Reset and Release, since nothing in them is
	// ever rewritten while a string or slice handed out may point there.
	reuse    *requestBlock
	reuseHdr http.Header
	raw      []byte
	vals     []string
	blocks   []requestBlock // Request's current slab (see newBlock)
}

// NewParser returns a parser enforcing the server's limits (from a pool:
// see Release).
func (s *Server) NewParser() *Parser {
	if p, ok := parserPool.Get().(*Parser); ok {
		p.lim = limitsFrom(s.config())
		return p
	}
	p := &Parser{lim: limitsFrom(s.config())}
	p.h.fields = make([]field, 0, 32)
	return p
}

// Release returns the parser to a pool; it must not be used afterwards.
// A connection that is idle between requests (Next returned NeedMore with
// nothing buffered) may release its parser and take a new one from
// NewParser when bytes arrive: the parser keeps no state between requests.
func (p *Parser) Release() {
	p.reset()
	parserPool.Put(p)
}

// Reset makes p ready for another connection of the same Server, for a
// caller that keeps its own free list (an event loop, whose connections
// never run concurrently, needs no sync.Pool): Release without the pool.
func (p *Parser) Reset() { p.reset() }

func limitsFrom(cfg *config.Config) limits {
	l := limits{
		line: cfg.LimitRequestLine, fields: cfg.LimitRequestFields,
		fieldSize: cfg.LimitRequestFieldSize, body: cfg.LimitRequestBody,
	}
	if l.line <= 0 || l.line > maxLineCap {
		l.line = maxLineCap
	}
	if l.fields <= 0 || l.fields > maxFieldsCap {
		l.fields = maxFieldsCap
	}
	switch {
	case l.fieldSize <= 0:
		l.fieldSize = maxLineCap // gunicorn's default
	case l.fieldSize > maxFieldCap:
		l.fieldSize = maxFieldCap
	}
	switch cfg.HeaderMap {
	case "refuse":
		l.headerMap = headerRefuse
	case "dangerous":
		l.headerMap = headerPass
	}
	return l
}

// Next decodes the next unit from b, which must start with the first byte
// not yet consumed. It returns the event, the number of bytes of b consumed
// (discard exactly these), and for Body the data (a slice of b, at most max
// bytes when max > 0). After an error (always an *Error) the parser stays
// failed: send ErrorResponse and close the connection.
func (p *Parser) Next(b []byte, max int) (ev Event, n int, data []byte, err error) {
	switch p.st {
	case stHead:
		return p.nextHead(b)
	case stBodyLength:
		if len(b) == 0 {
			return NeedMore, 0, nil, nil
		}
		k := int64(len(b))
		if k > p.left {
			k = p.left
		}
		if max > 0 && k > int64(max) {
			k = int64(max)
		}
		p.left -= k
		if p.left == 0 {
			p.st = stBodyEnd
		}
		return Body, int(k), b[:k], nil
	case stBodyChunked:
		return p.nextChunked(b, max)
	case stBodyEnd:
		p.st = stHead
		p.sc.reset()
		return BodyEnd, 0, nil, nil
	default:
		return NeedMore, 0, nil, p.err
	}
}

func (p *Parser) nextHead(b []byte) (Event, int, []byte, error) {
	skip := 0
	// RFC 9112 2.2: ignore at least one empty line before a request line
	// (clients that send CRLF after a POST body).
	if p.sc.pos == 0 && !p.skipped && len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		skip, p.skipped = 2, true
		b = b[2:]
	}
	end, err := p.sc.scan(b, &p.lim)
	if err != nil {
		return p.fail(err)
	}
	if end == 0 {
		if skip > 0 {
			p.sc.reset()
		}
		return NeedMore, skip, nil, nil
	}
	if err := parseHead(b[:end], p.sc.ends, &p.h, &p.lim); err != nil {
		return p.fail(err)
	}
	p.total, p.skipped = 0, false
	switch {
	case p.h.chunked:
		p.st = stBodyChunked
		p.ck.reset()
	case p.h.contentLength > 0:
		p.st, p.left = stBodyLength, p.h.contentLength
	default:
		p.st = stBodyEnd
	}
	return Head, skip + end, nil, nil
}

func (p *Parser) nextChunked(b []byte, max int) (Event, int, []byte, error) {
	off := 0
	for {
		n, data, done, err := p.ck.step(b[off:], max, &p.lim)
		if err != nil {
			return p.fail(err)
		}
		off += n
		switch {
		case done:
			p.st = stHead
			p.sc.reset()
			return BodyEnd, off, nil, nil
		case len(data) > 0:
			p.total += int64(len(data))
			if p.lim.body > 0 && p.total > p.lim.body {
				return p.fail(&Error{Status: 413, Msg: "request body too large"})
			}
			return Body, off, data, nil
		case n == 0:
			return NeedMore, off, nil, nil
		}
	}
}

func (p *Parser) fail(err error) (Event, int, []byte, error) {
	p.st, p.err = stFailed, err
	return NeedMore, 0, nil, err
}

// Pending reports whether a request is partly parsed: head bytes were
// scanned but the head is incomplete, or a body is in progress. An EOF
// from the client at such a point is a truncated request.
func (p *Parser) Pending() bool {
	return p.st == stBodyLength || p.st == stBodyChunked || (p.st == stHead && p.sc.pos > 0)
}

// InBody reports whether the parser is between Head and BodyEnd.
func (p *Parser) InBody() bool {
	return p.st == stBodyLength || p.st == stBodyChunked || p.st == stBodyEnd
}

// ExpectContinue reports whether the last head asked for 100-continue.
func (p *Parser) ExpectContinue() bool { return p.h.expectContinue }

// KeepAlive reports whether the last head allows another request on the
// connection after this one (HTTP/1.1 without Connection: close, or
// HTTP/1.0 with Connection: keep-alive).
func (p *Parser) KeepAlive() bool {
	if p.h.connClose {
		return false
	}
	return p.h.minor >= 1 || p.h.connKeepAlive
}

// ContentLength is the last head's declared body length: -1 for chunked,
// 0 when there is no body.
func (p *Parser) ContentLength() int64 {
	switch {
	case p.h.chunked:
		return -1
	case p.h.contentLength < 0:
		return 0
	}
	return p.h.contentLength
}

// Trailer returns the trailer fields of the chunked body that just ended
// (after BodyEnd, before the bytes are discarded), copied, or nil.
// Forbidden trailer fields (framing, routing, auth...) are dropped.
func (p *Parser) Trailer() http.Header {
	if !p.h.chunked || len(p.ck.trailers) == 0 {
		return nil
	}
	t := make(http.Header, len(p.ck.trailers))
	for _, f := range p.ck.trailers {
		k := headerKey(f.name, func(b []byte) string { return string(b) })
		t[k] = append(t[k], string(f.value))
	}
	return t
}

// reset makes the parser ready for a new connection.
func (p *Parser) reset() {
	p.st, p.left, p.total, p.err, p.skipped = stHead, 0, 0, nil, false
	p.tmpl, p.tmplCtx = nil, nil // do not keep a connection's context in the pool
	p.sc.reset()
	p.h.reset()
	p.ck.reset()
}
