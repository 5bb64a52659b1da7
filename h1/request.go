package h1

import (
	"context"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"unsafe"
)

// Request builds the *http.Request for the head the last Next returned
// (call it right after the Head event, before the bytes are discarded).
// All strings are copied out of the caller's buffer (see stash).
// Body is http.NoBody when the request has none and nil otherwise: the
// caller supplies a streaming reader. RemoteAddr is set from remoteAddr.
//
// Cost: the Header map; the Request with its URL (one block, cut from a
// slab shared with the parser's next requests: see newBlock); and the
// head's bytes and header value slots, shared with other requests in
// chunks (see stash). The context is set by copying a
// template Request that already carries ctx (made once per distinct ctx),
// not by WithContext's copy of every request.
func (p *Parser) Request(ctx context.Context, remoteAddr string) (*http.Request, error) {
	blk := p.newBlock()
	if ctx != context.Background() {
		blk.req = *p.template(ctx) // a zero Request's Context() is Background already
	}
	base, vals := p.stash()
	return p.build(&blk.req, &blk.url, make(http.Header, len(p.h.fields)), base, vals, remoteAddr)
}

// InlineRequest is Request, with context.Background, for a caller that
// runs the request's handler to completion before it calls InlineRequest
// again on this parser (an event loop's inline handlers): the
// *http.Request, its *url.URL and its Header map are the parser's own,
// reused by its next InlineRequest. A handler must not use r, r.URL or
// r.Header after it returned, not even from a goroutine it started (hand
// such work r.Clone(ctx)); a Header map used after that is a data race,
// which the Go runtime may turn into a fatal "concurrent map" error. What
// stays valid: the strings (method, target, header values, Host) and the
// header value slices (see stash) and the context (Background). net/http
// lets a handler keep r, so only callers that document this use it.
//
// Cost: no allocation but stash's chunks (one per 25 wrk requests).
func (p *Parser) InlineRequest(remoteAddr string) (*http.Request, error) {
	blk := p.reuse
	if blk == nil {
		blk = new(requestBlock)
		p.reuse, p.reuseHdr = blk, make(http.Header)
	} else {
		*blk = requestBlock{}
		clear(p.reuseHdr)
	}
	base, vals := p.stash()
	return p.build(&blk.req, &blk.url, p.reuseHdr, base, vals, remoteAddr)
}

// newBlock returns a zeroed requestBlock cut from the parser's current
// slab of blockSlab blocks (carve): one allocation per blockSlab requests
// instead of one each. A handler may keep its Request as long as it likes
// (it then keeps the slab's other blocks from the garbage collector too, a
// few kilobytes at most, like stash's chunks).
func (p *Parser) newBlock() *requestBlock {
	return &carve(&p.blocks, 1, blockSlab)[0]
}

// carve returns n zero elements from the unused end of *chunk, starting a
// new chunk of max(size, n) when too few are left. Nothing is handed out
// twice: what was carved stays the caller's however long it is kept, and
// a full chunk is left to the garbage collector.
func carve[T any](chunk *[]T, n, size int) []T {
	c := *chunk
	if len(c)+n > cap(c) {
		c = make([]T, 0, max(size, n))
	}
	*chunk = c[:len(c)+n]
	return c[len(c) : len(c)+n : len(c)+n]
}

// blockSlab is how many requestBlocks fit 4 KB with the 8-byte header
// the allocator adds to a large object with pointers: one size class, no
// rounding waste (9 blocks of 448 bytes with Go 1.26).
const blockSlab = (4096 - 8) / int(unsafe.Sizeof(requestBlock{}))

// requestBlock is the Request and its URL in one piece (448 bytes); the
// URL is unused when the target needed url.ParseRequestURI.
type requestBlock struct {
	req http.Request
	url url.URL
}

// stash copies the head's bytes (from the method on, see headSpan) into
// the parser's append-only byte chunk and takes room for a value per
// header field from its append-only value chunk; it returns where the
// bytes start and the value slots. The requests' strings and header value
// slices point there: nothing in a chunk is ever written again (a full
// chunk is left to the garbage collector and a new one started), so they
// stay valid however long a handler keeps them. Requests share a chunk,
// which is what makes the copy cheaper than an allocation of its own.
func (p *Parser) stash() (*byte, []string) {
	var base *byte
	switch span := headSpan(&p.h); {
	case len(span) > rawChunk/4:
		base = unsafe.StringData(string(span)) // a long head: a copy of its own
	default:
		dst := carve(&p.raw, len(span), rawChunk)
		copy(dst, span)
		base = unsafe.SliceData(dst)
	}
	return base, carve(&p.vals, len(p.h.fields), valsChunk)
}

// The chunk sizes of stash: wrk's 40-byte heads share a byte chunk 25 at
// a time; a head over a quarter of it (a browser's 700 bytes) gets a copy
// of its own, as Request always made for heads that did not fit its block.
const (
	rawChunk  = 1024
	valsChunk = 32
)

