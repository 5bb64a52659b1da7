package arbiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/workers"
)

// Options configures Run.
type Options struct {
	// Config is the resolved, validated configuration.
	Config *config.Config
	// Reload re-reads the configuration on HUP. nil means HUP restarts the
	// workers with the same configuration. Called on Run's goroutine.
	Reload func() (*config.Config, error)
	// ReopenLogs, if set, is called on USR1 before the signal is forwarded
	// to the workers (the arbiter's own error log file).
	ReopenLogs func() error
	// StartDir is the directory the process was started in, before chdir
	// moved it: USR2 starts the new binary there, with the same arguments.
	// "" is the current directory.
	StartDir string
	// Executable is the binary re-executed as a worker; default
	// os.Executable(). Tests pass os.Args[0].
	Executable string
	// Log receives the arbiter's lifecycle lines; default slog.Default().
	Log *slog.Logger
	// Ready, if set, is called once, on Run's goroutine, when the first
	// generation of workers is ready, with the bound addresses (port 0
	// resolved), in --bind order. It must not block.
	Ready func(addrs []net.Addr)
}

// Run binds the configured sockets, starts the workers and supervises them
// until a TERM/INT/QUIT signal or ctx is cancelled (a graceful stop). It
// returns nil after a clean stop; otherwise an error whose exit status
// ExitCode gives. Run handles the process's signals while it runs, so call
// it once per process.
func Run(ctx context.Context, opt Options) error {
	a, err := newArbiter(opt)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, handledSignals...)
	defer signal.Stop(sigs)
	defer close(a.done)

	if err := a.start(); err != nil {
		a.cleanup()
		return err
	}
	return a.loop(ctx, sigs)
}

// arbiter is the state of one Run. Every field is owned by Run's goroutine
// except events and done, which the status-pipe readers use.
type arbiter struct {
	opt     Options
	log     *slog.Logger
	exe     string
	lns     []*listener
	parentR *os.File // read end handed to every worker: EOF = arbiter gone
	parentW *os.File // write end, held only by the arbiter

	gen      *generation // the generation the arbiter keeps at size
	pending  *generation // a HUP's new generation while it boots
	nextGen  int
	workers  map[int]*worker
	nextAge  int
	vacant   []*slot // slots of crashed/exited workers, waiting for a respawn
	nextSlot int

	booted  bool          // the first generation became ready
	stop    *stopState    // non-nil once stopping (drain.go)
	upgrade *upgradeState // the USR2 child arbiter while it runs (upgrade.go)
	// systemd.go: started by a USR2 parent; sd_notify watchdog interval
	upgradeChild  bool
	upgradeParent int // a USR2 child: the old arbiter's pid (drain.go's handedOver)
	watchdog      time.Duration
	lastPet       time.Time

	events chan event
	done   chan struct{}
	tick   *time.Ticker
	wake   *time.Timer // respawn back-off and stop deadlines

	obs     observe  // scoreboard, stats endpoint, control socket (observe.go)
	logs    logFiles // the workers' log files (logs.go)
	capture *capture // capture_output's pipe readers (capture.go); nil until used
}

func newArbiter(opt Options) (*arbiter, error) {
	if opt.Config == nil {
		return nil, withCode(proc.ExitUsage, errors.New("arbiter: no configuration"))
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if err := Check(opt.Config); err != nil {
		return nil, err
	}
	exe := opt.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("arbiter: find own executable: %w", err)
		}
	}
	return &arbiter{
		opt: opt, log: opt.Log, exe: exe,
		workers: map[int]*worker{},
		logs:    logFiles{},
		events:  make(chan event, 64),
		done:    make(chan struct{}),
	}, nil
}

// Check runs the arbiter's start-up checks that need no socket: what Run
// refuses before binding anything, for --check-config. Its error carries
// the exit status (ExitCode).
func Check(cfg *config.Config) error {
	if err := checkConfig(cfg); err != nil {
		return err
	}
	return checkLogPaths(cfg)
}

// checkConfig fails with exit 2 before anything is bound: an unknown class
// or a class-specific mistake must fail once, here, not crash-loop workers.
func checkConfig(cfg *config.Config) error {
	if cfg.Workers < 1 {
		return withCode(proc.ExitUsage, fmt.Errorf("arbiter: workers must be at least 1, got %d", cfg.Workers))
	}
	if len(cfg.Bind) == 0 {
		return withCode(proc.ExitUsage, errors.New("arbiter: no bind address"))
	}
	if err := workers.CheckConfig(cfg); err != nil {
		return withCode(proc.ExitUsage, fmt.Errorf("arbiter: %w", err))
	}
	return nil
}

