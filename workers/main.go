package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/heartbeat"
	"github.com/multiserve/multiserve/internal/logfile"
	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/scoreboard"
)

// Main is the runtime of a worker process; call it when the process was
// started as a worker (proc.IsWorker) and exit with its result:
//
//	os.Exit(workers.Main(load))
//
// It decodes what the arbiter passed (config, heartbeat, status pipe,
// parent pipe, listeners), loads the application with load, wraps it with
// the Use middlewares and max_requests accounting, and runs the configured
// class until a signal, the arbiter's death or max_requests stops it.
//
// Exit status: 0 clean stop; 1 a runtime failure after the worker was ready
// (including a panic in Serve or graceful_timeout expiring); 3 the class
// could not start; 4 load failed. For 3 and 4 the error text also goes to
// the arbiter on the status pipe, so the arbiter's log shows it.
//
// Signals: TERM stops gracefully (Serve's ctx is cancelled, in reuse_port
// mode once the worker's own sockets are gated and their accept queues
// served, see ownsocket.go; after graceful_timeout the process exits
// regardless), INT and QUIT exit at once,
// USR1 reopens log files, USR2 (proc.SignalDrain) sets Env.Draining: the
// arbiter began a graceful stop, every response from now on closes its
// connection; HUP/TTIN/TTOU are ignored (they are the arbiter's).
func Main(load func(cfg *config.Config) (http.Handler, error)) int {
	rt, err := newRuntime()
	if err != nil {
		fmt.Fprintln(os.Stderr, "workers: "+err.Error())
		writeStatusFD("error " + err.Error())
		return proc.ExitBootError
	}
	defer rt.logf.Close()
	return rt.run(load)
}

// runtime is one worker process's state.
type runtime struct {
	spec      proc.Spec
	cfg       *config.Config
	log       *slog.Logger
	logf      *logfile.File
	logFDs    proc.LogFDs
	status    *os.File
	statusMu  sync.Mutex
	ready     atomic.Bool
	draining  atomic.Bool // Env.Draining
	beater    *heartbeat.Beater
	listeners []*Listener
	slot      scoreboard.Slot // zero without a scoreboard slot
	own       *ownSockets     // this worker's own reuse_port sockets
	served    chan struct{}   // closed when the class's Serve returned

	stopOnce sync.Once
	cancel   context.CancelFunc
}

func newRuntime() (*runtime, error) {
	spec, err := proc.ParseSpec(os.Getenv)
	if err != nil {
		return nil, err
	}
	// Keep the inherited fds out of anything the application execs.
	for fd := proc.FDHeartbeat; fd < proc.FDFirstListener+len(spec.ListenNames); fd++ {
		unix.CloseOnExec(fd)
	}
	rt := &runtime{spec: spec, status: os.NewFile(proc.FDStatus, "status"), beater: heartbeat.NewBeater(proc.FDHeartbeat)}
	rt.cfg = new(config.Config)
	if err := json.Unmarshal(spec.Config, rt.cfg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", proc.EnvConfig, err)
	}
	if err := rt.openLogs(); err != nil {
		return nil, err
	}
	h := slog.NewTextHandler(rt.logf, &slog.HandlerOptions{Level: config.LogLevel(rt.cfg.Loglevel)})
	rt.log = slog.New(h).With("pid", os.Getpid(), "age", spec.Age, "class", rt.cfg.WorkerClass)
	for i, name := range spec.ListenNames {
		rt.listeners = append(rt.listeners, inherited(proc.FDFirstListener+i, name))
	}
	if rt.slot, err = attachSlot(spec); err != nil {
		return nil, err
	}
	rt.own = newOwnSockets(rt.cfg, rt.listeners, rt.log)
	rt.served = make(chan struct{})
	return rt, nil
}

func inherited(fd int, name string) *Listener {
	network := "tcp"
	if sa, err := unix.Getsockname(fd); err == nil {
		if _, ok := sa.(*unix.SockaddrUnix); ok {
			network = "unix"
		}
	}
	return &Listener{FD: fd, Name: name, Network: network}
}

func (rt *runtime) run(load func(*config.Config) (http.Handler, error)) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt.cancel = cancel
	reopen := rt.handleSignals()
	go rt.watchParent()

	app, err := rt.loadApp(load)
	if err != nil {
		rt.fail("app load: " + err.Error())
		return proc.ExitAppError
	}
	h, reopeners, err := wrapMiddleware(app, rt.cfg)
	if err != nil {
		rt.fail("middleware: " + err.Error())
		return proc.ExitAppError
	}
	reopen.Store(&reopeners)
	h = slotMeter(h, rt.slot) // outside the other middleware: it times the whole request
	h = rt.maxRequests(h)

	cls, err := Lookup(rt.cfg.WorkerClass)
	if err != nil {
		rt.fail(err.Error())
		return proc.ExitBootError
	}
	env := &Env{
		Listeners: rt.listeners, Handler: h, App: app, Config: rt.cfg, Log: rt.log,
		Age: rt.spec.Age, Beat: rt.beater.Beat, Ready: rt.markReady,
		Draining: &rt.draining, ListenersDone: rt.own.close, Slot: rt.slot,
		Rejected: rt.rejected(rejectedHook()),
	}
	rt.log.Debug("worker starting")
	err = rt.serve(ctx, cls.New(), env)
	close(rt.served)
	rt.own.close()
	if err != nil {
		if !rt.ready.Load() {
			rt.fail(err.Error())
			return proc.ExitBootError
		}
		rt.log.Error("worker failed", "err", err)
		return proc.ExitRuntime
	}
	rt.log.Debug("worker stopped")
	return proc.ExitOK
}

