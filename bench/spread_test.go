package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStatusAndDelta(t *testing.T) {
	before, err := parseStatus([]byte(`{"summary":{"workers":3},"workers":[
		{"pid":10,"requests":5},{"pid":11,"requests":7},{"pid":12,"requests":0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseStatus([]byte(`{"workers":[
		{"pid":10,"requests":105,"state":"idle"},{"pid":11,"requests":57},{"pid":13,"requests":40}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// pid 12 is gone, pid 13 is new (counts from zero).
	if got, want := perWorkerDelta(before, after), []uint64{40, 50, 100}; !slices.Equal(got, want) {
		t.Errorf("perWorkerDelta = %v, want %v", got, want)
	}
	if _, err := parseStatus([]byte("not json")); err == nil {
		t.Error("parseStatus accepted garbage")
	}
}

func TestSpreadStats(t *testing.T) {
	for _, c := range []struct {
		per    []uint64
		lo, hi uint64
		spread float64
	}{
		{[]uint64{100, 100, 100}, 100, 100, 0},
		{[]uint64{50, 100, 150}, 50, 150, 1},
		{[]uint64{0, 0, 300}, 0, 300, 3},
		{[]uint64{0, 0, 0}, 0, 0, 0},
		{nil, 0, 0, 0},
	} {
		m := spreadMode{PerWorker: c.per}
		lo, hi := m.minMax()
		if lo != c.lo || hi != c.hi || m.spread() != c.spread {
			t.Errorf("%v: min %d max %d spread %v, want %d %d %v", c.per, lo, hi, m.spread(), c.lo, c.hi, c.spread)
		}
	}
}

// TestReportSpread feeds synthetic spread results to the report: the table
// has a row per class and socket, the verdict compares the two sockets, and
// the workload gets no row in the winners matrix nor a "how to choose" line.
func TestReportSpread(t *testing.T) {
	ws, err := selectWorkloads("hello,spread", allWorkloads())
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{opts: options{duration: 2 * time.Second, concurrency: []int{16}, reqTimeout: 5 * time.Second, workers: 1, threads: 16},
		driver: goDriver{}, outDir: t.TempDir(), started: time.Now(), workloads: ws}
	for _, n := range []string{"evloop", "goroutine", "threaded"} {
		b.targets = append(b.targets, &target{name: n})
	}
	b.targets = append(b.targets, &target{name: "nethttp", peer: true})
	if b.targets[2].supports(ws[1]) || b.targets[3].supports(ws[1]) {
		t.Error("spread runs only its classes, never a peer")
	}
	load := func(rps float64) point {
		return point{Concurrency: 16, loadResult: loadResult{Requests: int64(2 * rps), RPS: rps}}
	}
	b.results = []*result{
		{Workload: "hello", Target: "evloop", Status: statusOK, Points: []point{load(30000)}},
		{Workload: "spread", Target: "evloop", Status: statusOK, Spread: []spreadMode{
			{PerWorker: []uint64{1651, 4221, 6076}, Load: load(5904)},
			{ReusePort: true, PerWorker: []uint64{2933, 3001, 3007}, Load: load(4414)},
		}},
		{Workload: "spread", Target: "goroutine", Status: statusFailed, Reason: "stats /status: connection refused"},
		{Workload: "spread", Target: "threaded", Status: statusUnsupported},
		{Workload: "spread", Target: "nethttp", Peer: true, Status: statusUnsupported},
	}
	path, err := b.writeReport(nil)
	if err != nil {
		t.Fatal(err)
	}
	report := readFile(t, path)
	for _, want := range []string{
		"## spread",
		"3 workers, 16 connections, a new connection per request, 2s per run",
		"| evloop | shared | 1,651 / 4,221 / 6,076 | 1,651 | 6,076 | 111 % | 5,904 | 0 |",
		"| evloop | reuse_port | 2,933 / 3,001 / 3,007 | 2,933 | 3,007 | 2 % | 4,414 | 0 |",
		"**Verdict:** Spread of requests across workers with reuse_port vs the shared socket (0 % is even): evloop 2 % vs 111 %.",
		"- **spread**: spread of requests across workers",
		"Not measured: goroutine failed (stats /status: connection refused).",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(report, "| spread |") || strings.Contains(report, "(`spread`)") {
		t.Error("spread has no winner: it must not appear in the matrix or in how to choose")
	}
	if t.Failed() {
		t.Log(report)
	}
}
