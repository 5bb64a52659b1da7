package arbiter

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/multiserve/multiserve/internal/proc"
)

var handledSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
	syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1, syscall.SIGCHLD,
	syscall.SIGUSR2, syscall.SIGWINCH,
}

// quickTimeout is how long a quick stop (INT/QUIT) waits before SIGKILL.
const quickTimeout = time.Second

func (a *arbiter) handleSignal(sig os.Signal) {
	if sig != syscall.SIGCHLD {
		a.log.Info("signal received", "signal", proc.SignalName(sig))
	}
	switch sig {
	case syscall.SIGCHLD:
		a.reap()
		a.reapUpgrade()
		a.reapOrphans()
	case syscall.SIGTERM:
		a.beginStop(true, nil)
	case syscall.SIGINT, syscall.SIGQUIT:
		a.beginStop(false, nil)
	case syscall.SIGHUP:
		a.reload()
	case syscall.SIGTTIN:
		a.scale(+1)
	case syscall.SIGTTOU:
		a.scale(-1)
	case syscall.SIGUSR1:
		a.reopenLogs()
	case syscall.SIGWINCH:
		a.stopWorkers()
	case syscall.SIGUSR2:
		a.startUpgrade()
	}
}

// beginStop stops the arbiter: TERM for a graceful stop, QUIT for a quick
// one. A quick stop may take over a graceful one in progress. A graceful
// stop goes through the load-balancer-safe phases of drain.go first
// (shutdown_delay, then the accept queue is served) before the workers
// are TERMed.
func (a *arbiter) beginStop(graceful bool, err error) {
	if a.stop != nil {
		if graceful || !a.stop.graceful {
			return
		}
		a.stop.graceful = false
		a.stop.deadline = time.Now().Add(quickTimeout)
		a.stop.phase = phaseRetire
		a.retireAll(syscall.SIGQUIT)
		return
	}
	a.stop = &stopState{graceful: graceful, err: err}
	a.notify("STOPPING=1")
	if a.handedOver() {
		// The new arbiter serves on these sockets: keep its unix paths.
		for _, ln := range a.lns {
			ln.unlink = ""
		}
	}
	if !graceful {
		a.stop.deadline = time.Now().Add(min(a.gen.cfg.GracefulTimeout, quickTimeout))
		a.retireAll(syscall.SIGQUIT)
		return
	}
	a.beginDrain(time.Now())
}

// retireAll signals every worker to stop (phaseRetire).
func (a *arbiter) retireAll(sig syscall.Signal) {
	a.stop.phase = phaseRetire
	a.log.Info("stopping workers", "graceful", sig == syscall.SIGTERM, "workers", len(a.workers))
	for _, w := range a.workers {
		a.retire(w, sig)
	}
}

// enforceStop advances a stop through its phases and SIGKILLs whatever is
// left once the final deadline passed.
func (a *arbiter) enforceStop(now time.Time) {
	if a.stop.phase != phaseRetire {
		a.advanceDrain(now)
		return
	}
	if a.stop.killed || now.Before(a.stop.deadline) {
		return
	}
	a.stop.killed = true
	for _, w := range a.workers {
		if !w.killed && !w.exited {
			a.kill(w, "still running at the stop deadline")
		}
	}
}

// reload starts a new generation with the re-read config; checkReload
// retires the old one once every new worker is ready.
func (a *arbiter) reload() {
	if a.stop != nil {
		return
	}
	if a.pending != nil {
		a.log.Warn("reload already in progress, HUP ignored")
		return
	}
	cfg := a.gen.cfg
	if a.opt.Reload != nil {
		nc, err := a.opt.Reload()
		if err == nil {
			err = Check(nc) // what a start checks before binding, log files included
		}
		if err != nil {
			a.log.Error("reload: invalid configuration, nothing changed", "err", err)
			return
		}
		cfg = nc
	}
	g, err := a.newGeneration(cfg)
	if err == nil {
		g.lns, err = a.listenersFor(cfg, g.cred)
	}
	if err != nil {
		a.log.Error("reload: nothing changed", "err", err)
		return
	}
	a.pending = g
	a.notifyReloading()
	a.log.Info("reloading: starting a new generation", "generation", g.id, "workers", g.size, "class", cfg.WorkerClass)
	for i := range g.size {
		if err := a.spawn(g, &slot{id: i}); err != nil {
			a.abortReload(err.Error())
			return
		}
	}
}

// checkReload commits a pending generation once it is fully ready.
func (a *arbiter) checkReload() {
	g := a.pending
	if g == nil || !a.generationReady(g) {
		return
	}
	old := a.gen
	a.gen, a.pending = g, nil
	a.setTitle()
	a.vacant = nil
	a.nextSlot = g.size
	a.tick.Reset(tickInterval(g.cfg))
	for _, w := range a.workers {
		if w.gen != g {
			a.retire(w, syscall.SIGTERM)
		}
	}
	a.log.Info("reload complete: new generation serving, old one retiring",
		"generation", g.id, "workers", g.size, "old_generation", old.id)
	a.notify("READY=1")
}

// abortReload stops a pending generation that could not boot; the current
// one keeps serving untouched.
func (a *arbiter) abortReload(why string) {
	g := a.pending
	if g == nil {
		return
	}
	a.pending = nil
	a.log.Error("reload failed, the old generation keeps serving: "+why, "generation", g.id)
	a.notify("READY=1")
	for _, w := range a.workers {
		if w.gen == g {
			a.retire(w, syscall.SIGTERM)
		}
	}
}

// scale changes the target by one; TTOU retires the oldest worker.
func (a *arbiter) scale(delta int) {
	if a.stop != nil {
		return
	}
	if delta < 0 && a.gen.size <= 1 {
		// Scaling to zero is WINCH's job; TTOU keeps one worker.
		a.log.Warn("TTOU ignored: already at one worker")
		return
	}
	a.gen.size += delta
	a.log.Info(fmt.Sprintf("scaling to %d workers", a.gen.size), "workers", a.gen.size)
	if delta > 0 {
		return
	}
	var oldest *worker
	for _, w := range a.workers {
		if w.inPool(a.gen) && (oldest == nil || w.age < oldest.age) {
			oldest = w
		}
	}
	if oldest != nil {
		a.log.Info(fmt.Sprintf("retiring worker pid=%d age=%d", oldest.pid, oldest.age), "pid", oldest.pid, "age", oldest.age)
		a.retire(oldest, syscall.SIGTERM)
	}
}

// stopWorkers handles WINCH: every worker is retired gracefully and none is
// respawned; the arbiter keeps its sockets. TTIN or HUP start workers again.
func (a *arbiter) stopWorkers() {
	if a.stop != nil {
		return
	}
	a.abortReload("WINCH")
	a.gen.size = 0
	a.vacant = nil
	a.log.Info("WINCH: stopping all workers, the arbiter keeps running")
	for _, w := range a.workers {
		a.retire(w, syscall.SIGTERM)
	}
}
