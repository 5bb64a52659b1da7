package arbiter

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/heartbeat"
	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/workers"
)

// generation is one configuration's set of workers. HUP makes a new one;
// a worker always runs with the config of the generation it was born in.
type generation struct {
	id   int
	cfg  *config.Config
	json []byte              // cfg as handed to workers
	size int                 // target worker count (TTIN/TTOU change it)
	cred *syscall.Credential // user/group the workers run as; nil: the arbiter's
	lns  []*listener         // the sockets its workers get, in cfg.Bind order (rebind.go)
}

func (a *arbiter) newGeneration(cfg *config.Config) (*generation, error) {
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("arbiter: encode config: %w", err)
	}
	cred, err := credential(cfg)
	if err != nil {
		return nil, withCode(proc.ExitUsage, err)
	}
	a.nextGen++
	return &generation{id: a.nextGen, cfg: cfg, json: js, size: cfg.Workers, cred: cred}, nil
}

// worker is the arbiter's record of one worker process.
type worker struct {
	pid, age int
	gen      *generation
	slot     *slot
	proc     *os.Process
	hb       *heartbeat.File
	status   *os.File // read end of the status pipe
	logSock  *os.File // arbiter's end of the log socket (logs.go); nil: no log files
	spawned  time.Time
	ready    bool
	readyAt  time.Time
	errText  string // the worker's own "error ..." line
	retiring bool   // TERMed/QUITed by the arbiter: its exit is expected
	// replacing: it asked to retire (max_requests) and serves on until a
	// replacement is ready (retireReplaced); not counted in the pool.
	replacing bool
	termAt    time.Time
	abortAt   time.Time // SIGABRT sent for silence
	killed    bool      // SIGKILL sent
	exited    bool
	ws        exitStatus
	exitedAt  time.Time
	eof       bool // status pipe closed
}

// inPool: w counts toward generation g's size (not leaving it).
func (w *worker) inPool(g *generation) bool {
	return w.gen == g && !w.retiring && !w.replacing
}

// slot is a worker's place in the pool; crash back-off is kept per slot so
// one crash-looping app instance cannot starve the others' respawns.
type slot struct {
	id       int
	failures int       // consecutive crashes
	next     time.Time // earliest respawn
}

func (a *arbiter) newSlot() *slot {
	s := &slot{id: a.nextSlot}
	a.nextSlot++
	return s
}

// backoff is the delay before respawning a slot after its n-th consecutive
// crash: the first is immediate, then 250ms doubling up to 30s.
func backoff(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := 250 * time.Millisecond << min(n-2, 7)
	return min(d, 30*time.Second)
}

// respawn starts workers until the current generation is at size, taking
// vacant slots whose back-off has passed first. It returns the earliest
// back-off deadline still pending.
func (a *arbiter) respawn(now time.Time) (time.Time, bool) {
	missing := a.gen.size
	for _, w := range a.workers {
		if w.inPool(a.gen) {
			missing--
		}
	}
	// More vacancies than missing workers (after TTOU): keep the soonest.
	for len(a.vacant) > max(missing, 0) {
		a.vacant = a.vacant[:len(a.vacant)-1]
	}
	var wait time.Time
	for missing > 0 {
		s := a.takeSlot(now)
		if s == nil {
			wait = a.vacant[0].next
			break
		}
		if err := a.spawn(a.gen, s); err != nil {
			a.log.Error("cannot start worker", "err", err)
			a.crashed(s, now)
			continue
		}
		missing--
	}
	return wait, !wait.IsZero()
}

// takeSlot returns a vacant slot ready for respawn, a fresh slot when no
// slot is vacant (TTIN), or nil when every vacancy is still backing off.
func (a *arbiter) takeSlot(now time.Time) *slot {
	if len(a.vacant) == 0 {
		return a.newSlot()
	}
	// vacant is kept sorted by next.
	if s := a.vacant[0]; !s.next.After(now) {
		a.vacant = a.vacant[1:]
		return s
	}
	return nil
}

// vacate puts a slot back for respawn, keeping vacant sorted by deadline.
func (a *arbiter) vacate(s *slot) {
	i := 0
	for i < len(a.vacant) && !a.vacant[i].next.After(s.next) {
		i++
	}
	a.vacant = append(a.vacant[:i], append([]*slot{s}, a.vacant[i:]...)...)
}

// crashed records a crash of the slot's worker and vacates the slot with
// its back-off.
func (a *arbiter) crashed(s *slot, now time.Time) {
	s.failures++
	s.next = now.Add(backoff(s.failures))
	a.vacate(s)
}

