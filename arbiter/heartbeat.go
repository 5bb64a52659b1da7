package arbiter

import (
	"fmt"
	"syscall"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"

	"github.com/multiserve/multiserve/internal/proc"
)

// abortGrace is how long a worker has to die of SIGABRT before SIGKILL.
const abortGrace = 3 * time.Second

// checkWorkers runs on every tick: boot_timeout for workers not yet ready,
// the heartbeat timeout for ready ones, SIGKILL for a worker that ignored
// SIGABRT or overstayed its graceful stop, and records of reaped workers
// whose status pipe never closed.
func (a *arbiter) checkWorkers() {
	now := time.Now()
	for _, w := range a.workers {
		cfg := w.gen.cfg
		switch {
		case w.exited:
			if now.Sub(w.exitedAt) > eofGrace {
				a.finish(w)
			}
		case w.killed:
		case !w.abortAt.IsZero():
			// SIGABRT makes a Go worker dump every goroutine's stack and
			// exit; give the dump time to be written (a queued tick can
			// come right after the one that sent SIGABRT), then SIGKILL.
			if now.Sub(w.abortAt) > abortGrace {
				a.kill(w, "did not exit after SIGABRT")
			}
		case w.retiring:
			if cfg.GracefulTimeout >= 0 && now.Sub(w.termAt) > cfg.GracefulTimeout+time.Second {
				a.kill(w, "still running after graceful_timeout")
			}
		case !w.ready:
			if cfg.BootTimeout > 0 && now.Sub(w.spawned) > cfg.BootTimeout {
				if w.errText == "" {
					w.errText = fmt.Sprintf("not ready within boot_timeout (%s)", cfg.BootTimeout)
				}
				a.kill(w, w.errText)
			}
		case silenceLimit(cfg) > 0:
			a.checkHeartbeat(w, now)
		}
	}
}

// requestTimeoutGrace is how long past request_timeout a single-thread worker may
// stay silent before it counts as stuck.
const requestTimeoutGrace = time.Second

// silenceLimit is how long a ready worker may be silent: timeout (0: no
// limit). A single-thread class's worker beats from its accept loop, so it is silent while
// it handles its one request; with request_timeout set, silence past
// request_timeout (plus a grace) means a handler that ignores its cancelled
// context holds the worker's only thread: it is killed and replaced like a
// timed-out one.
func silenceLimit(cfg *config.Config) time.Duration {
	limit := cfg.Timeout
	if cfg.RequestTimeout > 0 && workers.SingleThread(cfg.WorkerClass) {
		rt := cfg.RequestTimeout + requestTimeoutGrace
		if limit <= 0 || rt < limit {
			limit = rt
		}
	}
	return limit
}

// checkHeartbeat SIGABRTs a ready worker silent for longer than its limit.
// Silence counts from the later of the last beat and readiness, so a slow
// application load is judged by boot_timeout, not timeout.
func (a *arbiter) checkHeartbeat(w *worker, now time.Time) {
	silent, err := w.hb.Silence()
	if err != nil {
		a.log.Warn("heartbeat unreadable", "pid", w.pid, "err", err)
		return
	}
	silent = min(silent, now.Sub(w.readyAt))
	if silent <= silenceLimit(w.gen.cfg) {
		return
	}
	a.log.Error(fmt.Sprintf("worker %d timed out (was silent for %s), killing", w.pid, silent.Round(time.Millisecond)),
		"pid", w.pid, "age", w.age)
	a.logServing(w)
	w.errText = fmt.Sprintf("timed out after %s of silence", silent.Round(time.Millisecond))
	w.abortAt = now
	a.signal(w, syscall.SIGABRT)
}

func (a *arbiter) kill(w *worker, why string) {
	a.log.Error(fmt.Sprintf("worker pid=%d %s: SIGKILL", w.pid, why), "pid", w.pid, "age", w.age)
	w.killed = true
	a.signal(w, syscall.SIGKILL)
}

// signal sends sig to a worker that has not been reaped (so its pid cannot
// have been reused).
func (a *arbiter) signal(w *worker, sig syscall.Signal) {
	if w.exited {
		return
	}
	if err := syscall.Kill(w.pid, sig); err != nil {
		a.log.Warn("signal worker", "pid", w.pid, "signal", proc.SignalName(sig), "err", err)
	}
}

// retire asks a worker to stop (TERM graceful, QUIT quick); its exit is then
// expected and not respawned in its slot.
func (a *arbiter) retire(w *worker, sig syscall.Signal) {
	if !w.retiring {
		w.retiring, w.termAt = true, time.Now()
	}
	a.signal(w, sig)
}

// replace handles a worker's request to be retired (max_requests): it is
// taken out of the pool count, so maintain starts its replacement at
// once, and serves on until retireReplaced retires it.
func (a *arbiter) replace(w *worker, why string) {
	if w.retiring || w.replacing || a.stop != nil {
		return
	}
	w.replacing = true
	a.log.Info(fmt.Sprintf("worker pid=%d: %s; retiring it once its replacement is ready", w.pid, why),
		"pid", w.pid, "age", w.age)
	if w.gen == a.pending {
		// respawn keeps only the current generation at size: a booting
		// one gets its successor here, or the reload would never
		// complete.
		if err := a.spawn(w.gen, w.slot); err != nil {
			a.abortReload(err.Error())
		}
	}
}

// retireReplaced retires (TERM) the workers waiting for a replacement once
// the current generation is at full strength and ready without them. An
// old generation's ones go with their generation.
func (a *arbiter) retireReplaced() {
	ready := a.generationReady(a.gen)
	for _, w := range a.workers {
		if w.replacing && !w.retiring && (ready || w.gen != a.gen && w.gen != a.pending) {
			a.retire(w, syscall.SIGTERM)
		}
	}
}
