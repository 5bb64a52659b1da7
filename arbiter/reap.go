package arbiter

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/proc"
)

// exitStatus is how a worker ended.
type exitStatus struct {
	code   int // exit code, -1 when killed by a signal
	signal unix.Signal
}

func (s exitStatus) String() string {
	if s.code < 0 {
		return "signal=" + unix.SignalName(s.signal)
	}
	return fmt.Sprintf("code=%d", s.code)
}

// eofGrace bounds how long a reaped worker's record waits for its status
// pipe's EOF (which carries its last "error" line) before it is finished
// anyway: a grandchild could hold the pipe open forever.
const eofGrace = 2 * time.Second

// reap collects every exited worker. SIGCHLD coalesces, so every worker is
// polled; only the arbiter's own workers are waited for, never wait4(-1), so
// a program embedding the arbiter keeps its other children's statuses.
func (a *arbiter) reap() {
	for pid, w := range a.workers {
		if w.exited {
			continue
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		for errors.Is(err, unix.EINTR) {
			got, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		if err != nil || got != pid {
			continue
		}
		w.exited, w.exitedAt = true, time.Now()
		w.ws = exitStatus{code: -1}
		if ws.Exited() {
			w.ws.code = ws.ExitStatus()
		} else {
			w.ws.signal = ws.Signal()
		}
		if w.eof {
			a.finish(w)
		}
	}
}

// handleEvent records a worker's status line.
func (a *arbiter) handleEvent(ev event) {
	w := a.workers[ev.pid]
	if w == nil {
		return
	}
	switch {
	case ev.eof:
		w.eof = true
		if w.exited {
			a.finish(w)
		}
	case ev.line == "ready":
		if !w.ready {
			w.ready, w.readyAt = true, time.Now()
			a.log.Debug("worker ready", "pid", w.pid, "age", w.age)
			a.tellDraining(w)
		}
	case strings.HasPrefix(ev.line, proc.StatusRetire+" "):
		a.replace(w, strings.TrimPrefix(ev.line, proc.StatusRetire+" "))
	case strings.HasPrefix(ev.line, "error "):
		// Reported with the worker's exit line (and in Run's error at
		// start-up), so here only at debug level.
		w.errText = strings.TrimPrefix(ev.line, "error ")
		a.log.Debug(fmt.Sprintf("worker pid=%d: %s", w.pid, w.errText), "pid", w.pid, "age", w.age)
	default:
		a.log.Debug("worker status", "pid", w.pid, "line", ev.line)
	}
}

// finish forgets an exited worker and decides what its exit means.
func (a *arbiter) finish(w *worker) {
	delete(a.workers, w.pid)
	a.observeExit(w)
	w.hb.Close()
	w.status.Close()
	if w.logSock != nil {
		w.logSock.Close()
	}
	w.proc.Release()
	msg := fmt.Sprintf("worker pid=%d exited %s", w.pid, w.ws)
	attrs := []any{"pid", w.pid, "age", w.age, "exit", w.ws.String()}
	if w.errText != "" {
		attrs = append(attrs, "error", w.errText)
	}
	switch {
	case a.stop != nil || w.retiring || w.replacing:
		a.log.Info(msg, attrs...) // a replacing one's successor is started
	case !a.booted && w.gen == a.gen:
		a.log.Error(msg, attrs...)
		a.bootFailed(w)
	case w.gen == a.pending:
		a.log.Error(msg, attrs...)
		a.abortReload(fmt.Sprintf("new worker pid=%d %s", w.pid, w.reason()))
	case w.gen != a.gen:
		a.log.Info(msg, attrs...) // an old generation's straggler
	case w.ws.code == 0 && w.ready:
		// max_requests recycle or a clean stop. (Exiting 0 without ever
		// being ready counts as a crash: no spawn loop without back-off.)
		a.log.Info(msg, attrs...)
		w.slot.failures = 0
		w.slot.next = time.Time{}
		a.vacate(w.slot)
	default:
		a.workerCrashed(w, msg, attrs)
	}
}

// stableAfter: a worker that served this long before crashing resets its
// slot's back-off, so an occasional crash (an OOM kill, a kill -9) is
// respawned at once. It is short on purpose: back-off exists to stop a
// worker that dies as soon as it starts from becoming a fork bomb, and one
// that lived a second already bounds the respawn rate; a longer window let
// a storm of kills on healthy workers push every slot into seconds of
// back-off with nothing serving (test/chaos TestKillWorkerStorm).
const stableAfter = time.Second

func (a *arbiter) workerCrashed(w *worker, msg string, attrs []any) {
	now := time.Now()
	if w.ready && now.Sub(w.readyAt) > stableAfter {
		w.slot.failures = 0
	}
	a.crashed(w.slot, now)
	attrs = append(attrs, "crashes", w.slot.failures, "respawn_in", w.slot.next.Sub(now).Round(time.Millisecond).String())
	a.log.Error(msg+", respawning", attrs...)
}

// bootFailed stops the arbiter at start-up with the worker's own error:
// retrying a worker that cannot boot would only make a fork bomb.
func (a *arbiter) bootFailed(w *worker) {
	code := proc.ExitBootError
	if w.ws.code == proc.ExitAppError {
		code = proc.ExitAppError
	}
	a.beginStop(false, withCode(code, fmt.Errorf("arbiter: worker pid=%d failed to boot: %s", w.pid, w.reason())))
}

// reason is the best explanation of a worker's exit: its own error line, or
// how it ended.
func (w *worker) reason() string {
	if w.errText != "" {
		return w.errText
	}
	if !w.exited {
		return "still running"
	}
	return "exited " + w.ws.String()
}
