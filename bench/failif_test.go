package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseFailIf(t *testing.T) {
	for _, c := range []struct {
		in   string
		want failIf
	}{
		{"custom:goroutine:p99>50ms", failIf{workload: "custom", target: "goroutine", metric: "p99", op: ">", value: 50, factor: 1}},
		{"hello:evloop:rps_per_cpu<0.9*gnetbare", failIf{workload: "hello", target: "evloop", metric: "rps_per_cpu", op: "<", factor: 0.9, other: "gnetbare"}},
		{"io:sync:errors >= 1%", failIf{workload: "io", target: "sync", metric: "errors", op: ">=", value: 0.01, factor: 1}},
		{"hello:evloop:rps<=goroutine", failIf{workload: "hello", target: "evloop", metric: "rps", op: "<=", factor: 1, other: "goroutine"}},
		{"idle:evloop:kib_per_conn>4", failIf{workload: "idle", target: "evloop", metric: "kib_per_conn", op: ">", value: 4, factor: 1}},
	} {
		got, err := parseFailIf(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		got.text = ""
		if got != c.want {
			t.Errorf("%q = %+v, want %+v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "hello:evloop", "hello:evloop:p99", "hello:evloop:p98>1ms", "hello:evloop:p99>", "hello:evloop:rps<x*gnetbare", "hello:evloop:rps<-1*gnetbare", ":evloop:rps>1"} {
		if _, err := parseFailIf(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// checkBench is a bench with hello results for evloop, goroutine and
// gnetbare, and an unavailable threaded.
func checkBench() *bench {
	b := &bench{}
	pt := func(c int, rps, eff float64, p99 time.Duration, errs int64) point {
		return point{Concurrency: c, loadResult: loadResult{Requests: int64(rps), Errors: errs, RPS: rps, P50: p99 / 4, P99: p99}, ReqPerCPU: eff}
	}
	b.results = []*result{
		{Workload: "hello", Target: "evloop", Status: statusOK, Points: []point{pt(16, 30000, 50000, 2*time.Millisecond, 0), pt(64, 40000, 52000, 60*time.Millisecond, 0)}},
		{Workload: "hello", Target: "goroutine", Status: statusOK, Points: []point{pt(16, 30000, 30000, time.Millisecond, 0), pt(64, 35000, 32000, 3*time.Millisecond, 700)}},
		{Workload: "hello", Target: "gnetbare", Peer: true, Status: statusOK, Points: []point{pt(16, 40000, 60000, time.Millisecond, 0)}},
		{Workload: "hello", Target: "threaded", Status: statusUnavailable, Reason: "did not build"},
	}
	b.targets = []*target{{name: "evloop"}, {name: "goroutine"}, {name: "threaded", unavailable: "did not build"}, {name: "gnetbare", peer: true}}
	return b
}

func TestFailIfNames(t *testing.T) {
	b := checkBench()
	b.workloads = []*workload{{name: "hello"}}
	for cond, ok := range map[string]bool{"hello:evloop:p99>fast": false, "hello:evlop:p99>1ms": false,
		"helo:evloop:p99>1ms": false, "hello:evloop:rps<threaded": true} {
		f, err := parseFailIf(cond)
		if err != nil {
			t.Fatal(err)
		}
		b.opts.failIf = []failIf{f}
		if err := b.validateFailIf(); (err == nil) != ok {
			t.Errorf("%s: validate = %v", cond, err)
		}
	}
}

func TestFailIfChecks(t *testing.T) {
	b := checkBench()
	for _, c := range []struct {
		cond   string
		failed bool
		line   string
	}{
		{"hello:evloop:p99>50ms", true, "p99 = 60"},                      // the worst level counts
		{"hello:evloop:p99>100ms", false, "p99 = 60"},                    //
		{"hello:evloop:rps_per_cpu<0.9*gnetbare", true, "limit 5.4e+04"}, // 52000 < 54000
		{"hello:evloop:rps_per_cpu<0.8*gnetbare", false, "gnetbare's = 6e+04"},
		{"hello:goroutine:errors>1%", true, "errors = 0.0196"}, // 700 of 35700
		{"hello:evloop:rps<goroutine", false, "rps = 4e+04"},
		{"hello:threaded:rps<1000", true, "cannot evaluate"},
		{"io:evloop:rps<1000", true, "cannot evaluate: evloop did not run io"},
	} {
		f, err := parseFailIf(c.cond)
		if err != nil {
			t.Fatal(err)
		}
		b.opts.failIf = []failIf{f}
		got := b.runChecks()[0]
		if got.failed != c.failed || !strings.Contains(got.line, c.line) {
			t.Errorf("%s: failed=%v %q, want failed=%v and %q", c.cond, got.failed, got.line, c.failed, c.line)
		}
	}
}

func TestExitCodes(t *testing.T) {
	failing, _ := parseFailIf("hello:evloop:p99>50ms")
	for _, c := range []struct {
		name  string
		setup func(b *bench)
		want  int
	}{
		{"ok", func(b *bench) {}, exitOK},
		{"unavailable but not asked for by name", func(b *bench) { b.opts.classes = "all" }, exitOK},
		{"asked-for class unavailable", func(b *bench) { b.opts.classes = "evloop,threaded" }, exitUnavailable},
		{"asked-for peer unavailable", func(b *bench) { b.targets[3].unavailable = "x"; b.opts.peersAsked = "gnetbare" }, exitUnavailable},
		{"fail-if held", func(b *bench) { b.opts.failIf = []failIf{failing} }, exitFailIf},
		{"nothing measured", func(b *bench) {
			for _, r := range b.results {
				r.Status = statusFailed
			}
			b.opts.classes = "evloop,threaded"
		}, exitNothing},
		{"interrupted", func(b *bench) { b.interrupted = true; b.opts.failIf = []failIf{failing} }, exitInterrupted},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := checkBench()
			c.setup(b)
			if got := b.outcome("r.md", b.runChecks()); got.code != c.want {
				t.Errorf("exit %d (%s), want %d", got.code, got.reason, c.want)
			}
		})
	}
}

// TestInterruptedRunWritesPartialReport runs the runner for real with a
// class that cannot start and a signal that arrives at once: the report is
// written, says it is partial, and the exit code says interrupted.
func TestInterruptedRunWritesPartialReport(t *testing.T) {
	out := t.TempDir()
	for _, c := range []struct {
		interrupted bool
		want        int
	}{{false, exitNothing}, {true, exitInterrupted}} {
		o, err := parseFlags([]string{"--bin", "/bin/false", "--classes", "sync,evloop", "--peers", "none",
			"--workloads", "hello", "--start-timeout", "2s", "--out", out})
		if err != nil {
			t.Fatal(err)
		}
		o.logw, o.skipBuildInfo = testLog{t}, true
		o.interrupted = func() bool { return c.interrupted }
		res, err := runBench(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if res.code != c.want {
			t.Errorf("interrupted=%v: exit %d (%s), want %d", c.interrupted, res.code, res.reason, c.want)
		}
		report, err := os.ReadFile(res.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(report), "**Interrupted**"); got != c.interrupted {
			t.Errorf("interrupted=%v: report marked interrupted: %v", c.interrupted, got)
		}
	}
}
