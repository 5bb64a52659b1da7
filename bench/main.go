// Command bench compares multiserve's worker classes (and peer servers)
// per workload and writes bench/results/<UTC time>/report.md with SVG
// charts. See bench/README.md.
//
//	go run ./bench --quick                    # < 2 minutes, a few workloads
//	go run ./bench                            # the full matrix, 3 rounds, about 40 minutes (prints an ETA)
//	go run ./bench --pkg ./cmd/myserver --path /api/x  # your own handler (bench/README.md)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// subcommands read committed results instead of measuring.
var subcommands = map[string]func(args []string, w io.Writer) error{
	"compare": runCompare, // bench compare OLD NEW
	"summary": runSummary, // bench summary RUN
}

func main() {
	if len(os.Args) > 1 {
		if sub, ok := subcommands[os.Args[1]]; ok {
			if err := sub(os.Args[2:], os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(exitError)
			}
			return
		}
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitUsage)
	}
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o.interrupted = func() bool { return sig.Err() != nil }
	ctx := sig
	if o.budget > 0 {
		var cancel context.CancelFunc
		// The budget stops measuring; the report still gets written.
		ctx, cancel = context.WithTimeout(ctx, o.budget)
		defer cancel()
	}
	out, err := runBench(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitError)
	}
	for _, c := range out.checks {
		fmt.Println("bench: check:", c.line)
	}
	fmt.Println("bench: report:", out.path)
	if out.code != exitOK {
		fmt.Fprintf(os.Stderr, "bench: exit %d: %s\n", out.code, out.reason)
	}
	os.Exit(out.code)
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o := options{logw: os.Stdout, commandLine: "go run ./bench " + shellJoin(args)}
	var conc string
	var dur, openDur, budget time.Duration
	fs.BoolVar(&o.quick, "quick", false, "small run (< 2 min): hello, io, slow-clients, idle, spread (evloop, goroutine); short durations; 2 concurrency levels; 500 idle conns")
	fs.StringVar(&o.classes, "classes", "all", "multiserve rows: all, none, or a list of sync,threaded,evloop,evloop-pool,goroutine,auto (with --pkg/--bin, also the classes your program registers)")
	fs.StringVar(&o.peers, "peers", "", "peer rows: all, none, or a list of nethttp,gnetbare,nginx,gunicorn-sync,gunicorn-gthread,gunicorn-gevent (default: all; with --quick: nethttp,gnetbare)")
	fs.StringVar(&o.workloads, "workloads", "", "workloads: all or a list of hello,io,io-1000,cpu,mixed,large,conn-per-request,slow-clients,idle,reload,spread (and custom with --path)")
	fs.DurationVar(&dur, "duration", 0, "closed-loop time per concurrency level (default 2s; quick 1s)")
	fs.DurationVar(&openDur, "open-duration", -1, "open-loop (constant rate) run per workload; 0 disables (default = --duration)")
	fs.StringVar(&conc, "concurrency", "", "closed-loop connection counts (default 16,64,256; quick 8,64)")
	fs.IntVar(&o.repeat, "repeat", 0, "rounds of the whole matrix, interleaved; tables show medians with min–max, and the tie threshold comes from the spread (default 3; quick 1)")
	var syscalls string
	fs.StringVar(&syscalls, "syscalls", "", "on or off: count syscalls per request with strace in a separate phase after hello and conn-per-request (default on, off with --quick; needs strace and ptrace rights)")
	fs.IntVar(&o.workers, "workers", 1, "worker processes for every configuration (same CPU budget)")
	fs.IntVar(&o.threads, "threads", 16, "threaded class and gunicorn gthread pool size")
	fs.StringVar(&o.app, "app", "", "your APP (the name your program registered) to bench at --path; with --pkg/--bin it may be left out when the program registers exactly one")
	fs.Func("path", "request path to bench (adds the 'custom' workload; e.g. /api/users?id=1); repeatable, WEIGHT:/path sends it WEIGHT times as often (3:/a 1:/b)", func(s string) error {
		o.pathArgs = append(o.pathArgs, s)
		return nil
	})
	fs.StringVar(&o.probePath, "probe-path", "", "GET path that answers 200 once your app is up, for readiness, slow and idle clients (default: the first --path)")
	fs.StringVar(&o.method, "method", "", "HTTP method of the custom workload's requests (default GET)")
	var body string
	fs.StringVar(&body, "body", "", "request body of the custom workload (@FILE reads it from FILE)")
	fs.IntVar(&o.pool, "pool", 0, "evloop-pool's handler pool size (default 4; io-1000 uses 1000)")
	var serverFlags string
	fs.StringVar(&serverFlags, "server-flags", "", "extra multiserve flags for every class configuration, space-separated (e.g. '--keep-alive 5 --backlog 4096')")
	fs.IntVar(&o.rate, "rate", 0, "open-loop requests per second for every workload (default: per workload)")
	fs.StringVar(&o.bin, "bin", "", "use this multiserve-compatible binary instead of building ./cmd/multiserve (e.g. your program built on the library)")
	fs.StringVar(&o.pkg, "pkg", "", "build this package instead of ./cmd/multiserve (e.g. ./examples/myapp)")
	fs.StringVar(&o.out, "out", "", "output directory (default bench/results/<UTC time>)")
	fs.IntVar(&o.slowK, "slow", 0, "slow clients in slow-clients (default 500; quick 50)")
	fs.IntVar(&o.idleN, "idle", 0, "connections in idle (default 10000; quick 500)")
	fs.StringVar(&o.driver, "driver", "auto", "closed-loop driver: auto (wrk if installed), wrk, go")
	fs.DurationVar(&budget, "budget", 0, "stop measuring after this long and write the report (default none; quick 100s)")
	fs.DurationVar(&o.startTimeout, "start-timeout", 15*time.Second, "how long a server may take to serve after start")
	fs.DurationVar(&o.reqTimeout, "timeout", 5*time.Second, "a request slower than this is an error")
	fs.IntVar(&o.nice, "nice", 0, "nice value for the runner, the servers and wrk; negative (root) shields the measurement from other processes")
	fs.Func("fail-if", "fail the run (exit 5) when this holds: WORKLOAD:CONFIG:METRIC OP VALUE, e.g. custom:goroutine:p99>50ms, hello:evloop:rps_per_cpu<0.9*gnetbare; repeatable; metrics: "+strings.Join(sortedKeys(failMetrics), ", "), func(s string) error {
		f, err := parseFailIf(s)
		o.failIf = append(o.failIf, f)
		return err
	})
	fs.StringVar(&o.serverCPUs, "server-cpus", "", "CPUs for the server (default: the first usable CPU)")
	fs.StringVar(&o.loadCPUs, "load-cpus", "", "CPUs for the load generators (default: the other usable CPUs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	o.peersAsked = o.peers
	switch syscalls {
	case "on":
		o.syscalls = true
	case "off":
	case "":
		o.syscalls = !o.quick
	default:
		return o, fmt.Errorf("bench: --syscalls %q: on or off", syscalls)
	}
	o.serverFlags = strings.Fields(serverFlags)
	if err := ownHandlerFlags(&o, body); err != nil {
		return o, err
	}
	applyDefaults(&o, dur, openDur, budget)
	var err error
	if conc != "" {
		if o.concurrency, err = parseInts(conc); err != nil {
			return o, err
		}
	}
	if o.repeat < 1 {
		return o, fmt.Errorf("bench: --repeat must be at least 1")
	}
	if o.workers < 1 {
		return o, fmt.Errorf("bench: --workers must be at least 1")
	}
	return o, nil
}

