package main

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testLog sends progress lines to t.Log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunnerEndToEndNetHTTP runs the real runner in a tiny mode against the
// net/http peer: build, start pinned, readiness, Go driver, vegeta, slow
// and idle clients, stop, report and charts.
func TestRunnerEndToEndNetHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a server")
	}
	out := t.TempDir()
	o, err := parseFlags([]string{"--quick", "--classes", "none", "--peers", "nethttp",
		"--workloads", "hello,io,slow-clients,idle", "--driver", "go", "--duration", "300ms",
		"--concurrency", "2,8", "--slow", "5", "--idle", "20", "--out", out,
		"--fail-if", "hello:nethttp:rps<1", "--fail-if", "idle:nethttp:kib_per_conn>100000", "--syscalls", "on"})
	if err != nil {
		t.Fatal(err)
	}
	o.logw = testLog{t}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := runBench(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	path := res.path
	if res.code != exitOK {
		t.Errorf("exit code %d (%s), want 0", res.code, res.reason)
	}
	if left := tree(os.Getpid())[1:]; len(left) > 0 {
		t.Errorf("processes left running after the bench: %v", left)
	}
	report := readFile(t, path)
	for _, want := range []string{"## hello", "## io", "## slow-clients", "## idle",
		"req per server CPU-s", "Open loop (constant 5000 req/s", "- pass `hello:nethttp:rps<1`: rps = ", "## How to choose", "server processes' CPUs"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if _, err := exec.LookPath("strace"); err == nil && !regexp.MustCompile(`\| hello \| nethttp \(peer\) \| [1-9]`).MatchString(report) {
		t.Error("report lacks nethttp's syscalls per request (strace is installed)")
	}
	if !regexp.MustCompile(`\| nethttp \(peer\)( †)? \| 8 \| [1-9]`).MatchString(report) {
		t.Error("report lacks nethttp's row at 8 connections")
	}
	if strings.Contains(report, "nethttp failed") || strings.Contains(report, "nethttp unavailable") {
		t.Errorf("nethttp did not run:\n%s", report)
	}
	for _, f := range []string{"hello-throughput.svg", "hello-per-cpu.svg", "hello-latency.svg", "results.json", "results.csv", "io-throughput.svg", "io-latency.svg", "slow-clients.svg", "idle.svg", "raw/results.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	checkSVGs(t, out)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkSVGs asserts that every chart is well-formed XML with a title.
func checkSVGs(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.svg"))
	if len(files) == 0 {
		t.Fatal("no charts written")
	}
	for _, f := range files {
		d := xml.NewDecoder(strings.NewReader(readFile(t, f)))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		if !strings.Contains(readFile(t, f), "<title>") {
			t.Errorf("%s has no title", f)
		}
	}
}

// TestReportComputesWinners feeds synthetic results to the report and
// checks the computed verdicts, ratios and "how to choose" lines.
func TestReportComputesWinners(t *testing.T) {
	out := t.TempDir()
	ws, err := selectWorkloads("hello,slow-clients,idle", allWorkloads())
	if err != nil {
		t.Fatal(err)
	}
	hello, slow, idle := ws[0], ws[1], ws[2]
	b := &bench{opts: options{duration: time.Second, concurrency: []int{16, 64}, reqTimeout: 5 * time.Second, workers: 1, threads: 16},
		driver: goDriver{}, outDir: out, started: time.Now(), workloads: []*workload{hello, slow, idle}}
	for _, n := range []string{"sync", "goroutine", "evloop"} {
		b.targets = append(b.targets, &target{name: n})
	}
	b.targets = append(b.targets, &target{name: "gnetbare", peer: true}, &target{name: "threaded", unavailable: "unknown worker class"})
	pt := func(c int, rps, eff float64) point {
		return point{Concurrency: c, loadResult: loadResult{Requests: int64(rps), RPS: rps, P50: time.Millisecond, P99: 4 * time.Millisecond}, ReqPerCPU: eff}
	}
	add := func(r *result) { r.Status = statusOK; b.results = append(b.results, r) }
	add(&result{Workload: "hello", Target: "sync", Points: []point{pt(16, 5000, 6000), pt(64, 5200, 6100)}})
	add(&result{Workload: "hello", Target: "goroutine", Points: []point{pt(16, 30000, 30000), pt(64, 36000, 32000)}})
	add(&result{Workload: "hello", Target: "evloop", Points: []point{pt(16, 34000, 50000), pt(64, 40000, 52000)}})
	add(&result{Workload: "hello", Target: "gnetbare", Peer: true, Points: []point{pt(16, 40000, 55000), pt(64, 44000, 56000)}})
	b.results = append(b.results, &result{Workload: "hello", Target: "threaded", Status: statusUnavailable, Reason: "unknown worker class"})
	slowPt := func(rps float64, errs int64) *point { p := pt(16, rps, 1); p.Errors = errs; return &p }
	add(&result{Workload: "slow-clients", Target: "sync", SlowLoad: slowPt(10, 500), Slow: &slowStats{Clients: 500}})
	add(&result{Workload: "slow-clients", Target: "goroutine", SlowLoad: slowPt(29000, 0), Slow: &slowStats{Clients: 500}})
	add(&result{Workload: "slow-clients", Target: "evloop", SlowLoad: slowPt(33000, 0), Slow: &slowStats{Clients: 500}})
	add(&result{Workload: "idle", Target: "sync", Idle: &idleResult{Conns: 1000, Closed: 1000}})
	add(&result{Workload: "idle", Target: "goroutine", Idle: &idleResult{Conns: 1000, OpenAtEnd: 1000, PerConnKB: 9}})
	add(&result{Workload: "idle", Target: "evloop", Idle: &idleResult{Conns: 1000, OpenAtEnd: 1000, PerConnKB: 3}})

	path, err := b.writeReport(nil)
	if err != nil {
		t.Fatal(err)
	}
	report := readFile(t, path)
	for _, want := range []string{
		"By requests per server CPU-second, **evloop** wins with 52,000 req/CPU-s: 1.62× goroutine, 8.52× sync.",
		"By peak throughput, **evloop** wins with 40,000 req/s (at 64 connections): 1.11× goroutine, 7.69× sync (evloop and goroutine within 10 %",
		"evloop ÷ goroutine = 1.62× req/CPU-s, 1.11× req/s",
		"evloop ÷ bare gnet = 0.93× req/CPU-s",
		"Best peer by requests per server CPU-second: gnetbare, 56,000 req/CPU-s; evloop reaches 0.93× of it.",
		"Starved by slow clients: sync.",
		"**evloop** holds 1,000 idle connections most cheaply, 3.0 KiB each; goroutine 9.0 KiB (3.00×)",
		"sync closes every connection after its response",
		"(`hello`) → **evloop**. Ranked by requests per server CPU-second: 52,000 req/CPU-s",
		"(`idle`) → **evloop**. 3.0 KiB per idle connection; goroutine uses 3.00× as much.",
		"Overall in this run, **evloop** is the first choice: it collapses on none of the 3 workloads",
		"Not eligible: sync collapses on hello, slow-clients",
		"**This run had no workload where requests wait**",
		"Not covered by this run (not selected, or nothing measured): handlers that mostly wait on a database or another service (`io`)",
		"threaded unavailable (see Configurations)",
		"| workload | deciding metric | sync | goroutine | evloop | threaded |",
		"| hello | req/CPU-s | 0.12 | 0.62 | **1.00** | – |",
		"| idle | fewest KiB per idle conn | – | 0.33 | **1.00** | – |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(report)
	}
	checkSVGs(t, out)
}

func TestParseWrk(t *testing.T) {
	out := `Running 3s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.53ms  412.00us  12.01ms   90.00%
    Req/Sec    41.93k     1.20k   43.00k    80.00%
  Latency Distribution
     50%    1.48ms
     75%    1.70ms
     90%    1.93ms
     99%    2.61ms
  125161 requests in 3.00s, 15.40MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  41716.27
Transfer/sec:      5.13MB
`
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{Requests: 125161, Errors: 12, ReadErrors: 3, Non2xx: 7, Elapsed: 3 * time.Second, RPS: 41716.27,
		P50: 1480 * time.Microsecond, P90: 1930 * time.Microsecond, P99: 2610 * time.Microsecond, Max: 12010 * time.Microsecond}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("parseWrk = %+v, want %+v", r, want)
	}
	// The done() of the bench's wrk script adds the distribution.
	r, err = parseWrk(out + "BENCHPCT 50 1470\nBENCHPCT 90 1950\nBENCHPCT 99 2600\nBENCHPCT 99.9 5200\nBENCHPCT 100 12010\n")
	if err != nil {
		t.Fatal(err)
	}
	if r.P50 != 1470*time.Microsecond || r.P999 != 5200*time.Microsecond || r.Max != 12010*time.Microsecond || len(r.Dist) != 5 {
		t.Errorf("parseWrk with the distribution = %+v", r)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("parseWrk accepted output without a request count")
	}
}

func TestChartsAxes(t *testing.T) {
	// Coinciding series: the first is drawn wider, so the second on top
	// leaves it visible as a rim.
	twin := lineChart{title: "hello, GET /: t", yTick: humanNumber, series: []series{
		{name: "a", color: "#111111", xs: []float64{1, 2}, ys: []float64{5, 5}},
		{name: "b", color: "#222222", xs: []float64{1, 2}, ys: []float64{5, 5}}}}.svg()
	if !strings.Contains(twin, `stroke="#111111" stroke-width="6.0"`) || !strings.Contains(twin, `stroke="#222222" stroke-width="2.0"`) {
		t.Errorf("coinciding series drawn alike:\n%s", twin)
	}
	if got := (&workload{name: "conn-per-request", paths: []string{"/"}, close: true}).route(); got != "conn-per-request, GET / (Connection: close)" {
		t.Errorf("route = %q", got)
	}
	if got := niceStep(3700); got != 5000 {
		t.Errorf("niceStep(3700) = %v", got)
	}
	a := valueAxis([]float64{0.3, 250}, true, 370, 48)
	if a.ticks[0] != 0.1 || a.ticks[len(a.ticks)-1] != 1000 {
		t.Errorf("log axis ticks %v, want 0.1 … 1000", a.ticks)
	}
	for _, c := range []struct {
		v    float64
		want string
	}{{950, "950"}, {1200, "1.2k"}, {45000, "45k"}, {1.5e6, "1.5M"}, {0.25, "0.25"}} {
		if got := humanNumber(c.v); got != c.want {
			t.Errorf("humanNumber(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := ratio(52000, 32000); got != "1.62×" {
		t.Errorf("ratio = %q", got)
	}
	if got := fmtNum(1234567); got != "1,234,567" {
		t.Errorf("fmtNum = %q", got)
	}
}
