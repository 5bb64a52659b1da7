// Package evloop is the "evloop" worker class: HTTP/1.1 on gnet v2 epoll
// event loops with non-blocking IO, parsed by the shared h1 engine.
//
// # Model
//
// One gnet engine per worker process with evloop_loops event loops (0: one
// per CPU the worker may use, runtime.GOMAXPROCS(0), which the arbiter sets
// per worker). The accept loop (see Listeners) hands connections round-robin
// to the loops. On a loop, OnTraffic feeds the inbound bytes to an
// h1.Parser (Peek/Discard, no copy), builds the *http.Request and runs the
// handler. Requests on one connection are handled one after another: the
// bytes of a pipelined request wait in gnet's inbound buffer until the
// response before it is written, which is what keeps responses in order.
//
// Threading: OnBoot runs once before any loop exists; OnOpen, OnTraffic,
// OnClose and every continuation (AsyncWrite callbacks, Execute'd sweeps)
// run on the connection's loop, so per-connection state needs no lock.
// OnTick runs on gnet's ticker goroutine, not on a loop.
//
// # Where handlers run (threads)
//
// threads = 0: inline on the loop (the fast path). A handler that blocks
// stalls every connection of its loop, and the heartbeat with it (see
// below); this is the point of the class in the bench. Requests whose body
// cannot be complete in the buffer without waiting run off the loop even
// then: chunked bodies, bodies over 64 KiB and Expect: 100-continue bodies
// (the 100 must be sent only on the handler's first read). A small
// Content-Length body is waited for on the loop (header_timeout applies)
// and handed to the handler as a reader over gnet's buffer.
//
// Inline handlers run one at a time on their loop, so each loop keeps one
// of what they need and reuses it: the h1.Response (Recycle), parsers (a
// free list of the loop's idle connections' parsers), the small-body
// reader. net/http's rules make that safe: a handler must not use the
// ResponseWriter or read the Body after it returned. The *http.Request is
// new for every request by default, because net/http lets a handler keep
// r (e.g. hand it to a goroutine), and its own http.TimeoutHandler does:
// on timeout it returns while the wrapped handler's goroutine still reads
// r.URL and r.Header (WithContext's copy shares both). With the setting evloop_reuse_requests
// (--evloop-reuse-requests, MULTISERVE_EVLOOP_REUSE_REQUESTS=1) inline
// handlers get h1.Parser.InlineRequest's
// recycled Request instead: r, r.URL and r.Header are reused once the
// handler returned, so a handler must not use them afterwards, not even
// from a goroutine it started (hand r.Clone(ctx) to work that outlives
// it; a Header map used late is a data race the Go runtime may make a
// fatal error), while strings, header value slices and the context stay
// valid. No allocation per request is left then (see Measured).
//
// threads > 0: every handler runs on a bounded goroutine pool of that size
// (goroutines start on demand and stay parked until the worker stops);
// responses go back with AsyncWrite, and every request gets its own
// Request. threads left unset means 0 for this class (config's load); an
// explicit threads = 1 is a pool of one. Use a large pool (e.g. 1000) for
// handlers that wait on IO.
//
// # Bodies and flow control
//
// A request body handled off the loop streams through h1.BodyPipe (64 KiB):
// the loop pushes what the pipe takes and leaves the rest in gnet's inbound
// buffer; the reader wakes the connection (Conn.Wake) when it drained. gnet
// v2 reads every readable socket and has no API to stop, so evloop switches
// reading off itself (epoll_ctl on the loop's epoll descriptor, found in
// gnet's loop by reflection: bounds.go) while a connection cannot take
// input (see Bounds). When a handler returns without reading its body to
// the end, the loop reads and drops the rest (up to 256 KiB, within
// header_timeout) before the response is committed, so that a framing error
// in it still gets its 400 and the connection can stay open; beyond that,
// or when a 100 Continue was never sent, the connection closes after the
// response.
//
// Closing: a connection evloop ends while its client may still be sending
// (an unread body, pipelined bytes, a client that asked for keep-alive, an
// idle wait that ended) or while gnet still queues its output is closed the
// lingering way (h1's, see docs/deploy.md): input is dropped from then on,
// the write side is shut once the output is flushed, and the connection is
// closed on its client's EOF or by the sweep h1.LingerTime later (at most
// h1.MaxLingering per worker; beyond, at once). gnet's own Close would drop
// queued output and, with input unread, make the kernel send a reset that
// destroys the response the client has not read yet (linger.go).
//
// Responses of inline handlers are batched per event in one buffer per loop
// and handed to gnet every 64 KiB (one write syscall for all pipelined
// responses of an event); what the socket does not take waits in gnet's
// outbound buffer. Off the loop, a response goes in 64 KiB AsyncWrite chunks
// with one chunk in flight.
//
// # Bounds
//
// What one connection may hold is bounded by evloop_conn_buffer (default
// 1 MiB), each direction:
//
//   - output: no new (pipelined) request is started while more than the
//     bound is queued unsent; the connection is re-checked every 5 ms until
//     it drained below half (gnet reports no drain event). A handler off
//     the loop waits in its writes while more than the bound is queued. An
//     inline handler cannot wait without stalling its whole loop (a client
//     reading 10 KiB/s would hold it for hours), so its writes go on into
//     gnet's outbound buffer up to 16 times the bound (16 MiB); past that
//     the write fails and the connection closes after the response: use
//     threads > 0 for responses larger than that to slow clients.
//   - input: while a connection cannot take input (its body pipe is full,
//     its handler runs and what arrives is pipelined, or its output waits),
//     its socket is not read once 64 KiB wait (TCP then pushes back on the
//     client, as for the blocking classes). gnet reads a paused socket again
//     whenever its outbound buffer empties; a blocked connection that gets
//     more than the bound plus 64 KiB in is closed. A head is held to the
//     limit_request_* settings by the parser, an inline body to 64 KiB.
//     One parse step looks at 128 KiB of the input at most (gnet's Peek
//     copies what it returns when the bytes span its buffers).
//   - time: queued output that makes no progress, or a streamed body that
//     receives nothing while its handler waits for it, is cut after
//     header_timeout (30 s when that is 0), the blocking classes' rolling
//     read and write deadline.
//
// # Listeners: our accept loop, or gnet's acceptor on request
//
// gnet v2.9.7 binds its listeners from address strings and has no public
// way to adopt an inherited listening fd. Its acceptor also stops the
// whole engine, closing every connection the worker holds, on any accept
// error other than EAGAIN, EINTR, ECONNRESET and ECONNABORTED: EMFILE
// (descriptors used up by a burst or by files the application opens),
// ENFILE (the system's file table), ENOBUFS, ENOMEM. So by default the
// worker accepts itself (accept.go): one Go goroutine per listener waits
// on Go's netpoller, drains the accept queue with raw accept4
// (fdconn.PollListener.AcceptFDs: SOCK_NONBLOCK, SOCK_CLOEXEC; TCP_NODELAY
// is inherited from the listener, where the arbiter set it), backs off on any error as the other
// classes do (workers.Backoff, logged at most every 10 s), and posts what
// it took to the loops round-robin, one task per loop per drain. On its
// loop each descriptor becomes a gnet connection the way gnet's own
// acceptor makes one (gnetconn.go: gnet's newStreamConn and register0,
// reached by linkname, since gnet's public Engine.Register wants a Go
// *net.TCPConn, which costs Go's accept with its socket options and
// netpoller registration, then a dup, a close and a goroutine hand-off per
// connection). No accept error can stop the worker.
//
// What this costs over gnet's acceptor is the hand-over between threads:
// the accept goroutine's netpoller wake-up and the loop's eventfd wake-up,
// each shared by every connection of a drain (docs/evloop-measurements.md).
//
// The evloop_gnet_acceptor setting opts into gnet's acceptor, fed by the fd
// swap below, for a deployment that prefers its per-connection cost and
// accepts that an accept error takes the worker down with its
// connections. Even then a worker whose RLIMIT_NOFILE cannot cover
// worker_connections plus a full accept queue (gnet takes the whole queue
// before OnOpen can refuse any of it; fdbudget.go) logs a warning and
// uses the accept loop.
//
// Every listener slot the swap does not use is sealed in OnBoot: an
// eventfd nobody signals is dup3'ed onto gnet's dummy listener, so gnet's
// acceptor never wakes for it (the dummy socket would otherwise stay
// reachable on loopback, with the same failure mode).
//
// The fd swap:
//
//   - gnet.Rotate starts on one dummy listener per inherited socket, the
//     i-th on 127.0.0.(i+1):0 (distinct addresses, because
//     Engine.DupListener finds a listener by its address string);
//   - in OnBoot, which v2.9.7 calls after binding and before adding the
//     listeners to epoll, each dummy's fd number is found (the inode of an
//     Engine.DupListener copy, matched in /proc/self/fd) and the inherited
//     socket is dup3'ed onto it; gnet then accepts from the shared socket
//     itself, at native cost, with no Go accept goroutine;
//   - a self-test checks that getsockname of the swapped fd equals the
//     inherited socket's and that it is listening. If locating, swapping or
//     the self-test fails, the slot is parked and that listener is served by
//     the accept loop instead (logged as a warning).
//
// The swap depends on that OnBoot ordering, so gnet is pinned at v2.9.7
// (TestGnetVersionPinned fails on a bump: re-check engine_unix.go's run()).
// The inherited fd is set O_NONBLOCK (gnet drains the accept queue until
// EAGAIN; the flag is on the shared file description, which every class
// treats as non-blocking anyway) and, for TCP, TCP_NODELAY, which accepted
// connections inherit. The worker never closes an inherited fd itself
// (the runtime closes its own reuse_port socket, see below).
//
// Several binds are served by one engine (one dummy each). Unix sockets are
// swapped in exactly like TCP ones, behind a TCP dummy: gnet must never own
// a unix listener for a path the arbiter bound, because its listener
// deletes the path when it opens and when it closes.
//
// # reuse_port
//
// The worker's own SO_REUSEPORT socket per TCP bind, made by the arbiter
// (arbiter/reuseport.go says why the arbiter and not gnet), is served
// exactly like a shared socket (by the accept loop, or swapped into
// gnet's slot); gnet.WithReusePort stays false. Its stop is
// the worker runtime's, as for every class (ownsocket.go here,
// workers/ownsocket.go).
//
// # Heartbeat, timeouts, cap, stop
//
// OnTick (every 250 ms) posts a probe to every loop that has had a
// connection and beats only if each loop ran its previous probe: OnTick
// itself runs on gnet's ticker goroutine, so beating there unconditionally
// would not prove the loops make progress. A loop stuck in a handler stops
// the heartbeat and the arbiter replaces the worker after `timeout`. The
// probe also sweeps the loop's connections: idle past keepalive (keepalive
// <= 0 disables keep-alive), a head (or inline body) arriving for longer
// than header_timeout, or a new connection silent for header_timeout, are
// closed. Above worker_connections a new connection gets a 503 and is
// closed.
//
// Graceful stop (ctx cancelled): stop accepting by closing the accept
// loops' listeners (dups) and parking every swapped listener slot (dup3
// of an idle loopback listener onto it: the shared socket stays
// open for the arbiter and siblings; an own reuse_port socket, already
// drained, is closed by the runtime, see above), let in-flight requests
// finish with Connection: close, give idle connections retire_idle_timeout
// for a last request (answered the same way) before closing them, then
// Engine.Stop, all within graceful_timeout.
//
// # Measured
//
// Requests per server CPU-second against bare gnet and the goroutine
// class, where the difference goes, and what was tried and ruled out:
// docs/evloop-measurements.md (rerun with bench/evloopratio/run.sh).
//
// # The auto class
//
// This package also registers "auto" (auto.go): evloop with a placement
// policy. evloop places every request by one setting (threads = 0: on the
// loop; > 0: on the pool); auto places each request by its route's
// measured handler time, kept by package route: a route starts pooled, is
// promoted to run inline after auto_samples consecutive handler times at
// or under auto_threshold, and is demoted back to the pool by three slow
// inline runs in a row (each within auto_samples of the one before) or, at
// once, by the loop watchdog: the ticker that finds a loop late (probeLoops)
// demotes the route running inline on it while it still blocks (lateLoop),
// so the other loops stop running it inline. A route is the ServeMux
// pattern when the application (workers.Env.App) is a ServeMux, else method
// and path; multiserve.Inline / Blocking pin one.
//
// auto lives here, not in a sibling package, because the policy is three
// branches in this package's dispatch (placeRoute; runInline and the pool
// job time the handler): a sibling would need an exported copy of the
// connection machinery (hconn, the loop sink, the pool with in-order
// writes) for nothing else. Everything else is evloop's, including its
// limits below. The route table goes to the worker's scoreboard slot once
// a second (publishRoutes) for the status page. Limits and when to prefer
// a fixed class: docs/choosing-a-worker-class.md.
//
// # Known gaps
//
//   - With evloop_gnet_acceptor on, an accept error stops the
//     worker (above). With the default accept loop, ENFILE, ENOBUFS and
//     ENOMEM take the same back-off as EMFILE but are not provoked by a
//     test (not safely, on a shared machine); EMFILE is, both from a burst
//     and from descriptors the worker uses for other things (test/chaos
//     TestFDBurst, TestAcceptErrorNotFromBurst).
//   - request_timeout answers 503 at the deadline (h1's timer writes it
//     through the loop's buffer while the handler holds the loop) but
//     cannot unblock an inline handler that ignores its context: the loop
//     stays stuck until it returns. Use threads > 0 for such handlers.
//   - In reuse_port mode, a worker that is killed (or cannot accept within
//     a second while stopping) loses what is queued on its own socket,
//     unless net.ipv4.tcp_migrate_req=1 lets the kernel move it.
//   - gnet closes a connection as soon as a read returns EOF, so a client
//     that half-closes (shutdown(SHUT_WR)) right after its request gets no
//     answer when the handler runs off the loop (inline handlers answer
//     within the same event, before the EOF is read).
package evloop
