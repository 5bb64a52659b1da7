// Package proc is the wire protocol between the arbiter and the worker
// processes it re-execs: environment variable names, the inherited fd layout
// and exit codes. Both sides import it so they cannot drift apart.
package proc

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Environment variables set by the arbiter on every worker it spawns.
const (
	EnvRole        = "MULTISERVE_ROLE"         // "worker" in a worker process
	EnvConfig      = "MULTISERVE_CONFIG"       // the resolved config.Config as JSON
	EnvArbiterPID  = "MULTISERVE_ARBITER_PID"  // pid the worker compares getppid() with
	EnvWorkerAge   = "MULTISERVE_WORKER_AGE"   // spawn sequence number (gunicorn's age)
	EnvListenFDs   = "MULTISERVE_LISTEN_FDS"   // number of listener fds from FDFirstListener
	EnvListenNames = "MULTISERVE_LISTEN_NAMES" // comma-separated bind names, in fd order
	EnvScoreboard  = "MULTISERVE_SCOREBOARD"   // "FD:SLOT": the scoreboard memfd and this worker's slot (absent: no slot)
	RoleWorker     = "worker"
)

// Inherited fd layout of a worker (os/exec ExtraFiles[i] arrives as fd 3+i).
const (
	FDHeartbeat     = 3 // unlinked temp file the worker touches; the arbiter fstat()s it
	FDStatus        = 4 // write end of a pipe: worker → arbiter status lines ("ready", "error ...", StatusRetire)
	FDParent        = 5 // read end of a pipe whose write end only the arbiter holds: EOF = arbiter gone
	FDFirstListener = 6 // listening sockets, EnvListenFDs of them
	// After the listeners, the scoreboard memfd when the worker has a slot;
	// its fd number travels in EnvScoreboard, so the layout above is unchanged.
)

// Exit codes shared by the arbiter and workers (the README's "Exit codes").
const (
	ExitOK        = 0 // clean stop
	ExitRuntime   = 1 // runtime failure (cannot bind, ...)
	ExitUsage     = 2 // bad usage or configuration
	ExitBootError = 3 // a worker could not boot (gunicorn WORKER_BOOT_ERROR)
	ExitAppError  = 4 // the application could not load (gunicorn APP_LOAD_ERROR)
)

// StatusRetire starts the status line ("retire <reason>") with which a
// worker asks to be retired (max_requests): the arbiter starts a
// replacement and, once it is ready, retires the worker with TERM, so the
// pool never serves with fewer workers. The worker serves on meanwhile.
const StatusRetire = "retire"

// SignalDrain tells a worker that the arbiter began a graceful stop
// (shutdown_delay, then the accept-queue phase): from then on every
// response carries Connection: close and its connection closes after it,
// so kept-alive clients move to new connections (elsewhere) before the
// workers get TERM. The worker keeps serving. The arbiter sends it only to
// workers that reported ready, which have its handler installed (USR2's
// default action would kill the process).
const SignalDrain = syscall.SIGUSR2

// SignalName is how logs name a signal: SIGTTIN, as operators type it in
// kill -TTIN, not the C library's description ("stopped (tty input)").
func SignalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(s); name != "" {
			return name
		}
	}
	return sig.String()
}
