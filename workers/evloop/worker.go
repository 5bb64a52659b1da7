package evloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/workers"
	"github.com/multiserve/multiserve/workers/evloop/route"
)

// Worker is the evloop class, or with auto set the auto class (auto.go).
// New has no side effects; all state lives in the server Serve builds.
type Worker struct{ auto bool }

var (
	_ workers.Worker = (*Worker)(nil)
)

// tickEvery is the OnTick period: the heartbeat (at most one loop-probe
// round trip late), the coarse clock and the idle/header timeout sweeps.
const tickEvery = 250 * time.Millisecond

// CheckConfig rejects settings evloop cannot honour, in the arbiter, before
// anything is bound.
func (w *Worker) CheckConfig(cfg *config.Config) error {
	var errs []error
	if !w.auto && cfg.Threads < 0 { // auto has no threads: auto_pool, checked by config
		errs = append(errs, fmt.Errorf("evloop: threads %d: must be >= 0 (0 runs handlers inline on the loop)", cfg.Threads))
	}
	if cfg.EvloopLoops < 0 {
		errs = append(errs, fmt.Errorf("evloop: evloop_loops %d: must be >= 0 (0 = one per CPU)", cfg.EvloopLoops))
	}
	if cfg.Certfile != "" || cfg.Keyfile != "" {
		errs = append(errs, errors.New("evloop: TLS (certfile/keyfile) is not supported by the evloop class; use goroutine"))
	}
	if len(cfg.Bind) > maxListeners {
		errs = append(errs, fmt.Errorf("evloop: %d binds: at most %d", len(cfg.Bind), maxListeners))
	}
	return errors.Join(errs...)
}

// Serve runs gnet until ctx is cancelled, then stops gracefully.
func (w *Worker) Serve(ctx context.Context, env *workers.Env) error {
	if err := w.CheckConfig(env.Config); err != nil {
		return err
	}
	s := newServer(env, w.auto)
	return s.serve(ctx)
}

// server is the gnet.EventHandler of one worker process.
//
// Threading: OnBoot runs once on the goroutine gnet.Rotate was called on,
// before any loop exists; OnOpen/OnTraffic/OnClose run on the loop owning
// the connection; OnTick runs on gnet's ticker goroutine (not on a loop,
// which is why the heartbeat probes every loop, see tick).
type server struct {
	gnet.BuiltinEventEngine

	env    *workers.Env
	cfg    *config.Config
	log    *slog.Logger
	h1     *h1.Server
	inline bool  // handlers run on the loop (evloop with threads == 0, and auto)
	pool   *pool // handlers off the loop: all of them (threads > 0) or streaming-body ones
	loops  int
	class  string       // evloop or auto, for the log
	routes *route.Table // auto's route table; nil under evloop
	ticks  int          // OnTick calls (ticker goroutine only)

	// Written in OnBoot, read after started is closed.
	eng   gnet.Engine
	slots []int // per env listener: the gnet fd it was swapped onto, -1 if served by our accept loop

	started   chan struct{} // closed by the first OnTick: the loops run
	startOnce stdsync.Once

	loopsMu stdsync.Mutex
	loopMap map[gnet.EventLoop]*loopState

	conns    atomic.Int64 // open connections, all loops
	draining atomic.Bool
	retireAt atomic.Int64  // unix ns when the graceful stop began (expired)
	drained  chan struct{} // signalled when conns drops to 0 while draining
	now      atomic.Int64  // coarse clock (unix ns), advanced by OnTick
	missed   atomic.Int64  // ticks without a beat because a loop was stuck

	lingering atomic.Int32 // connections in a lingering close (linger.go)

	// The accept loops (accept.go) and what they hand connections to.
	accepts  []*acceptLoop
	regWG    stdsync.WaitGroup
	gloops   []gnetLoop    // every loop of the engine, set once it runs
	nextLoop atomic.Uint64 // round-robin over gloops
}

func newServer(env *workers.Env, auto bool) *server {
	cfg := env.Config
	s := &server{
		env: env, cfg: cfg, log: env.Log, class: "evloop",
		inline:  auto || cfg.Threads == 0,
		loops:   cfg.EvloopLoops,
		started: make(chan struct{}),
		drained: make(chan struct{}, 1),
		loopMap: map[gnet.EventLoop]*loopState{},
	}
	if s.loops == 0 {
		// One loop per CPU this process may use: the arbiter sets
		// GOMAXPROCS per worker, and NumCPU would ignore it.
		s.loops = runtime.GOMAXPROCS(0)
	}
	s.h1 = env.Engine()
	s.h1.Handler, s.h1.Log = s.finishRequest(env.Handler), s.log
	size := cfg.Threads
	if s.inline {
		// Inline mode still runs requests with a streaming body off the
		// loop; they are bounded by the connection cap.
		size = max(cfg.WorkerConnections, 1)
	}
	if auto {
		s.class, s.routes, size = "auto", newRoutes(env), cfg.AutoPool
	}
	s.pool = newPool(size)
	if s.routes != nil {
		s.pool.yield = s.routes.AnyInline
	}
	s.now.Store(time.Now().UnixNano())
	return s
}

// addrs are gnet's dummy listeners, one per inherited socket (see swap.go).
func (s *server) addrs() []string {
	var a []string
	for i := range s.env.Listeners {
		a = append(a, "tcp://"+dummyAddr(i))
	}
	return a
}