// ownHandlerFlags checks and resolves --path, --app, --probe-path, --method
// and --body, so a typo fails at once instead of after a 15 s start-up wait.
func ownHandlerFlags(o *options, body string) error {
	custom := len(o.pathArgs) > 0
	switch {
	case !custom && (o.app != "" || o.method != "" || body != "" || o.probePath != ""):
		return errors.New("bench: --app, --method, --body and --probe-path describe the custom workload: give --path too")
	case custom && o.app == "" && o.bin == "" && o.pkg == "":
		return errors.New("bench: --path needs --app (the app that serves it; built in: hello, echo, sim), or --pkg/--bin of your program")
	case o.pool < 0:
		return errors.New("bench: --pool must be positive")
	}
	var err error
	if o.paths, err = weightedPaths(o.pathArgs); err != nil {
		return err
	}
	if o.probePath != "" {
		if err := validPath(o.probePath); err != nil {
			return fmt.Errorf("bench: --probe-path: %w", err)
		}
	}
	if o.method != "" && !validMethod(o.method) {
		return fmt.Errorf("bench: --method %q: not an HTTP method token", o.method)
	}
	if file, ok := strings.CutPrefix(body, "@"); ok {
		if o.body, err = os.ReadFile(file); err != nil {
			return fmt.Errorf("bench: --body: %w", err)
		}
	} else if body != "" {
		o.body = []byte(body)
	}
	if custom && o.workloads == "" {
		o.workloads = "custom"
	}
	return nil
}

