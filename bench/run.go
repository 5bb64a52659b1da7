package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// options are the runner's flags, resolved.
type options struct {
	quick         bool
	classes       string // comma list of class rows, "all" or "none"
	peers         string // comma list of peers, "all" or "none"
	workloads     string
	duration      time.Duration // per closed-loop point
	openDuration  time.Duration // open-loop run; 0: none
	openFor       []string      // workloads that get an open-loop run; nil: all closed ones
	concurrency   []int
	workers       int
	threads       int      // threaded class (and gunicorn gthread) pool size
	app           string   // the user's app (--app), or resolved from --pkg/--bin
	paths         []string // --path values, each repeated by its weight
	pathArgs      []string // --path as given, for the report
	probePath     string   // --probe-path: a GET that answers 200 once the app is up
	method        string   // --method for the custom workload ("" is GET)
	body          []byte   // --body for the custom workload
	pool          int      // evloop-pool's handler pool size (0: 4, or the workload's)
	serverFlags   []string // --server-flags, passed to every multiserve configuration
	rate          int      // open-loop rate override
	bin, pkg      string
	out           string
	slowK, idleN  int
	driver        string // auto, wrk, go
	budget        time.Duration
	startTimeout  time.Duration
	reqTimeout    time.Duration
	nice          int // nice value for the runner, servers and wrk (0: unchanged)
	serverCPUs    string
	loadCPUs      string
	commandLine   string
	peersAsked    string      // --peers as the user gave it ("" when left to the default)
	failIf        []failIf    // --fail-if conditions
	interrupted   func() bool // reports a SIGINT/SIGTERM (nil: never)
	logw          io.Writer   // progress lines
	skipBuildInfo bool        // tests: no git/go version lookups
	repeat        int         // rounds of the whole matrix; tables show medians and min–max
	syscalls      bool        // count syscalls per request in a separate traced phase
}

// closedDriver drives a closed-loop load.
type closedDriver interface {
	name() string
	run(ctx context.Context, s loadSpec) (loadResult, error)
}

// point is one closed-loop measurement of one configuration.
type point struct {
	Concurrency int `json:"concurrency"`
	loadResult
	CPU       time.Duration `json:"cpu"`           // server CPU (utime+stime, all processes)
	Others    time.Duration `json:"others_cpu"`    // CPU time other processes took on the server's CPUs
	ReqPerCPU float64       `json:"req_per_cpu_s"` // requests per server CPU-second
	// With --repeat: the rounds folded into this point (medians; counts and
	// CPU summed) and the min–max across them.
	Rounds  int   `json:"rounds,omitempty"`
	RPSSpan *span `json:"rps_range,omitempty"`
	EffSpan *span `json:"req_per_cpu_s_range,omitempty"`
}

// Result statuses.
const (
	statusOK          = "ok"
	statusUnavailable = "unavailable" // the server could not be built or started
	statusUnsupported = "unsupported" // the server cannot serve this workload (a peer without /sim)
	statusFailed      = "failed"      // it started but the measurement failed
	statusSkipped     = "skipped"     // the time budget ran out
)

// result is what one configuration did under one workload.
type result struct {
	Workload string        `json:"workload"`
	Target   string        `json:"target"`
	Peer     bool          `json:"peer"`
	Status   string        `json:"status"`
	Reason   string        `json:"reason,omitempty"`
	CPUs     string        `json:"cpus,omitempty"` // Cpus_allowed_list of the server's processes
	Procs    int           `json:"procs,omitempty"`
	Points   []point       `json:"points,omitempty"`
	Open     *openResult   `json:"open,omitempty"`
	Slow     *slowStats    `json:"slow,omitempty"`
	SlowLoad *point        `json:"slow_load,omitempty"` // the normal load during slow-clients
	Idle     *idleResult   `json:"idle,omitempty"`
	Spread   []spreadMode  `json:"spread,omitempty"` // shared socket, then reuse_port
	Reload   *reloadResult `json:"reload,omitempty"`
	Syscalls *syscallCount `json:"syscalls,omitempty"`
}

// bench is one run of the runner.
type bench struct {
	opts       options
	split      cpuSplit
	driver     closedDriver
	notes      []string // caveats for the report (driver fallback, missing peers...)
	targets    []*target
	workloads  []*workload
	results    []*result
	outDir     string
	rawDir     string
	tmp        string
	started    time.Time
	deadline   time.Time
	info       buildInfo
	step, cost int
	// interrupted is set when a signal stopped the run: the report is
	// partial and says so, and the exit code tells.
	interrupted bool
	runStart    time.Time
	tie         float64 // tie threshold, from the measured spread
	round       int     // the round being measured, from 1
	// 1-minute load averages: other processes compete for the same CPUs.
	loadStart, loadEnd string
}

