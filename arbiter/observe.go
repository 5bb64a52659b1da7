package arbiter

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/control"
	"github.com/multiserve/multiserve/scoreboard"
	"github.com/multiserve/multiserve/stats"
)

// EnvNoScoreboard, set to 1 in the arbiter's environment, runs the workers
// without a scoreboard (for measuring its overhead; the stats endpoint then
// shows no per-request figures and timeouts name no request).
const EnvNoScoreboard = "MULTISERVE_NO_SCOREBOARD"

// observe is the arbiter's observability: the scoreboard it shares with
// its workers, the stats endpoint, the control socket and restart counts.
// The endpoint and the socket serve on their own goroutines; they reach
// the arbiter's state only through calls, run by the loop.
type observe struct {
	board    *scoreboard.Board
	slots    map[int]int // worker pid → scoreboard slot
	stats    *stats.Server
	ctl      *control.Server
	restarts stats.Restarts
	started  time.Time
	calls    chan func()
	quit     chan struct{}  // closed when the endpoints stop: calls fail fast
	mu       sync.Mutex     // orders an endpoint retry's success with quit
	wg       sync.WaitGroup // endpoint retries
}

// errStopped answers a call once the arbiter is shutting its endpoints.
var errStopped = errors.New("arbiter: stopped")

// startObserve creates the scoreboard and starts the configured endpoints.
func (a *arbiter) startObserve(cfg *config.Config) {
	o := &a.obs
	o.slots, o.restarts, o.started = map[int]int{}, stats.Restarts{}, time.Now()
	o.calls, o.quit = make(chan func()), make(chan struct{})
	if os.Getenv(EnvNoScoreboard) != "1" {
		b, err := scoreboard.Create(scoreboard.Capacity(cfg.Workers))
		if err != nil {
			a.log.Warn("running without a scoreboard", "err", err)
		}
		o.board = b
	}
	// Observability must not stop serving: an endpoint that cannot listen
	// (its port taken, or still held by the old arbiter during a binary
	// upgrade) is logged and retried in the background until it can.
	if cfg.StatsBind != "" {
		a.startEndpoint("stats endpoint", func() error {
			s, err := stats.Start(cfg.StatsBind, a, o.board, a.log)
			if err == nil {
				o.keep(func() { o.stats = s }, func() { s.Close() })
			}
			return err
		})
	}
	if cfg.ControlSocket != "" {
		a.startEndpoint("control socket", func() error {
			c, err := control.Listen(cfg.ControlSocket, a, o.board, a.log)
			if err == nil {
				o.keep(func() { o.ctl = c }, func() { c.Close() })
			}
			return err
		})
	}
}

// endpointRetry is how often an endpoint that could not listen retries.
const endpointRetry = 2 * time.Second

// startEndpoint runs start now and, if it fails, every endpointRetry on
// its own goroutine until it succeeds or the arbiter stops.
func (a *arbiter) startEndpoint(what string, start func() error) {
	err := start()
	if err == nil {
		return
	}
	a.log.Error(what+" not listening, retrying every "+endpointRetry.String(), "err", err)
	o := &a.obs
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		t := time.NewTicker(endpointRetry)
		defer t.Stop()
		for {
			select {
			case <-o.quit:
				return
			case <-t.C:
				if start() == nil {
					return
				}
			}
		}
	}()
}

// keep installs a started endpoint with set, or closes it with drop when
// the endpoints are already stopping.
func (o *observe) keep(set, drop func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.quit:
		drop()
	default:
		set()
	}
}

// stopObserve closes the endpoints and the scoreboard (in cleanup).
func (a *arbiter) stopObserve() {
	o := &a.obs
	if o.quit == nil {
		return
	}
	select {
	case <-o.quit:
		return
	default:
	}
	o.mu.Lock()
	close(o.quit)
	o.mu.Unlock()
	o.wg.Wait() // no retry left running
	o.stats.Close()
	o.ctl.Close()
	o.board.Close()
}

// slotFor assigns a scoreboard slot to a worker about to be spawned and
// returns the board's file, for the worker's ExtraFiles. With no board or
// no free slot the worker runs without one (idx -1, f nil).
func (a *arbiter) slotFor() (idx int, f *os.File) {
	b := a.obs.board
	if b == nil {
		return -1, nil
	}
	idx, ok := b.Assign(0)
	if !ok {
		a.log.Warn(fmt.Sprintf("scoreboard full (%d slots): worker runs without a slot", b.Len()))
		return -1, nil
	}
	return idx, b.File()
}

// slotStarted records which worker holds slot idx.
func (a *arbiter) slotStarted(pid, idx int) {
	if idx >= 0 {
		a.obs.slots[pid] = idx
		a.obs.board.SetPID(idx, pid)
	}
}