// start binds, writes the pidfile, logs the banner and spawns the first
// generation. On error everything it made is undone by cleanup.
func (a *arbiter) start() error {
	cfg := a.opt.Config
	gen, err := a.newGeneration(cfg)
	if err != nil {
		return err
	}
	a.upgradeChild = os.Getenv(EnvUpgradeFDs) != ""
	if a.upgradeChild {
		a.upgradeParent = os.Getppid()
	}
	a.watchdog = watchdogInterval()
	if err := applyUmask(cfg); err != nil {
		return withCode(proc.ExitUsage, err)
	}
	if err := a.logs.openFor(cfg); err != nil {
		return err
	}
	if a.lns, err = bindAll(cfg.Bind, cfg.Backlog); err != nil {
		return err
	}
	if err := a.reservePorts(cfg); err != nil {
		return err
	}
	gen.lns = slices.Clone(a.lns) // a.lns changes with reloads (rebind.go)
	a.chownSockets(gen.cred)
	a.startObserve(cfg)
	if a.parentR, a.parentW, err = os.Pipe(); err != nil {
		return fmt.Errorf("arbiter: parent pipe: %w", err)
	}
	if err := writePidfile(cfg.Pidfile); err != nil {
		return err
	}
	a.banner(cfg)
	a.gen = gen
	a.setTitle()
	a.tick = time.NewTicker(tickInterval(cfg))
	a.wake = time.NewTimer(time.Hour)
	for range gen.size {
		if err := a.spawn(gen, a.newSlot()); err != nil {
			a.beginStop(false, withCode(proc.ExitRuntime, err))
			break
		}
	}
	return nil
}

// loop is the supervisor: one select, woken by signals, worker status
// lines, the check ticker or the back-off/deadline timer.
func (a *arbiter) loop(ctx context.Context, sigs <-chan os.Signal) error {
	defer a.tick.Stop()
	defer a.wake.Stop()
	ctxDone := ctx.Done()
	for {
		a.maintain()
		if a.stop != nil && len(a.workers) == 0 {
			a.cleanup()
			if a.stop.err == nil {
				a.log.Info("arbiter stopped")
			}
			return a.stop.err
		}
		select {
		case <-ctxDone:
			ctxDone = nil
			a.log.Info("context cancelled: graceful stop")
			a.beginStop(true, nil)
		case sig := <-sigs:
			a.handleSignal(sig)
		case ev := <-a.events:
			a.handleEvent(ev)
		case f := <-a.obs.calls:
			f() // a stats or control request, run here where the state lives
		case <-a.tick.C:
			a.reap()
			a.reapOrphans()
			a.checkWorkers()
			a.petWatchdog(time.Now())
		case <-a.wake.C:
		}
	}
}

// maintain brings the pool to its target after any event: completes the
// start-up and a pending reload, respawns missing workers, enforces stop
// deadlines, and arms the wake timer for the next deadline.
func (a *arbiter) maintain() {
	now := time.Now()
	next := now.Add(time.Hour)
	if a.stop != nil {
		a.enforceStop(now)
		if !a.stop.killed {
			next = a.stop.deadline
		}
	} else {
		a.checkBooted()
		a.checkReload()
		a.retireReplaced()
		a.pruneListeners()
		if t, ok := a.respawn(now); ok {
			next = t
		}
	}
	a.wake.Reset(time.Until(next))
}

func (a *arbiter) checkBooted() {
	if a.booted || !a.generationReady(a.gen) {
		return
	}
	a.booted = true
	a.notifyReady()
	a.log.Info("ready", "workers", a.gen.size, "class", a.gen.cfg.WorkerClass)
	if a.opt.Ready != nil {
		addrs := make([]net.Addr, len(a.lns))
		for i, ln := range a.lns {
			addrs[i] = ln.addr
		}
		a.opt.Ready(addrs)
	}
}

// generationReady: the generation has its full count of live workers, all
// of them ready.
func (a *arbiter) generationReady(g *generation) bool {
	n := 0
	for _, w := range a.workers {
		if w.inPool(g) {
			if !w.ready {
				return false
			}
			n++
		}
	}
	return n >= g.size
}

// cleanup closes the sockets (unlinking unix socket paths), the parent pipe
// and removes the pidfile. Workers are gone by now.
func (a *arbiter) cleanup() {
	a.stopObserve()
	closeAll(a.lns)
	a.lns = nil
	if a.parentW != nil {
		a.parentW.Close()
		a.parentR.Close()
	}
	removePidfile(a.opt.Config.Pidfile)
	a.logs.closeAll()
}

// tickInterval is how often heartbeats and deadlines are checked: often
// enough to notice a silent worker within a quarter of timeout, never more
// than once a second when idle-ish.
func tickInterval(cfg *config.Config) time.Duration {
	d := time.Second
	if cfg.Timeout > 0 && cfg.Timeout/4 < d {
		d = max(cfg.Timeout/4, 10*time.Millisecond)
	}
	return d
}