// loadAvg returns the 1-minute load average ("" if unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.opts.logw, format+"\n", args...)
}

// runBench executes the whole bench and writes the report. It returns the
// report's path and the exit code. A configuration that cannot run is a row
// in the report, not an error; errors are for a runner that cannot work at
// all.
func runBench(ctx context.Context, o options) (outcome, error) {
	b := &bench{opts: o, started: time.Now(), loadStart: loadAvg()}
	if o.budget > 0 {
		b.deadline = b.started.Add(o.budget)
	}
	defer func() {
		if b.tmp != "" {
			os.RemoveAll(b.tmp)
		}
	}()
	if err := b.setup(ctx); err != nil {
		return outcome{}, err
	}
	b.runAll(ctx)
	b.loadEnd = loadAvg()
	checks := b.runChecks()
	path, err := b.writeReport(checks)
	if err != nil {
		return outcome{}, err
	}
	return b.outcome(path, checks), nil
}

// stopped says whether a signal interrupted the run, and remembers it.
func (b *bench) stopped() bool {
	if !b.interrupted && b.opts.interrupted != nil && b.opts.interrupted() {
		b.interrupted = true
	}
	return b.interrupted
}

func (b *bench) setup(ctx context.Context) error {
	var err error
	if b.split, err = defaultSplit(b.opts.serverCPUs, b.opts.loadCPUs); err != nil {
		return err
	}
	if err := b.split.pinSelf(); err != nil {
		return err
	}
	if b.opts.nice != 0 {
		if err := setNice(b.opts.nice); err != nil {
			b.notes = append(b.notes, err.Error())
		}
	}
	lim, err := raiseNoFile()
	if err != nil {
		b.notes = append(b.notes, fmt.Sprintf("could not raise RLIMIT_NOFILE (%v); it is %d", err, lim))
	}
	fitConns(lim)
	b.logf("bench: RLIMIT_NOFILE %d; every server gets worker_connections %d", lim, maxConns)
	b.logf("bench: CPU split: %s", b.split)
	if b.tmp, err = os.MkdirTemp("", "multiserve-bench-"); err != nil {
		return fmt.Errorf("bench: temp dir: %w", err)
	}
	b.outDir = b.opts.out
	if b.outDir == "" {
		b.outDir = filepath.Join("bench-results", b.started.UTC().Format("2006-01-02T150405Z"))
		if root, err := moduleRoot(); err == nil {
			b.outDir = filepath.Join(root, "bench", "results", filepath.Base(b.outDir))
		}
	}
	b.rawDir = filepath.Join(b.outDir, "raw")
	clearOutputs(b.outDir)
	if err := os.MkdirAll(b.rawDir, 0o755); err != nil {
		return fmt.Errorf("bench: create %s: %w", b.rawDir, err)
	}
	b.chooseDriver()
	if err := b.buildTargets(ctx); err != nil {
		return err
	}
	if err := b.chooseWorkloads(); err != nil {
		return err
	}
	return b.validateFailIf()
}

// chooseDriver picks wrk when installed, else the Go closed-loop driver.
func (b *bench) chooseDriver() {
	bin, err := exec.LookPath("wrk")
	switch {
	case b.opts.driver == "go" || (b.opts.driver == "auto" && err != nil):
		b.driver = goDriver{}
		if err != nil {
			b.notes = append(b.notes, "wrk is not installed (`make bench-deps`): closed-loop numbers come from the runner's Go driver, which costs more CPU per request than wrk, so absolute req/s are lower.")
		}
	default:
		b.driver = &wrkDriver{bin: bin, cpus: b.split.load, threads: max(1, len(b.split.load)), tmp: b.tmp}
	}
	b.logf("bench: closed-loop driver: %s; open-loop driver: vegeta (library)", b.driver.name())
}

func (b *bench) chooseWorkloads() error {
	all := allWorkloads()
	if len(b.opts.paths) > 0 {
		all = append(all, customWorkload(b.opts))
	}
	ws, err := selectWorkloads(b.opts.workloads, all)
	if err != nil {
		return err
	}
	if len(b.opts.paths) > 0 {
		ownHandler(ws, b.opts)
	}
	for _, wl := range ws {
		if wl.kind == kindSpread && b.opts.quick {
			wl.classes = spreadQuick
		}
	}
	b.workloads = ws
	return nil
}