// maxWeight bounds a path's weight: the paths are expanded into a list the
// drivers send in turn.
const maxWeight = 100

// weightedPaths expands "3:/a", "/b" into /a /a /a /b.
func weightedPaths(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		w, p := 1, a
		if n, rest, ok := strings.Cut(a, ":"); ok && !strings.HasPrefix(a, "/") {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 || v > maxWeight {
				return nil, fmt.Errorf("bench: --path %q: the weight before ':' must be 1 to %d", a, maxWeight)
			}
			w, p = v, rest
		}
		if err := validPath(p); err != nil {
			return nil, fmt.Errorf("bench: --path %q: %w", a, err)
		}
		for range w {
			out = append(out, p)
		}
	}
	return out, nil
}

// validPath accepts an origin-form request target: /path?query.
func validPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("a request path starts with / (did you mean /%s?)", p)
	}
	if strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		return errors.New("spaces, control and non-ASCII characters must be percent-encoded")
	}
	if _, err := url.ParseRequestURI(p); err != nil {
		return err
	}
	return nil
}

// validMethod accepts an RFC 9110 token.
func validMethod(m string) bool {
	return m != "" && strings.IndexFunc(m, func(r rune) bool {
		return r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) < 0
}

// shellJoin quotes the arguments that a shell would split or expand, so the
// report's command can be pasted back.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`&|;<>()*?[]{}#~!") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// applyDefaults fills what the flags left unset, by mode.
func applyDefaults(o *options, dur, openDur, budget time.Duration) {
	full := options{duration: 2 * time.Second, concurrency: []int{16, 64, 256}, slowK: 500, idleN: 10000, peers: "all", repeat: 3}
	if o.quick {
		full = options{duration: time.Second, concurrency: []int{8, 64}, slowK: 50, idleN: 500, repeat: 1,
			peers: "nethttp,gnetbare", budget: 100 * time.Second, openFor: []string{"hello"}}
		if o.workloads == "" && len(o.paths) == 0 {
			o.workloads = "hello,io,slow-clients,idle,spread"
		}
	}
	o.duration = pick(dur, full.duration)
	o.openDuration = o.duration
	if openDur >= 0 {
		o.openDuration = openDur
	}
	o.concurrency = full.concurrency
	o.slowK = pick(o.slowK, full.slowK)
	o.repeat = pick(o.repeat, full.repeat)
	o.idleN = pick(o.idleN, full.idleN)
	if o.peers == "" {
		o.peers = full.peers
	}
	o.budget = pick(budget, full.budget)
	o.openFor = full.openFor
}

func pick[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bench: bad concurrency %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}