// build fills r (zero but for its context) and u for the head the last
// Next returned. base is where the head's bytes were copied (from the
// method on, see headSpan), and the strings point there; vals has room for
// a value per header field.
func (p *Parser) build(r *http.Request, u *url.URL, hdr http.Header, base *byte, vals []string, remoteAddr string) (*http.Request, error) {
	h := &p.h
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(base), spanOffset(h, b))), len(b))
	}
	target := str(h.target)
	u, err := parseTarget(h.method, target, u)
	if err != nil {
		return nil, errBadRequest("invalid request target")
	}
	r.Method = internMethod(h.method, str)
	r.URL = u
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, h.minor
	if h.minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.Header = hdr
	r.RequestURI, r.RemoteAddr, r.Close = target, remoteAddr, !p.KeepAlive()
	for i, f := range h.fields {
		if i == h.hostIdx {
			continue // promoted to r.Host, as net/http does
		}
		k := headerKey(f.name, str)
		vals[i] = str(f.value)
		if old, ok := r.Header[k]; ok {
			r.Header[k] = append(old, vals[i])
		} else {
			r.Header[k] = vals[i : i+1 : i+1]
		}
	}
	r.Host = u.Host
	if r.Host == "" {
		r.Host = str(h.host)
	}
	r.ContentLength = p.ContentLength()
	if h.chunked {
		r.TransferEncoding = []string{"chunked"}
	}
	if r.ContentLength == 0 {
		r.Body = http.NoBody
	}
	return r, nil
}

// template returns an empty Request whose context is ctx: copying it into
// a new Request sets the (unexported) context without WithContext. It is
// cached while ctx stays the same (a connection's context, or
// context.Background for evloop's inline handlers); a context of a type
// that is not comparable is never cached.
func (p *Parser) template(ctx context.Context) *http.Request {
	if p.tmpl != nil && p.tmplCtx == ctx {
		return p.tmpl
	}
	t := (&http.Request{}).WithContext(ctx)
	if reflect.TypeOf(ctx).Comparable() {
		p.tmpl, p.tmplCtx = t, ctx
	}
	return t
}

// headSpan returns the slice of the caller's buffer from the method to the
// end of the last field value.
func headSpan(h *head) []byte {
	end := h.target
	if n := len(h.fields); n > 0 {
		end = h.fields[n-1].value
		if len(end) == 0 {
			end = h.fields[n-1].name
		}
	}
	off := spanOffset(h, end) + len(end)
	return unsafe.Slice(unsafe.SliceData(h.method), off)
}

// spanOffset is the distance from the start of the request line to b; both
// are slices of the same buffer.
func spanOffset(h *head, b []byte) int {
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(h.method))))
}

// parseTarget fills u for the request target, as url.ParseRequestURI
// would, or returns the URL that function allocated. The common
// origin-form target (a path of characters that ParseRequestURI keeps
// as they are, an optional query) is split here without it.
func parseTarget(method []byte, target string, u *url.URL) (*url.URL, error) {
	switch {
	case string(method) == "CONNECT":
		u.Host = target
		return u, nil
	case target == "*":
		u.Path = "*"
		return u, nil
	}
	if !splitOriginForm(target, u) {
		return url.ParseRequestURI(target)
	}
	return u, nil
}

// splitOriginForm sets u.Path, u.RawQuery and u.ForceQuery from an
// origin-form target whose path needs no unescaping and would not be
// escaped by url.URL (so RawPath stays empty), and whose query is
// printable ASCII. It reports false for anything else.
func splitOriginForm(target string, u *url.URL) bool {
	if len(target) == 0 || target[0] != '/' {
		return false
	}
	i := 0
	for ; i < len(target) && target[i] != '?'; i++ {
		if !plainPathChar[target[i]] {
			return false
		}
	}
	if i == len(target) {
		u.Path = target
		return true
	}
	for j := i + 1; j < len(target); j++ {
		if c := target[j]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	u.Path, u.RawQuery = target[:i], target[i+1:]
	u.ForceQuery = u.RawQuery == ""
	return true
}

// plainPathChar: the bytes url.ParseRequestURI keeps unchanged in a path
// with RawPath empty (TestSplitOriginFormMatchesNetURL checks it).
var plainPathChar = func() (t [256]bool) {
	for _, c := range []byte("$&+,-./:;=@_~") {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	return t
}()

var commonMethods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

func internMethod(m []byte, str func([]byte) string) string {
	for _, c := range commonMethods {
		if string(m) == c {
			return c
		}
	}
	return str(m)
}

// commonKeys maps the spellings clients use (canonical and lower case) to
// the canonical key, so the usual headers cost no allocation.
var commonKeys = map[string]string{}

func init() {
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Dnt",
		"Expect", "Host", "If-Modified-Since", "If-None-Match", "Origin", "Pragma", "Priority",
		"Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Sec-Fetch-Dest",
		"Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Te", "Trailer", "Transfer-Encoding",
		"Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "X-Forwarded-For",
		"X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
	} {
		commonKeys[k] = k
		commonKeys[lower(k)] = k
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func headerKey(name []byte, str func([]byte) string) string {
	if k, ok := commonKeys[string(name)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(str(name))
}