// buildTargets builds multiserve and the Go peers and lists every row.
func (b *bench) buildTargets(ctx context.Context) error {
	specs := append(classSpecs(b.opts.threads, b.opts.pool), b.opts.ownClasses()...)
	wantClass, err := nameFilter(b.opts.classes, specNames(specs))
	if err != nil {
		return err
	}
	peers := b.opts.peers
	if len(b.opts.paths) > 0 && b.opts.peersAsked == "" {
		peers = "none" // no peer serves the user's app: only when asked for
	}
	wantPeer, err := nameFilter(peers, []string{"nethttp", "gnetbare", "nginx", "gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent"})
	if err != nil {
		return err
	}
	// Import paths, built in the working directory's module: the
	// multiserve checkout, or the user's module that requires multiserve.
	builds := map[string]string{} // name → package to build
	needClasses := slices.ContainsFunc(specNames(specs), wantClass)
	if needClasses && b.opts.bin == "" {
		builds["multiserve"] = cmp.Or(b.opts.pkg, modulePath+"/cmd/multiserve")
	}
	if wantPeer("nethttp") {
		builds["nethttp"] = modulePath + "/bench/peers/nethttp"
	}
	if wantPeer("gnetbare") {
		builds["gnetbare"] = modulePath + "/bench/baseline/gnetbare"
	}
	bins, buildErr := map[string]string{}, map[string]string{}
	if len(builds) > 0 {
		b.logf("bench: building %s", strings.Join(sortedKeys(builds), ", "))
		bins, buildErr = goBuild(ctx, ".", b.tmp, builds)
	}
	if e := buildErr["multiserve"]; e != "" && b.opts.pkg != "" {
		return fmt.Errorf("bench: --pkg %s: %s", b.opts.pkg, e)
	}
	if !b.opts.skipBuildInfo {
		b.info = collectBuildInfo(".")
	}
	msBin := b.opts.bin
	if msBin == "" {
		msBin = bins["multiserve"]
	}
	if err := b.resolveApp(ctx, msBin); err != nil {
		return err
	}
	for _, cs := range specs {
		if !wantClass(cs.name) {
			continue
		}
		t := multiserveTarget(msBin, cs, b.opts)
		if msBin == "" {
			t.unavailable = "multiserve did not build: " + buildErr["multiserve"]
		}
		b.targets = append(b.targets, t)
	}
	b.targets = append(b.targets, peerTargets(peerEnv{
		workers: b.opts.workers, threads: b.opts.threads, tmp: b.tmp,
		nethttpBin: bins["nethttp"], gnetbareBin: bins["gnetbare"], buildErr: buildErr,
	}, wantPeer)...)
	for _, t := range b.targets {
		if t.unavailable != "" {
			b.logf("bench: %-16s unavailable: %s", t.name, t.unavailable)
		}
	}
	return nil
}

func specNames(cs []classSpec) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// nameFilter turns "all", "none" or "a,b" into a predicate, rejecting
// unknown names so a typo does not silently bench nothing.
func nameFilter(list string, known []string) (func(string) bool, error) {
	switch list {
	case "", "all":
		return func(string) bool { return true }, nil
	case "none":
		return func(string) bool { return false }, nil
	}
	set := map[string]bool{}
	for n := range strings.SplitSeq(list, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("bench: unknown name %q (known: %s)", n, strings.Join(known, ", "))
		}
		set[n] = true
	}
	return func(n string) bool { return set[n] }, nil
}

// runAll runs every workload against every configuration, in that order.
func (b *bench) runAll(ctx context.Context) {
	for _, wl := range b.workloads {
		for _, t := range b.targets {
			if t.supports(wl) && t.unavailable == "" {
				b.cost += b.opts.repeat
			}
		}
	}
	b.runStart = time.Now()
	// Rounds are interleaved (every configuration once, then again), so a
	// burst of load from other processes hits one round of many rows rather
	// than every round of one row.
	type cell struct {
		wl *workload
		t  *target
	}
	rounds := map[cell][]*result{}
	for round := 1; round <= b.opts.repeat; round++ {
		b.round = round
		for _, wl := range b.workloads {
			if round == 1 {
				b.logf("bench: workload %s: %s", wl.name, wl.desc)
			} else {
				b.logf("bench: workload %s, round %d of %d", wl.name, round, b.opts.repeat)
			}
			for _, t := range b.targets {
				rounds[cell{wl, t}] = append(rounds[cell{wl, t}], b.runCell(ctx, wl, t))
			}
		}
	}
	for _, wl := range b.workloads {
		for _, t := range b.targets {
			b.results = append(b.results, aggregate(rounds[cell{wl, t}]))
		}
	}
	b.saveRaw()
}