// spawn re-executes the binary as a worker of generation g in slot s.
func (a *arbiter) spawn(g *generation, s *slot) error {
	hb, err := heartbeat.Create(tmpDir(g.cfg))
	if err != nil {
		return fmt.Errorf("arbiter: %w", err)
	}
	if g.cred != nil {
		if err := hb.File().Chown(int(g.cred.Uid), int(g.cred.Gid)); err != nil {
			hb.Close()
			return fmt.Errorf("arbiter: heartbeat file for user %d: %w", g.cred.Uid, err)
		}
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		hb.Close()
		return fmt.Errorf("arbiter: status pipe: %w", err)
	}
	a.nextAge++
	age := a.nextAge
	// argv[0] is the worker's title, for ps. A worker reads its
	// configuration from its environment; the arguments follow only for
	// a program that reads its own flags before multiserve.Main.
	cmd := exec.Command(a.exe, os.Args[1:]...)
	cmd.Args[0] = workerTitle(g, age)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Dir = g.cfg.Chdir // absolute; "" is the arbiter's own directory
	cmd.ExtraFiles = []*os.File{hb.File(), statusW, a.parentR}
	var own []*os.File // reuse_port: this worker's own sockets
	defer func() {
		for _, f := range own {
			f.Close()
		}
	}()
	for _, ln := range g.lns {
		f, mine, err := workerFile(ln, g.cfg)
		if err != nil {
			hb.Close()
			statusR.Close()
			statusW.Close()
			return err
		}
		if mine {
			own = append(own, f)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	spec := a.workerSpec(g, age)
	wl, err := a.workerLogs(g, len(cmd.ExtraFiles))
	if err != nil {
		hb.Close()
		statusR.Close()
		statusW.Close()
		return err
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, wl.files...)
	sbIdx, sbFile := a.slotFor()
	if sbFile != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, sbFile)
		spec.ScoreboardFD, spec.ScoreboardSlot = 2+len(cmd.ExtraFiles), sbIdx
	}
	cmd.Env = append(a.workerEnv(g, spec), wl.fds.Env())
	if g.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: g.cred}
	}
	out := a.captureOutput(cmd, g)
	err = cmd.Start()
	out.started(cmd, err)
	statusW.Close()
	if wl.peer != nil {
		wl.peer.Close()
	}
	if err != nil {
		a.slotReleased(sbIdx, g.cfg.WorkerClass)
		hb.Close()
		statusR.Close()
		if wl.mine != nil {
			wl.mine.Close()
		}
		return fmt.Errorf("arbiter: start worker: %w", err)
	}
	w := &worker{
		pid: cmd.Process.Pid, age: age, gen: g, slot: s, proc: cmd.Process,
		hb: hb, status: statusR, logSock: wl.mine, spawned: time.Now(),
	}
	a.workers[w.pid] = w
	a.slotStarted(w.pid, sbIdx)
	go a.readStatus(w.pid, statusR)
	a.log.Info(fmt.Sprintf("booting worker pid=%d age=%d", w.pid, age), "pid", w.pid, "age", age, "generation", g.id)
	return nil
}

// workerSpec is what a worker of generation g learns from its environment.
func (a *arbiter) workerSpec(g *generation, age int) proc.Spec {
	names := make([]string, len(g.lns))
	for i, ln := range g.lns {
		names[i] = ln.workerName()
	}
	return proc.Spec{Age: age, ArbiterPID: os.Getpid(), ListenNames: names, Config: g.json}
}

func (a *arbiter) workerEnv(g *generation, spec proc.Spec) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !proc.IsProtocolVar(kv) {
			env = append(env, kv)
		}
	}
	env = append(env, g.cfg.RawEnv...) // after the inherited ones: exec keeps the last of a key
	env = append(env, spec.Env()...)
	if !setsGOMAXPROCS(g.cfg.RawEnv) && os.Getenv("GOMAXPROCS") == "" {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs(g.cfg.WorkerClass, g.size)))
	}
	return env
}

func setsGOMAXPROCS(env []string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return true
		}
	}
	return false
}

// gomaxprocs is a worker's Go scheduler width: the classes other than
// the single-thread ones share the machine's CPUs among the workers, so N
// workers do not each spin up NumCPU Ps. A single-thread class serves on
// one thread but gets two Ps: its thread spends most of its time blocked
// in the kernel (accept, read, write, close, poll), and with no idle P
// the runtime's monitor takes the P away from a thread blocked past one
// of its ticks and wakes another thread to run it, which finds nothing
// to do and sleeps again: futex and nanosleep calls and context switches
// on every connection. An idle second P tells the monitor that nothing
// waits for a P, and it leaves the blocked thread's alone. Nothing else
// runs on the second P but the runtime's own work (timers, GC).
func gomaxprocs(class string, n int) int {
	if workers.SingleThread(class) {
		return 2
	}
	return max(1, runtime.NumCPU()/max(n, 1))
}

func tmpDir(cfg *config.Config) string {
	if cfg.WorkerTmpDir != "" {
		return cfg.WorkerTmpDir
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// event is a line a worker wrote on its status pipe, or the pipe's EOF.
type event struct {
	pid  int
	line string
	eof  bool
}

// readStatus forwards a worker's status lines to the loop. It ends at EOF
// (the worker exited) or when the loop closed the pipe.
func (a *arbiter) readStatus(pid int, r *os.File) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if !a.send(event{pid: pid, line: sc.Text()}) {
			return
		}
	}
	a.send(event{pid: pid, eof: true})
}

func (a *arbiter) send(ev event) bool {
	select {
	case a.events <- ev:
		return true
	case <-a.done:
		return false
	}
}