func (s *server) options() []gnet.Option {
	return []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.loops),
		gnet.WithTicker(true),
		// Never gnet's own SO_REUSEPORT listeners, even in reuse_port
		// mode: the arbiter made this worker's socket (package doc).
		gnet.WithReusePort(false),
		gnet.WithLogger(gnetLogger{s.log}),
	}
}

func (s *server) serve(ctx context.Context) error {
	if len(s.env.Listeners) == 0 {
		return errors.New("evloop: no listeners")
	}
	done := make(chan error, 1)
	go func() { done <- gnet.Rotate(s, s.addrs(), s.options()...) }()
	select {
	case <-s.started:
	case err := <-done:
		if err == nil {
			err = errors.New("engine stopped before it started")
		}
		return fmt.Errorf("evloop: start: %w", err)
	}
	if err := s.startAcceptLoops(); err != nil {
		_ = s.eng.Stop(context.Background())
		return fmt.Errorf("evloop: start: %w", err)
	}
	s.log.Info(s.class+" serving", "loops", s.loops, "pool", s.pool.size,
		"listeners", len(s.slots), "own_reuseport", s.ownCount(), "mode", s.mode())
	if s.routes == nil && s.cfg.Threads == 1 {
		s.log.Warn("evloop: threads=1 runs every handler on a pool of one goroutine; " +
			"use threads=0 for handlers inline on the loops, or a larger pool for handlers that wait")
	}
	s.env.Ready()
	select {
	case <-ctx.Done():
		return s.stop(done)
	case err := <-done:
		s.stopAcceptLoops()
		s.closePool(time.Now().Add(s.cfg.GracefulTimeout))
		if err == nil {
			err = errors.New("engine stopped unexpectedly")
		}
		return fmt.Errorf("evloop: %w", err)
	}
}

func (s *server) mode() string {
	for _, sl := range s.slots {
		if sl < 0 {
			return "accept-loop"
		}
	}
	return "fd-swap"
}

// OnBoot swaps the inherited sockets into gnet's listener slots when gnet's
// acceptor was chosen; every other slot is sealed and its listener served
// by our accept loop (accept.go). gnet calls it after binding its (dummy)
// listeners and before adding them to epoll.
func (s *server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	s.slots = make([]int, len(s.env.Listeners))
	register := !s.cfg.EvloopGnetAcceptor || s.fdBudgetShort()
	for i, l := range s.env.Listeners {
		s.slots[i] = -1
		if !register {
			s.slots[i] = s.swapOne(eng, i, l)
		}
		if s.slots[i] < 0 {
			s.sealOne(eng, i)
		}
	}
	return gnet.None
}

// sealOne makes gnet's acceptor blind to listener slot i, which our accept
// loop serves: the dummy socket gnet bound would otherwise stay reachable
// on loopback, and an accept error on it would stop the engine as on any
// listener.
func (s *server) sealOne(eng gnet.Engine, i int) {
	slot, err := locateSlot(eng, dummyAddr(i))
	if err == nil {
		err = seal(slot)
	}
	if err != nil {
		s.log.Error("evloop: cannot seal gnet's unused listener", "addr", dummyAddr(i), "err", err)
	}
}

// swapOne returns the slot listener l now lives in, or -1 when the swap or
// its self-test failed and l will be served by our accept loop.
func (s *server) swapOne(eng gnet.Engine, i int, l *workers.Listener) int {
	slot, err := locateSlot(eng, dummyAddr(i))
	if err == nil {
		err = swapInto(slot, l.FD)
	}
	if err != nil {
		s.log.Warn("evloop: fd swap failed, serving this listener with the accept loop",
			"listener", l.Name, "err", err)
		return -1
	}
	if l.Network != "unix" {
		setNoDelay(slot)
	}
	return slot
}

// OnTick marks the engine started, advances the coarse clock, and beats the
// heartbeat only if every loop answered the previous probe (see tick).
func (s *server) OnTick() (time.Duration, gnet.Action) {
	s.startOnce.Do(func() { close(s.started) })
	s.now.Store(time.Now().UnixNano())
	if s.probeLoops() {
		s.env.Beat()
	} else {
		s.missed.Add(1)
	}
	s.publishRoutes()
	return tickEvery, gnet.None
}

// finishRequest runs after the application's handler, on the handler's
// goroutine, before h1 completes the response:
//   - while the worker drains, the response carries Connection: close;
//   - a streamed request body the handler did not read to its end is read
//     and dropped by the loop while the response is held back (unless it is
//     already committed, or the client waits for a 100 Continue that was
//     never sent), so that a framing error in it is answered with its
//     status, as the blocking classes do; the wait is bounded by
//     header_timeout, drainMax bytes and the connection closing. A body
//     that did not end makes the connection close after the response.
func (s *server) finishRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		hw, _ := w.(*h1.Response)
		if hw != nil && s.draining.Load() {
			hw.SetClose()
		}
		rb, ok := r.Body.(*reqBody)
		if !ok {
			return
		}
		rb.handlerDone.Store(true)
		_ = rb.Close() // later body bytes are dropped by the pipe (and Wake the loop if it was full)
		if hw == nil {
			return
		}
		if !hw.Committed() && !hw.AwaitingContinue() {
			s.awaitSettled(r.Context(), rb)
		}
		if st := rb.rejected.Load(); st != 0 {
			hw.Reject(int(st))
		} else if !rb.Complete() {
			hw.SetClose()
		}
	})
}

func (s *server) awaitSettled(ctx context.Context, rb *reqBody) {
	var timeout <-chan time.Time
	if d := s.cfg.HeaderTimeout; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-rb.settled:
	case <-ctx.Done():
	case <-timeout:
	}
}