// runCell runs one configuration under one workload once.
func (b *bench) runCell(ctx context.Context, wl *workload, t *target) *result {
	r := &result{Workload: wl.name, Target: t.name, Peer: t.peer}
	switch {
	case !t.supports(wl):
		r.Status, r.Reason = statusUnsupported, "does not serve this workload"
		return r
	case t.unavailable != "":
		r.Status, r.Reason = statusUnavailable, t.unavailable
		return r
	}
	b.step++
	if b.stopped() {
		r.Status, r.Reason = statusSkipped, "interrupted"
		return r
	}
	if ctx.Err() != nil || !b.fits(wl) {
		r.Status, r.Reason = statusSkipped, "time budget exhausted"
		b.logf("%s %-16s %-16s skipped: time budget", b.tag(), wl.name, t.name)
		return r
	}
	b.runOne(ctx, wl, t, r)
	if b.stopped() && r.Status != statusOK {
		r.Status, r.Reason = statusSkipped, "interrupted"
	}
	return r
}

// tag is a progress line's prefix: step of steps, elapsed time, and an
// estimate of the time left from the average step so far.
func (b *bench) tag() string {
	el := time.Since(b.runStart)
	s := fmt.Sprintf("[%2d/%d %s", b.step, b.cost, clock(el))
	if done := b.step - 1; done > 0 && b.cost > done {
		s += " eta " + clock(el/time.Duration(done)*time.Duration(b.cost-done))
	}
	return s + "]"
}

// clock renders a duration as m:ss.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// fits tells whether a workload's estimated cost still fits the budget.
func (b *bench) fits(wl *workload) bool {
	if b.deadline.IsZero() {
		return true
	}
	est := 2 * time.Second // start + stop
	switch wl.kind {
	case kindClosed:
		est += time.Duration(len(b.levels(wl))) * (b.opts.duration + 200*time.Millisecond)
		if b.openFor(wl) {
			est += b.opts.openDuration
		}
	case kindSlow:
		est += b.opts.duration + 2*time.Second
	case kindIdle:
		est += 2 * time.Second
	case kindSpread:
		est = 2 * (2*time.Second + b.opts.duration)
	case kindReload:
		est += reloadFor
	}
	return time.Until(b.deadline) > est
}

// levels are the closed-loop concurrency levels of a workload.
func (b *bench) levels(wl *workload) []int {
	if len(wl.conc) > 0 {
		return wl.conc
	}
	return b.opts.concurrency
}

func (b *bench) openFor(wl *workload) bool {
	return b.opts.openDuration > 0 && (b.opts.openFor == nil || slices.Contains(b.opts.openFor, wl.name))
}

// runOne starts the server for one (workload, configuration), measures,
// and stops it.
func (b *bench) runOne(ctx context.Context, wl *workload, t *target, r *result) {
	if wl.kind == kindSpread {
		b.runSpread(ctx, wl, t, r) // two servers, started there
		return
	}
	srv, err := b.start(ctx, wl, t)
	if err != nil {
		// A configuration that cannot start will not start for the next
		// workload either: say so once and stop trying.
		r.Status, r.Reason = statusUnavailable, err.Error()
		t.unavailable = err.Error()
		b.logf("%s %-16s %-16s unavailable: %s", b.tag(), wl.name, t.name, err)
		return
	}
	defer srv.stop(5 * time.Second)
	r.CPUs, r.Procs = treeCPUsAllowed(srv.pid), len(tree(srv.pid))
	for _, p := range uniq(append([]string{wl.probePath()}, wl.paths...)) {
		req := request{method: wl.method, path: p, body: wl.body}
		if p == wl.probePath() && !slices.Contains(wl.paths, p) {
			req = request{path: p}
		}
		if err := checkPath(ctx, srv.addr, req, b.opts.reqTimeout); err != nil {
			r.Status, r.Reason = statusFailed, err.Error()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				// It accepted the probe but does not answer a plain GET:
				// broken for every workload, so stop spending time on it.
				t.unavailable = "started but did not answer " + p + " within " + b.opts.reqTimeout.String()
			}
			b.logf("%s %-16s %-16s failed: %s", b.tag(), wl.name, t.name, err)
			return
		}
	}
	r.Status = statusOK
	switch wl.kind {
	case kindClosed:
		b.measureClosed(ctx, wl, t, srv, r)
		b.syscallPhase(ctx, wl, t, srv, r)
	case kindSlow:
		b.measureSlow(ctx, wl, t, srv, r)
	case kindIdle:
		b.measureIdle(ctx, wl, t, srv, r)
	case kindReload:
		b.measureReload(ctx, wl, t, srv, r)
	}
	if srv.exited() {
		r.Status, r.Reason = statusFailed, "server exited during the run: "+srv.tail(2)
	}
}