// slotReleased frees a slot whose worker could not start.
func (a *arbiter) slotReleased(idx int, class string) {
	if idx >= 0 {
		a.obs.board.Retire(idx, class)
	}
}

// observeExit folds an exited worker's counters into its class's totals,
// frees its slot, and counts the restart when the arbiter did not ask for
// the exit. Call it from finish, before the exit is acted on.
func (a *arbiter) observeExit(w *worker) {
	if idx, ok := a.obs.slots[w.pid]; ok {
		delete(a.obs.slots, w.pid)
		a.obs.board.Retire(idx, w.gen.cfg.WorkerClass)
	}
	if a.stop != nil || w.retiring && !w.replacing || !a.booted || w.gen != a.gen {
		return
	}
	a.obs.restarts[restartReason(w)]++
}

func restartReason(w *worker) string {
	switch {
	case !w.abortAt.IsZero():
		return stats.ReasonTimeout
	case w.replacing && w.ws.code == 0:
		return stats.ReasonMaxRequests
	case w.killed && !w.ready:
		return stats.ReasonBootTimeout
	case w.ws.code == 0 && w.ready:
		return stats.ReasonMaxRequests
	case w.ws.code < 0 && w.ws.signal == syscall.SIGKILL && !w.killed:
		return stats.ReasonKilled
	}
	return stats.ReasonCrash
}

// logServing is the timeout attribution: which request a worker being
// killed for silence was serving, from its scoreboard slot.
func (a *arbiter) logServing(w *worker) {
	idx, ok := a.obs.slots[w.pid]
	if !ok {
		return
	}
	in := a.obs.board.Slot(idx).Info()
	if in.PID != w.pid || in.Current.Start == 0 {
		a.log.Error(fmt.Sprintf("worker %d timed out with no request on record", w.pid), "pid", w.pid)
		return
	}
	what := "was serving"
	if in.InFlight == 0 {
		what = "was idle; its last request was"
	}
	r := in.Current
	a.log.Error(fmt.Sprintf("worker %d timed out: %s %s %s from %s, started %s ago", w.pid, what, r.Method, r.Path, r.Client, r.Age().Round(time.Millisecond)),
		"pid", w.pid, "method", r.Method, "path", r.Path, "client", r.Client,
		"request_age", r.Age().Round(time.Millisecond).String(), "in_flight", in.InFlight)
}

// call runs f on the loop goroutine and waits for it.
func (a *arbiter) call(f func()) error {
	done := make(chan struct{})
	select {
	case a.obs.calls <- func() { f(); close(done) }:
	case <-a.obs.quit:
		return errStopped
	case <-a.done:
		return errStopped
	}
	<-done
	return nil
}

// Snapshot implements stats.Source.
func (a *arbiter) Snapshot() (stats.Snapshot, error) {
	var s stats.Snapshot
	err := a.call(func() {
		s = stats.Snapshot{
			ArbiterPID: os.Getpid(), Started: a.obs.started, Class: a.gen.cfg.WorkerClass, Target: a.gen.size,
			Booted: a.booted, Draining: a.stop != nil, Restarts: stats.Restarts{},
		}
		for k, v := range a.obs.restarts {
			s.Restarts[k] = v
		}
		for _, w := range a.workers {
			if w.exited {
				continue
			}
			idx, ok := a.obs.slots[w.pid]
			if !ok {
				idx = -1
			}
			s.Workers = append(s.Workers, stats.Worker{
				PID: w.pid, Age: w.age, Generation: w.gen.id, Class: w.gen.cfg.WorkerClass, Slot: idx,
				Ready: w.ready, Retiring: w.retiring, Spawned: w.spawned,
			})
		}
		for _, ln := range a.lns {
			s.Listeners = append(s.Listeners, stats.Listener{Name: ln.workerName(), FD: int(ln.file.Fd())})
		}
	})
	return s, err
}

// Config implements control.Arbiter.
func (a *arbiter) Config() (*config.Config, error) {
	var cfg *config.Config
	err := a.call(func() { cfg = a.gen.cfg })
	return cfg, err
}

// Scale implements control.Arbiter: TTIN or TTOU |delta| times.
func (a *arbiter) Scale(delta int) (int, error) {
	var n int
	err := a.call(func() {
		step := 1
		if delta < 0 {
			step, delta = -1, -delta
		}
		for range delta {
			a.scale(step)
		}
		n = a.gen.size
	})
	return n, err
}

// Reload implements control.Arbiter (HUP).
func (a *arbiter) Reload() error { return a.call(a.reload) }

// Reopen implements control.Arbiter (USR1).
func (a *arbiter) Reopen() error { return a.call(a.reopenLogs) }

// Shutdown implements control.Arbiter (TERM).
func (a *arbiter) Shutdown() error {
	return a.call(func() {
		a.log.Info("shutdown requested on the control socket")
		a.beginStop(true, nil)
	})
}
