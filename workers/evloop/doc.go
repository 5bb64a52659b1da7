// Package evloop is the "evloop" worker class: HTTP/1.1 on gnet v2 epoll
// event loops with non-blocking IO, parsed by the shared h1 engine.
//
// # Model
//
// One gnet engine per worker process with evloop_loops event loops (0: one
// per CPU the worker may use, runtime.GOMAXPROCS(0), which the arbiter sets
// per worker). gnet's ingress loop accepts and hands connections round-robin
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
// r (e.g. hand it to a goroutine). With the setting evloop_reuse_requests
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
//     the loop waits in its writes while more than the bound is queued; an
//     inline handler's writes wait too, writing the queue out as the socket
//     takes it, which holds its loop meanwhile (threads > 0 for large
//     responses to slow clients). The heartbeat counts a loop that moves
//     bytes as alive.
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
// # Listeners: why the fd swap
//
// gnet v2.9.7 binds its listeners from address strings and has no public
// way to adopt an inherited listening fd. Measured options (the note
// ../shared/notes/gnet-inherited-fd.md, 2 vCPUs, server on CPU 0, wrk -c64
// on CPU 1): Go accept + Engine.Register (public API) reaches 0.68x native
// gnet's rate with Connection: close and about 0.3-0.6x its requests per
// server CPU-second once the arbiter is quiet; raw accept4 + FileConn is
// worse still (0.35-0.55x); swapping the inherited socket into gnet's own
// listener slot reaches the native rate (1.07x) and efficiency (about 1x).
// Keep-alive traffic does not separate them (every variant runs the same
// loop code once a connection is registered). This package re-measured it
// with the multiserve binary against bench/baseline/gnetbare, hello, 3
// rounds of `taskset -c 1 wrk -t1 -c64 -d5s -H 'Connection: close'` with
// each server under `taskset -c 0` (machine shared with other load, load
// average 5-8): evloop / bare gnet = 1.03, 0.95, 0.96 requests per server
// CPU-second. So the swap is used in every mode (shared sockets and reuse_port):
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
//     a Go accept loop + Engine.Register instead (logged as a warning).
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
// reuse_port = true: the arbiter gives the worker its own SO_REUSEPORT
// listening socket for every TCP bind (unix, fd:// and systemd sockets stay
// shared, as for every class), and it is swapped into gnet's slot exactly
// like a shared socket: one listener per bind per worker, accepted by
// gnet's ingress loop and handed round-robin to all the worker's loops;
// gnet.WithReusePort stays false. Issue 4 had gnet bind its own
// SO_REUSEPORT listener per loop in this mode (bare gnet's native path),
// which cannot honour what the arbiter does: with port 0 each worker got a
// different ephemeral port; with user= the worker runs unprivileged when
// gnet binds, so a privileged port fails; and the kernel admits a socket
// to a SO_REUSEPORT group only from the uid that made it (the arbiter's
// reservation, root's). The arbiter's socket, swapped in, keeps gnet's own
// accept loop on the hot path, so nothing is lost for it.
//
// What differs is the stop. Closing its own socket is how a worker leaves
// the group (a socket left open keeps getting connections that nobody
// accepts until the process exits, then they are reset), and closing it
// resets what is still in its accept queue. The worker runtime handles
// that for every class (workers/ownsocket.go): before ctx is cancelled it
// attaches a socket filter that drops new SYNs (a client retransmits its
// SYN after about a second, and by then the kernel hashes it to a
// sibling) while gnet keeps accepting, until the accept queue has stayed
// empty for 100 ms (handshakes under way complete into it: their final
// ACK passes the filter). evloop then parks the slot and calls
// Env.ListenersDone, on which the runtime closes the inherited fd, the
// socket's last descriptor here (ownsocket.go).
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
// Graceful stop (ctx cancelled): stop accepting by parking every listener
// slot (dup3 of an idle loopback listener onto it: the shared socket stays
// open for the arbiter and siblings; an own reuse_port socket, already
// drained, is closed by the runtime, see above), close idle connections at
// once, let in-flight requests finish with Connection: close, then
// Engine.Stop, all within graceful_timeout.
//
// # Measured (hello and sim, one worker, 2 vCPUs shared with other load)
//
// Keep-alive hello as issue 4 sets it, with bench/evloopratio/run.sh:
// servers under `taskset -c 0` (one loop), `taskset -c 1 wrk -t1 -c64`,
// requests per server CPU-second from /proc utime+stime of every process
// of the server's session (arbiter included), interleaved rounds of 3 s,
// medians of the per-round ratios. The machine is shared with other
// sessions' tests (load average 2.5-7 during these runs): per-round ratios
// spread from 0.6x to 1.5x of the median, so only medians over many rounds
// mean anything, and only against a baseline from the same run.
//
// Session 1 (before = f14b5ab, after = c698fa0 and dd2af4c, `BASE_REV=f14b5ab
// bench/evloopratio/run.sh 12 3`, 3 runs): evloop / bare gnet 0.66-0.75 ->
// 0.72-0.97, evloop / goroutine 1.03-1.34 -> 1.23-1.30.
//
// Session 2 (this package's per-loop reuse and h1's request chunks, HEAD
// c381b66 and 280938d, against 46c6700 as evloop-base in the same rounds:
// `BASE_REV=46c6700 CONFIGS="evloop evloop-reuse goroutine gnet"
// bench/evloopratio/run.sh 15 3`, three runs of 12, 15 and 15 rounds;
// evloop-reuse is MULTISERVE_EVLOOP_REUSE_REQUESTS=1). Medians per run, then
// over the 42 rounds pooled:
//
//	                       evloop-base        evloop                    evloop-reuse
//	/ bare gnet            0.72 0.70 0.71     0.68 0.78 0.71 -> 0.72    0.83 0.75 0.70 -> 0.73
//	/ goroutine            1.28 1.19 1.27     1.21 1.26 1.20 -> 1.21    1.33 1.29 1.21 -> 1.28
//	/ evloop-base          1                  1.05 1.11 0.98 -> 1.01    1.15 1.08 0.99 -> 1.06
//	user us/request        5.38               5.16                      4.41   (gnet 1.25, goroutine 8.5)
//	sys us/request         13.2               13.5                      13.5   (gnet 11.9, goroutine 14.3)
//
// So the default path's changes are within the noise (user time per
// request 0.99x evloop-base's, pooled), and the recycled Request takes a
// fifth off the user time (0.79x) for about 6% more requests per CPU-second.
// A fourth run (15 rounds) after the Header map joined the recycling
// (7554e9b, evloop-reuse now allocation-free): evloop-reuse / bare gnet
// 0.77, / goroutine 1.48, / evloop-base 1.03, user 3.63 us per request
// against evloop-base's 5.17 (0.70x); evloop / bare gnet 0.76, / goroutine
// 1.38, / evloop-base 1.04 (user 4.54 us); sys per request 12.4-12.9 us
// for all three evloop builds, 11.2 for bare gnet.
//
// Neither target is met: 0.9x bare gnet and 1.5x the goroutine class per
// server CPU-second. The 1.5x would need evloop's whole cost at bare
// gnet's (goroutine costs about 1.5-1.7x bare gnet here), which no engine
// that builds a real *http.Request and runs middleware can have.
//
// Where the difference to bare gnet goes:
//
//   - System time is not the same, contrary to session 1's note: evloop's
//     is 1-2 us per request above bare gnet's in most rounds, though it
//     makes fewer syscalls per request (1.96 vs 2.5, perf stat
//     raw_syscalls: a slower server finds more connections ready per
//     epoll_wait). It has more context switches (0.13-0.19 vs 0.09-0.11
//     per request: GC workers and M hand-offs) and the kernel runs with
//     colder caches: every request touched fresh memory (the Request
//     block, cycling through the 4 MB GC heap). A trial build that also
//     recycled the Header map (0 allocations; unsafe for a handler that
//     keeps r.Header, so not kept) reached 0.87x bare gnet against 0.68x
//     for evloop in the same 10 rounds, sys 10.6 vs 12.6 us per request:
//     fresh memory per request is the largest single cost left.
//   - Allocation and GC: 2 allocations per request in session 2 (Request+URL
//     block 448 B, Header map 48 B; 548 B with the chunked strings, 624 B
//     before); 1 since session 3, which cuts the block from a 4 KB slab of
//     9 (h1's newBlock); 0 with evloop_reuse_requests
//     (BenchmarkInlineHello and BenchmarkInlineHelloReuse).
//     GODEBUG=gctrace=1: one GC cycle per ~5000 requests (~0 live heap,
//     4 MB goal), ~1 ms CPU each, 0.6 ms of it assist on the loop.
//   - User time (perf record -g on the worker, evloop_reuse_requests, hello):
//     26% of the worker's samples; gnet and the Go runtime (syscall
//     entry/exit, sysmon: as in bare gnet) about 11%; the middleware the
//     worker installs 4.8% (scoreboard 2%; proxyheaders 2.3%: netallow's
//     ContainsString parses r.RemoteAddr every request, 1.1%, and scheme
//     ranges over the secure-headers map, 1.2%, random start included);
//     h1 and this package about 9%: Request build 3% (the Header map's
//     allocation half of it), parse 2.4%, Response finish/commit 3.1%
//     (range over the handler's header map 1.2%), apps.hello itself 1.5%,
//     OnTraffic's own bookkeeping 1.5%. No item is above 3%.
//
// What session 2 changed (per request, inline): one Response per loop
// (Recycle) instead of sync.Pool get/put; a per-loop parser free list
// instead of h1's sync.Pool and limits recomputed; no finishRequest
// wrapper (its graceful-stop close is Response.CloseWhen); the observer
// (scoreboard) is told of a connection reading only when a head stays
// incomplete past an event (two shared-memory atomics saved); the small
// body reader is the loop's; h1's Request takes the head bytes and value
// slots from append-only chunks; and the opt-in recycled Request. What is
// left to try: make the Request recycling the default (a contract change:
// see "Where handlers run"), cache proxyheaders' trust decision per
// remote host and keep the secure headers in a slice (other packages),
// and the scoreboard middleware's own cost (another session's work).
//
// Session 3 (64f8f34, `CONFIGS="evloop evloop-reuse goroutine gnet"
// BASE_REV=3aae193 bench/evloopratio/run.sh 15 3`, at nice -10): evloop /
// bare gnet 0.75, / goroutine 1.23; evloop-reuse 0.80 and 1.37; user
// 4.44 / 3.61 us per request (gnet 1.16, goroutine 8.42), sys 12.2-16.0
// for all. Bare gnet itself was 1.49-1.86x goroutine across the session's
// runs, so 1.5x goroutine asks for 0.81-1.01x bare gnet. At 0.9x bare
// gnet the whole HTTP layer (parse, Request, handler call, response head,
// middleware) has about 1.5 us per request; the default path takes 1.7-1.8
// us in process (BenchmarkInlineHello, no kernel, hot caches). Checked and
// ruled out: GOMAXPROCS=2 (so sysmon never retakes a loop's P in
// epoll_wait: 0.99x), the arbiter's CPU (0 ticks in 5 s), per-connection
// state (in process, 1 and 256 connections cost the same per request; the
// drop at c=256 is kernel and cache side). The syscalls per request are
// bare gnet's: one read, one write (strace -c).
//
// sim?io=10ms with wrk -t2 -c1000, 3 rounds (session 1): evloop with
// threads=1000 reached 1.4-3.4x the requests/s of plain net/http
// (bench/peers/nethttp); inline (threads=0, one loop) 85 req/s, the loops
// / 10 ms cap.
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
//   - An accept error other than EAGAIN/EINTR/ECONNABORTED (EMFILE) makes
//     gnet's acceptor stop the engine; Serve then returns an error and the
//     arbiter respawns the worker. gnet drains the accept queue before
//     OnOpen sees a connection, so no cap there can prevent it. What the
//     worker does instead: at start, when RLIMIT_NOFILE minus the open
//     descriptors (and a reserve of 32) cannot cover worker_connections
//     plus a full accept queue (backlog, as net.core.somaxconn caps it),
//     it logs a warning and serves every listener through Engine.Register,
//     whose accept loop is a Go one that backs off on EMFILE (logged at
//     most every 10 s) like the other classes. With a sufficient limit the
//     fd swap is used and the gap remains for descriptors exhausted by
//     something else (files the application opens) and for the
//     system-wide ENFILE, ENOBUFS and ENOMEM.
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