// start launches a configuration on a fresh port and waits until it serves,
// retrying when another process took the port first.
func (b *bench) start(ctx context.Context, wl *workload, t *target) (*serverProc, error) {
	return b.startArgs(ctx, wl, t, nil, t.procs, "")
}

// startArgs is start with extra multiserve flags (put before the APP
// argument), the process count to wait for, and a log name suffix.
func (b *bench) startArgs(ctx context.Context, wl *workload, t *target, extra []string, procs int, suffix string) (*serverProc, error) {
	var lastErr error
	name := fmt.Sprintf("%s.%s", wl.name, t.name)
	if suffix != "" {
		name += "." + suffix
	}
	for attempt := range 3 {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		argv := t.argv(addr, wl)
		if len(extra) > 0 {
			app := argv[len(argv)-1]
			argv = append(append(slices.Clone(argv[:len(argv)-1]), extra...), app)
		}
		logPath := filepath.Join(b.rawDir, name+".log")
		srv, err := startServer(argv, nil, b.tmp, b.split.server, addr, logPath)
		if err != nil {
			return nil, err
		}
		err = srv.waitReady(ctx, wl.probePath(), procs, b.opts.startTimeout)
		if err == nil {
			return srv, nil
		}
		srv.stop(2 * time.Second)
		lastErr = err
		if !isBindError(err) {
			break
		}
		b.logf("bench: %s lost the port race (attempt %d), retrying", t.name, attempt+1)
	}
	return nil, lastErr
}

func (b *bench) spec(srv *serverProc, wl *workload, c int, d time.Duration) loadSpec {
	return loadSpec{addr: srv.addr, paths: wl.paths, method: wl.method, body: wl.body, close: wl.close,
		concurrency: c, duration: d, timeout: b.opts.reqTimeout}
}

// warmup is the unmeasured load before a closed-loop sweep.
const warmup = 300 * time.Millisecond

// charge runs f and returns the server's CPU time during it, and the CPU
// time other processes took on the server's CPUs meanwhile.
func (b *bench) charge(srv *serverProc, f func()) (cpu, others, elapsed time.Duration) {
	cpu0, busy0, t0 := treeCPU(srv.pid), cpuBusy(b.split.server), time.Now()
	f()
	cpu, busy, elapsed := treeCPU(srv.pid)-cpu0, cpuBusy(b.split.server)-busy0, time.Since(t0)
	if b.split.pinned() && busy > cpu {
		others = busy - cpu
	}
	return cpu, others, elapsed
}

// measure runs one closed-loop load and charges it the server's CPU.
func (b *bench) measure(ctx context.Context, srv *serverProc, s loadSpec) (point, error) {
	var lr loadResult
	var err error
	cpu, others, _ := b.charge(srv, func() { lr, err = b.driver.run(ctx, s) })
	p := point{Concurrency: s.concurrency, loadResult: lr, CPU: cpu, Others: others}
	if cpu > 0 {
		p.ReqPerCPU = float64(lr.Requests) / cpu.Seconds()
	}
	return p, err
}