// loadApp calls the user's load, turning a panic into an error.
func (rt *runtime) loadApp(load func(*config.Config) (http.Handler, error)) (h http.Handler, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	h, err = load(rt.cfg)
	if err == nil && h == nil {
		err = errors.New("no handler")
	}
	return h, err
}

// serve runs the class; a panic that escapes it is logged with its stack
// and becomes an error, so it never crosses the process boundary as a
// crash without explanation.
func (rt *runtime) serve(ctx context.Context, w Worker, env *Env) (err error) {
	defer func() {
		if p := recover(); p != nil {
			rt.log.Error("panic in worker", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return w.Serve(ctx, env)
}

// markReady is Env.Ready: the first call tells the arbiter.
func (rt *runtime) markReady() {
	if rt.ready.CompareAndSwap(false, true) {
		rt.writeStatus("ready")
	}
}

// fail logs err and reports it to the arbiter, on one line.
func (rt *runtime) fail(msg string) {
	msg = strings.ReplaceAll(strings.TrimSpace(msg), "\n", "; ")
	rt.log.Error("worker cannot start: " + msg)
	rt.writeStatus("error " + msg)
}

func (rt *runtime) writeStatus(line string) {
	rt.statusMu.Lock()
	defer rt.statusMu.Unlock()
	if _, err := rt.status.WriteString(line + "\n"); err != nil {
		rt.log.Warn("status pipe", "err", err)
	}
}

// writeStatusFD reports an error before a runtime exists (bad env).
func writeStatusFD(line string) {
	f := os.NewFile(proc.FDStatus, "status")
	if f != nil {
		f.WriteString(strings.ReplaceAll(line, "\n", "; ") + "\n")
	}
}

// stop begins a graceful stop once: from now on responses carry
// Connection: close (Env.Draining), Serve's ctx is cancelled, and if the
// class has not returned within graceful_timeout the process exits anyway.
// A ready worker with its own reuse_port sockets first gates them and
// lets the class serve their accept queues (ownsocket.go); that runs on
// its own goroutine, because stop may be called from a handler
// (max_requests) of a class that accepts on the same thread (sync).
func (rt *runtime) stop(reason string) {
	rt.stopOnce.Do(func() {
		rt.log.Info("graceful stop: " + reason)
		rt.draining.Store(true)
		d := rt.cfg.GracefulTimeout
		time.AfterFunc(d, func() {
			rt.log.Error(fmt.Sprintf("graceful_timeout (%s) expired, exiting with requests in flight", d))
			os.Exit(proc.ExitRuntime)
		})
		if rt.own.empty() || !rt.ready.Load() {
			rt.cancel()
			return
		}
		fds, end := rt.own.gate(), drainEnd(time.Now().Add(d))
		go func() {
			rt.own.wait(fds, end, rt.served)
			rt.cancel()
		}()
	})
}

// askRetire asks the arbiter to retire this worker once a replacement is
// serving ("retire" status line, see proc.StatusRetire); the worker serves
// on until the arbiter's TERM. If the arbiter cannot be told, it stops
// now.
func (rt *runtime) askRetire(reason string) {
	rt.log.Info(reason + ": asking the arbiter to replace this worker")
	rt.statusMu.Lock()
	_, err := rt.status.WriteString(proc.StatusRetire + " " + reason + "\n")
	rt.statusMu.Unlock()
	if err != nil {
		rt.stop(reason + " (status pipe: " + err.Error() + ")")
	}
}

// handleSignals turns signals into stops and log reopening. The returned
// pointer receives the middleware reopeners once they exist.
func (rt *runtime) handleSignals() *atomic.Pointer[[]func() error] {
	var reopeners atomic.Pointer[[]func() error]
	signal.Ignore(syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU)
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, proc.SignalDrain)
	go func() {
		for sig := range ch {
			switch sig {
			case syscall.SIGTERM:
				rt.stop("SIGTERM")
			case syscall.SIGINT, syscall.SIGQUIT:
				rt.log.Info("quick stop: " + proc.SignalName(sig))
				os.Exit(proc.ExitOK)
			case syscall.SIGUSR1:
				rt.reopenLogs(reopeners.Load())
			case proc.SignalDrain:
				if rt.draining.CompareAndSwap(false, true) {
					rt.log.Info("draining: the arbiter is stopping, responses now carry Connection: close")
				}
			}
		}
	}()
	return &reopeners
}

func (rt *runtime) reopenLogs(reopeners *[]func() error) {
	if err := rt.logf.Reopen(); err != nil {
		rt.log.Error("reopen error log", "err", err)
	}
	if reopeners == nil {
		return
	}
	for _, r := range *reopeners {
		if err := r(); err != nil {
			rt.log.Error("reopen log", "err", err)
		}
	}
}

// watchParent stops the worker when the arbiter is gone: EOF on the parent
// pipe (immediate) or a getppid() that no longer matches the recorded
// arbiter pid (checked every second, in case the pipe was lost).
func (rt *runtime) watchParent() {
	go func() {
		f := os.NewFile(proc.FDParent, "parent")
		var b [1]byte
		for {
			if _, err := f.Read(b[:]); err != nil {
				rt.stop("arbiter gone (parent pipe closed)")
				return
			}
		}
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != rt.spec.ArbiterPID {
			rt.stop(fmt.Sprintf("arbiter gone (parent pid is %d, not %d)", os.Getppid(), rt.spec.ArbiterPID))
			return
		}
	}
}

// rejected counts a refused request in the worker's scoreboard slot (for
// /metrics) and passes it on to log (the access log's, may be nil).
func (rt *runtime) rejected(log func(remote string, status int, head []byte)) func(string, int, []byte) {
	return func(remote string, status int, head []byte) {
		rt.slot.Rejected(status)
		if log != nil {
			log(remote, status, head)
		}
	}
}
