package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestResultsFile writes the results of a synthetic run and reads them
// back: schema, units, metadata, rows per mode, the histogram, the CSV.
func TestResultsFile(t *testing.T) {
	out := t.TempDir()
	b := &bench{outDir: out, started: time.Now(), opts: options{repeat: 3, duration: time.Second, concurrency: []int{16}, workers: 1, commandLine: "go run ./bench"},
		info: buildInfo{Commit: "abc123", GoVersion: "go1.26"}, loadStart: "0.5", loadEnd: "0.7", tie: 0.05}
	p := point{Concurrency: 16, loadResult: loadResult{Requests: 3000, RPS: 1000, P99: 2 * time.Millisecond, P999: 5 * time.Millisecond,
		Dist: []pct{{50, time.Millisecond}, {100, 9 * time.Millisecond}}}, ReqPerCPU: 5000, Rounds: 3,
		RPSSpan: &span{900, 1100}, EffSpan: &span{4800, 5200}}
	b.results = []*result{
		{Workload: "hello", Target: "evloop", Status: statusOK, Points: []point{p}, Open: &openResult{Throughput: 500, Requests: 1000, Success: 1}},
		{Workload: "idle", Target: "evloop", Status: statusOK, Idle: &idleResult{PerConnKB: 2.5, OpenAtEnd: 100, PerConnSpan: &span{2, 3}}},
		{Workload: "hello", Target: "nginx", Peer: true, Status: statusUnavailable, Reason: "not installed"},
	}
	if err := b.writeResults(); err != nil {
		t.Fatal(err)
	}
	rf, err := readResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if rf.Run.Commit != "abc123" || rf.Run.Options.Repeat != 3 || rf.Run.TieThreshold != 0.05 || rf.Units["*_us"] != "microseconds" {
		t.Errorf("metadata %+v units %v", rf.Run, rf.Units)
	}
	if len(rf.Rows) != 4 {
		t.Fatalf("rows %+v", rf.Rows)
	}
	c := rf.Rows[0]
	if c.Mode != "closed" || c.RPS != 1000 || c.RPSMin != 900 || c.ReqPerCPUMax != 5200 || c.P999 != 5000 || c.Rounds != 3 ||
		len(c.Latency) != 2 || c.Latency[1] != (latency{P: 100, US: 9000}) {
		t.Errorf("closed row %+v", c)
	}
	if o, i, u := rf.Rows[1], rf.Rows[2], rf.Rows[3]; o.Mode != "open" || i.Mode != "idle" || i.KiBMax != 3 || u.Status != statusUnavailable {
		t.Errorf("open %+v idle %+v unavailable %+v", o, i, u)
	}
	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[0][0] != "schema" || recs[1][0] != resultsSchema || recs[1][8] != "1000" {
		t.Errorf("csv %v", recs)
	}
	if _, err := readResults(filepath.Join(out, "results.csv")); err == nil {
		t.Error("readResults accepted a CSV")
	}
}

func TestCompare(t *testing.T) {
	run := func(repeat int, tie float64, rows ...row) resultsFile {
		return resultsFile{Schema: resultsSchema, Run: runMeta{Commit: "c", TieThreshold: tie, Options: runOptions{Repeat: repeat}}, Rows: rows}
	}
	cl := func(cfg string, rps, lo, hi, p99 float64, rounds int) row {
		return row{Workload: "hello", Config: cfg, Mode: "closed", Status: statusOK, Concurrency: 16, Rounds: rounds,
			RPS: rps, RPSMin: lo, RPSMax: hi, ReqPerCPU: rps, ReqPerCPUMin: lo, ReqPerCPUMax: hi, P99: p99}
	}
	old := run(3, 0.05, cl("evloop", 1000, 950, 1050, 2000, 3), cl("goroutine", 1000, 950, 1050, 2000, 3), cl("sync", 100, 90, 110, 1000, 3))
	cur := run(3, 0.05, cl("evloop", 1020, 1000, 1100, 2050, 3), cl("goroutine", 1300, 1250, 1350, 1000, 3), cl("threaded", 500, 490, 510, 1, 3))
	var w strings.Builder
	compareResults(&w, old, cur)
	got := w.String()
	flat := strings.Join(strings.Fields(got), " ")
	for _, want := range []string{
		"hello evloop closed 16 req/s 1,000 ±5% 1,020 ±5% ~",                 // ranges overlap
		"hello goroutine closed 16 req/s 1,000 ±5% 1,300 ±4% 1.30× (better)", // they do not
		"hello goroutine closed 16 p99 µs 2,000 1,000 0.50× (better)",        // lower wins; no range, beyond 5 %
		"hello evloop closed 16 p99 µs 2,000 2,050 ~",                        // no range, within the tie threshold
		"hello goroutine closed 16 req/CPU-s 1,000 ±5% 1,300 ±4% 1.30× (better)",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("lacks %q", want)
		}
	}
	for _, want := range []string{"only in old: hello|sync|closed|16", "only in new: hello|threaded|closed|16"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(got)
	}
}
