// Package arbiter is multiserve's master process: it binds every listening
// socket, starts worker processes by re-executing its own binary, and then
// supervises them. It never serves a request.
//
// # Process model
//
//	arbiter (this package, one process)
//	  │  binds --bind sockets with raw syscalls (blocking, never in Go's
//	  │  netpoller, so the arbiter costs no CPU while workers serve)
//	  │
//	  ├─ re-exec self, MULTISERVE_ROLE=worker ──▶ worker (workers.Main)
//	  │     fd 3  heartbeat file (unlinked; the worker sets its mtime to a
//	  │           CLOCK_MONOTONIC stamp, the arbiter fstat()s it)
//	  │     fd 4  status pipe, worker → arbiter: "ready", "error <text>", "retire <reason>"
//	  │     fd 5  parent pipe: EOF tells the worker the arbiter is gone
//	  │     fd 6… the listening sockets, in --bind order
//	  │     fd …  then the scoreboard memfd (shared memory, one slot per
//	  │           worker; MULTISERVE_SCOREBOARD=fd:slot names it)
//	  │     env   internal/proc Spec: age, arbiter pid, listener names,
//	  │           the resolved config as JSON (workers never re-read files)
//	  └─ … one per worker; each worker accepts on the shared sockets
//
// The main loop is one select over signals (signal.Notify), worker status
// lines, a ticker for heartbeat/boot/shutdown deadlines and a timer for
// respawn back-off. Nothing polls busily.
//
// # Signals
//
//	TERM      graceful, load-balancer-safe stop (drain.go): tell every
//	          worker to drain (USR2, proc.SignalDrain: every response now
//	          closes its connection) and keep serving for shutdown_delay
//	          while reporting not ready (stats /readyz); then refuse new
//	          connections at the sockets (TCP: a filter that drops SYNs
//	          only, so handshakes under way still complete and are served;
//	          unix: the path is unlinked) and let the workers serve what is
//	          already in the accept queues; then TERM every
//	          worker (they stop accepting and finish in-flight requests with
//	          Connection: close), SIGKILL what is left after
//	          graceful_timeout, close the sockets last, exit 0. Cancelling
//	          Run's ctx does the same.
//	INT, QUIT quick stop: QUIT every worker, SIGKILL after a second, exit 0.
//	HUP       reload: call Options.Reload (an invalid config is logged and
//	          changes nothing), start a whole new generation of workers, and
//	          once every one of them is ready TERM the old generation. If the
//	          new generation cannot boot, it is stopped and the old keeps
//	          serving.
//	TTIN      one worker more.
//	TTOU      one worker fewer (the oldest is retired gracefully; never below 1).
//	USR1      reopen log files (Options.ReopenLogs) and forward USR1 to workers.
//	CHLD      reap exited workers and respawn to the configured count.
//	WINCH     gracefully stop every worker, keep the arbiter and its sockets
//	          (TTIN or HUP start workers again).
//	USR2      binary upgrade (upgrade.go): move the pidfile to
//	          PIDFILE.oldbin and start the executable again as a new arbiter
//	          that inherits the listening sockets (EnvUpgradeFDs) instead of
//	          binding. Both serve until the old one gets WINCH (its workers
//	          stop) and TERM/QUIT. If the new one exits, the old one moves
//	          its pidfile back and keeps serving.
//
// # Operations
//
// systemd.go: socket activation (LISTEN_FDS) replaces --bind; sd_notify
// READY/RELOADING/STOPPING/MAINPID/WATCHDOG when NOTIFY_SOCKET is set.
// reuseport.go: reuse_port gives each worker its own SO_REUSEPORT socket.
// privileges.go: user/group for the workers, umask before binding.
// docs/deploy.md walks through all of it with deploy/'s unit files.
//
// # Failures
//
// At start-up a worker that exits before it is ready stops the arbiter with
// that worker's own error text and exit code 3 (boot error) or 4 (the
// application could not load); see ExitCode. After a successful start a
// crashing worker is respawned with exponential back-off per worker slot,
// logged at error level, while the healthy workers keep serving. A worker
// silent for longer than timeout gets SIGABRT (a Go worker prints every
// goroutine's stack) and SIGKILL if it is still there 3 seconds later.
//
// # Observability
//
// The arbiter creates the scoreboard (package scoreboard) that workers
// write per request, serves the stats endpoint (package stats) on
// stats_bind and the control socket (package control) on control_socket;
// both reach the arbiter's state through calls run on the main loop
// (observe.go). It counts restarts by reason and, when it kills a worker
// for silence, logs the request the worker was serving. See
// docs/observability.md.
package arbiter