func (b *bench) measureClosed(ctx context.Context, wl *workload, t *target, srv *serverProc, r *result) {
	// Warm up (first connections, heap growth, lazily started loops) so
	// the first level does not measure a cold server.
	_, _ = goDriver{}.run(ctx, b.spec(srv, wl, b.levels(wl)[0], warmup))
	for _, c := range b.levels(wl) {
		p, err := b.measure(ctx, srv, b.spec(srv, wl, c, b.opts.duration))
		if err != nil {
			r.Status, r.Reason = statusFailed, err.Error()
			b.logf("%s %-16s %-16s c=%-4d failed: %v", b.tag(), wl.name, t.name, c, err)
			return
		}
		r.Points = append(r.Points, p)
		b.logf("%s %-16s %-16s c=%-4d %s", b.tag(), wl.name, t.name, c, pointLine(p))
	}
	if !b.openFor(wl) {
		return
	}
	rate := wl.rate
	if b.opts.rate > 0 {
		rate = b.opts.rate
	}
	var o openResult
	cpu, others, elapsed := b.charge(srv, func() { o = runOpen(ctx, b.spec(srv, wl, 0, b.opts.openDuration), rate) })
	o.CPU, o.Others, o.Elapsed = cpu, others, elapsed
	r.Open = &o
	b.logf("%s %-16s %-16s open %d/s: %.0f ok/s, success %.1f%%, p50 %s, p99 %s", b.tag(), wl.name, t.name,
		rate, o.Throughput, 100*o.Success, fmtDur(o.P50), fmtDur(o.P99))
}

// measureSlow runs the normal load at the lowest concurrency level while
// slowK clients dribble their requests.
func (b *bench) measureSlow(ctx context.Context, wl *workload, t *target, srv *serverProc, r *result) {
	stopSlow := slowClients(ctx, srv.addr, wl.probePath(), b.opts.slowK)
	sleepCtx(ctx, 1200*time.Millisecond) // every slow client has connected and sent a byte
	p, err := b.measure(ctx, srv, b.spec(srv, wl, b.opts.concurrency[0], b.opts.duration))
	st := stopSlow()
	r.Slow = &st
	if err != nil {
		r.Status, r.Reason = statusFailed, err.Error()
		b.logf("%s %-16s %-16s failed: %v", b.tag(), wl.name, t.name, err)
		return
	}
	r.SlowLoad = &p
	b.logf("%s %-16s %-16s c=%-4d %s | %d slow: %d kicked, %d open at end", b.tag(), wl.name, t.name,
		p.Concurrency, pointLine(p), st.Clients, st.Kicked, st.OpenAtEnd)
}

// measureIdle opens idleN keep-alive connections and charges the growth
// of the server's RSS to those still open.
func (b *bench) measureIdle(ctx context.Context, wl *workload, t *target, srv *serverProc, r *result) {
	before := treeRSS(srv.pid)
	// Bound the opening phase: a server that stops accepting must not hold
	// the run for idleN dial timeouts.
	octx, cancel := context.WithTimeout(ctx, 10*time.Second+time.Duration(b.opts.idleN)*5*time.Millisecond)
	conns, failed, closed := idleConns(octx, srv.addr, wl.probePath(), b.opts.idleN)
	cancel()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sleepCtx(ctx, 500*time.Millisecond) // let the server finish its bookkeeping
	ir := idleResult{Conns: b.opts.idleN, Opened: len(conns), Failed: failed, Closed: closed,
		RSSBefore: before, RSSAfter: treeRSS(srv.pid), OpenAtEnd: stillOpen(conns)}
	if ir.OpenAtEnd > 0 {
		ir.PerConnKB = float64(ir.RSSAfter-ir.RSSBefore) / float64(ir.OpenAtEnd)
	}
	r.Idle = &ir
	b.logf("%s %-16s %-16s %d/%d open, RSS %d → %d KiB: %.1f KiB/conn (closed by server %d, failed %d)",
		b.tag(), wl.name, t.name, ir.OpenAtEnd, ir.Conns, ir.RSSBefore, ir.RSSAfter, ir.PerConnKB, closed, failed)
}

func pointLine(p point) string {
	return fmt.Sprintf("%9.0f req/s  p50 %-8s p99 %-8s err %-5d cpu %5.2fs  %8.0f req/cpu-s",
		p.RPS, fmtDur(p.P50), fmtDur(p.P99), p.Errors, p.CPU.Seconds(), p.ReqPerCPU)
}

// saveRaw writes every result as JSON next to the logs (not committed).
func (b *bench) saveRaw() {
	data, err := json.MarshalIndent(b.results, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(b.rawDir, "results.json"), data, 0o644)
	}
	if err != nil {
		b.logf("bench: save raw results: %v", err)
	}
}

// clearOutputs removes a previous report from a reused --out directory, so
// no stale chart survives next to the new report.
func clearOutputs(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
	for _, f := range append(old, filepath.Join(dir, "report.md"), filepath.Join(dir, "results.json"), filepath.Join(dir, "results.csv")) {
		_ = os.Remove(f)
	}
	_ = os.RemoveAll(filepath.Join(dir, "raw"))
}

func uniq(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
