// Package h1 is multiserve's HTTP/1.1 engine, shared by every worker class
// that does not use net/http (sync, threaded, evloop, and goroutine with
// http_engine = native), so every class has the same HTTP semantics
// (docs/http-behaviour.md).
//
// # Blocking API (sync, threaded, goroutine)
//
//	srv := &h1.Server{Handler: h, Config: cfg, Log: log, DisableKeepAlive: false}
//	c := srv.NewConn(netConn)
//	state := c.Serve(ctx, park) // StateClosed or (park=true) StateIdle
//
// Serve reads with deadlines on the net.Conn: the first request head and
// every head once its first byte arrived must be complete within
// header_timeout; the wait for the next request is keepalive (keepalive <= 0
// disables keep-alive); each body read must progress within header_timeout.
// Responses to pipelined requests are batched and flushed before Serve
// blocks on a read. Writes must progress within header_timeout too, or
// 30 s when header_timeout is 0 (a client that stops reading is cut off).
//
// Park mode (Serve(ctx, true), the threaded class) returns StateIdle when
// the connection is between requests with nothing buffered, and also,
// when the net.Conn implements [Readable] (internal/fdconn does), in the
// middle of a request head whose rest has not arrived: a thread never
// waits for a slow client's head. The partial head stays in the Conn for
// the next Serve call; the caller closes a connection still silent at
// [Conn.HeadStart] + header_timeout (a late byte is refused by the read
// deadline already set). Bodies are still read blocking, each read within
// header_timeout.
//
// The request context is cancelled when the connection closes. With
// Server.WatchClient, a handler running longer than 50 ms on a bodiless,
// non-pipelined request also has the client watched by a background
// one-byte read: EOF or a reset cancels the context at once.
//
// When ctx is done (the worker retires, docs/deploy.md), a busy connection
// finishes its request with Connection: close; an idle kept-alive one
// waits retire_idle_timeout more for its next request, answered the same
// way, and one that has not sent its first request yet gets at least a
// second (it was accepted before the stop; an EOF there is not
// retryable). A connection ended while its client may still be sending is
// closed the lingering way (linger.go). Close may
// be called from any goroutine.
//
// The handler gets a real *http.Request: streaming Body, Host (the Host
// field is promoted out of Header, as net/http does), RemoteAddr,
// RequestURI, Proto*, TLS nil, Trailer after the body's EOF, and
// http.LocalAddrContextKey in its context. The http.ResponseWriter also
// implements http.Flusher, io.StringWriter and http.Hijacker (blocking
// Conn only; before anything was written): the hijacker gets the net.Conn
// with deadlines cleared and any bytes the engine had already read, and
// Conn.Close then leaves the socket to it.
//
// # Non-blocking API (evloop)
//
// The same validation runs through [Parser], which never reads a socket and
// never buffers input: the caller owns the inbound bytes (gnet's Peek /
// Discard fit exactly). Per connection:
//
//	p := srv.NewParser() // pooled; p.Release() while idle, NewParser again on traffic
//	// in OnTraffic, with buf = every unconsumed inbound byte:
//	for {
//		ev, n, data, err := p.Next(buf, 0) // max 0: no limit on Body size
//		buf = buf[n:]                        // ALWAYS discard n, even on NeedMore
//		if err != nil {                      // *h1.Error: 400/413/414/417/431/501/505
//			out = h1.AppendErrorResponse(out, err.(*h1.Error).Status)
//			// write out, then close the connection; never call Next again
//		}
//		switch ev {
//		case h1.NeedMore:  // wait for more bytes (keep buf)
//		case h1.Head:      // a request head: build the request NOW, its
//			//                fields point into buf
//			req, _ := p.Request(connCtx, remoteAddr) // Body: http.NoBody or nil
//		case h1.Body:      // data (slice of buf) belongs to the current request
//		case h1.BodyEnd:   // body complete; p.Trailer() for chunked trailers;
//			//                also sent (n == 0) right after a Head without body
//		}
//	}
//
// Rejections the parser detects inside a body (bad chunk size, body over
// limit_request_body) arrive as an error from Next after the Head: if the
// handler already runs, call Response.Reject(status) (it answers only if
// nothing was committed) and close after the handler returns.
//
// Responses: NewResponse(req, sink, keepAlive, expectContinue) returns an
// http.ResponseWriter + http.Flusher that serialises into a [Sink] (an
// io.Writer with Flush; *bufio.Writer is one; an event loop's sink appends
// to its outbound buffer and hands it over on Flush). Pass keepAlive =
// p.KeepAlive() (false to force Connection: close) and expectContinue =
// p.ExpectContinue(). Server.Handle(w, req) runs the handler with panic
// recovery (500 + log line) and request_timeout (ctx cancelled, 503 if
// nothing was sent), then Finish (which writes the last bytes but does not
// Flush: flush when no pipelined request is left to answer), and reports
// whether the connection may continue. Then Release the Response.
// Responses of pipelined requests must be written in request order.
//
// Request bodies: when Request left Body nil, set a reader. [BodyPipe] is a
// bounded pipe for a handler running on another goroutine: feed it from
// Body events (Write returns how much it took; discard only that much and
// resume on onDrain), End(p.Trailer()) on BodyEnd, Fail(err) on error or
// close. Inline handlers may instead wait for BodyEnd and use a
// bytes.Reader, up to a bound. If the handler returned without reading the
// whole body, keep calling Next and dropping Body events (bounded: close
// the connection beyond ~256 KiB), unless Response.AwaitingContinue, in
// which case close right away.
//
// # Limits and rejections
//
// limit_request_line (0 = 8190) → 414; limit_request_fields and
// limit_request_field_size → 431; limit_request_body → 413 (a declared
// Content-Length over it is refused before any body byte is read).
// 400 and close: Content-Length with Transfer-Encoding, several or
// malformed Content-Length values (lists too), a Transfer-Encoding that is
// not exactly "chunked" (501 for other codings), Transfer-Encoding on
// HTTP/1.0, obs-fold, bare CR or LF, NUL/CTL in a field value, whitespace
// before a field's colon, invalid chunk sizes, extensions or terminators,
// invalid method or version (505 for HTTP/2+), missing or duplicate Host on
// HTTP/1.1, targets that are not origin-form, http(s) absolute-form with a
// valid authority (no userinfo), authority-form for CONNECT or "*" for
// OPTIONS; '#', '"', '<', '>', controls and non-ASCII bytes in the target.
// Header names with underscores follow header_map: drop (default), refuse
// (400) or dangerous (passed through). Forbidden trailer fields
// (Content-Length, Host, Transfer-Encoding, ...) are dropped.
package h1
