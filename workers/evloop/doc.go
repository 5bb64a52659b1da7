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
// and handed to the handler as a bytes.Reader.
//
// threads > 0: every handler runs on a bounded goroutine pool of that size
// (goroutines start on demand and stay parked until the worker stops);
// responses go back with AsyncWrite. Note that the shared default of
// threads is 1, which for this class means a pool of one: set threads = 0
// for inline handlers, or a large pool (e.g. 1000) for handlers that wait
// on IO.
//
// # Bodies and flow control
//
// A request body handled off the loop streams through h1.BodyPipe (64 KiB):
// the loop pushes what the pipe takes and leaves the rest in gnet's inbound
// buffer; the reader wakes the connection (Conn.Wake) when it drained. gnet
// v2 has no way to stop reading a socket, so a client that uploads faster
// than the handler reads accumulates in gnet's inbound buffer (bounded by
// limit_request_body when set) rather than in the kernel; the handler still
// sees a streaming body. When a handler returns without reading its body to
// the end, the loop reads and drops the rest (up to 256 KiB, within
// header_timeout) before the response is committed, so that a framing error
// in it still gets its 400 and the connection can stay open; beyond that,
// or when a 100 Continue was never sent, the connection closes after the
// response.
//
// Responses of inline handlers are batched per event in one buffer per loop
// and handed to gnet every 64 KiB (one write syscall for all pipelined
// responses of an event); what the socket does not take waits in gnet's
// outbound buffer, so a large inline response may sit there whole. Off the
// loop, a response goes in 64 KiB AsyncWrite chunks with one chunk in flight,
// and the handler waits while gnet's outbound buffer holds over 1 MiB.
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
// medians of the per-round ratios. The machine was shared with other
// benchmarks (load average 4-7): per-round ratios spread +-30%, so only
// medians over many rounds mean anything. Before = f14b5ab, after = the
// h1 changes (c698fa0, 2 runs) and dd2af4c (1 run), each against the
// before binary in the same run (`BASE_REV=f14b5ab bench/evloopratio/run.sh 12 3`):
//
//	                        before        after
//	evloop / bare gnet      0.66-0.75     0.72-0.97  (3 runs, 34 rounds; 0.91 at dd2af4c)
//	evloop / goroutine      1.03-1.34     1.23-1.30  (h1 got cheaper for goroutine too)
//
// The split explains the gap: system time per request is the same for all
// three servers (read, write and epoll_wait once per event each, the
// loopback delivery to wrk included; 10-14 us here), while user time is
// about 1.3 us for bare gnet, 5.7 -> 5.1 us for evloop (medians of the
// dd2af4c run; 4.5 -> 3.6 us over bare gnet in a quieter run) and 9 us
// for the goroutine class. A profile of the worker after the changes (perf, same load):
// 73% kernel, 27% user; request parsing and building about 6% (Next 2%,
// Request 4%), the handler call 9% (of which the scoreboard middleware
// 4%, apps.hello 1.4%, response head + Finish 2.7%), gnet and the Go
// runtime's syscall path and sysmon (5-7%, as in bare gnet) the rest.
// What got cheaper: Request allocates twice instead of five times
// (no WithContext copy, Request+URL+values+short head in one block,
// origin-form targets without url.Parse), the response head takes one map
// pass and one monotonic clock read, and idle connections give their
// parser back so a loop reuses a cache-hot one. With the cost left spread
// thin (no item above 4% of the worker) and mostly cache misses on cold
// data between kernel round trips, 0.9x bare gnet is at the edge of what
// an engine that builds a real *http.Request per request can reach on
// this machine; the 1.5x-over-goroutine target is not met (1.2-1.3x):
// both classes share h1 and the syscalls, so the goroutine class's extra
// cost (netpoller wake-ups, 4 us user per request) is all that separates
// them. sim?io=10ms with wrk -t2 -c1000, 3 rounds: evloop with
// threads=1000 reached 1.4-3.4x the requests/s of plain net/http
// (bench/peers/nethttp); inline (threads=0, one loop) 85 req/s, the loops
// / 10 ms cap.
//
// # Known gaps
//
//   - An accept error other than EAGAIN/EINTR/ECONNABORTED (EMFILE) makes
//     gnet's acceptor stop the engine; Serve then returns an error and the
//     arbiter respawns the worker. gnet drains the accept queue before
//     OnOpen sees a connection, so no cap there can prevent it. What the
//     worker does instead: at start, when RLIMIT_NOFILE minus the open
//     descriptors (and a reserve of 32) cannot cover worker_connections,
//     it logs a warning and serves every listener through Engine.Register,
//     whose accept loop is a Go one that backs off on EMFILE (logged at
//     most every 10 s) like the other classes. With a sufficient limit the
//     fd swap is used and the gap remains for descriptors exhausted by
//     something else (files the application opens).
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
//   - gnet v2 cannot pause reading a socket (see Bodies and flow control).
package evloop
