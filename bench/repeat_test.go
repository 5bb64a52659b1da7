package main

import (
	"strings"
	"testing"
	"time"
)

func TestAggregateRounds(t *testing.T) {
	pt := func(rps, eff float64, p99 time.Duration, others time.Duration) point {
		return point{Concurrency: 16, loadResult: loadResult{Requests: int64(rps), RPS: rps, P99: p99, Max: 2 * p99, Elapsed: time.Second},
			CPU: time.Second, Others: others, ReqPerCPU: eff}
	}
	ok := func(p point) *result { return &result{Status: statusOK, Points: []point{p}} }
	got := aggregate([]*result{
		ok(pt(1000, 5000, 3*time.Millisecond, 0)),
		{Status: statusFailed, Reason: "server exited"},
		ok(pt(1400, 4000, 9*time.Millisecond, 300*time.Millisecond)),
		ok(pt(1200, 4500, 4*time.Millisecond, 0)),
	})
	p := got.Points[0]
	if p.RPS != 1200 || p.ReqPerCPU != 4500 || p.P99 != 4*time.Millisecond || p.Max != 18*time.Millisecond {
		t.Errorf("medians: rps %v eff %v p99 %v max %v", p.RPS, p.ReqPerCPU, p.P99, p.Max)
	}
	if *p.RPSSpan != (span{1000, 1400}) || *p.EffSpan != (span{4000, 5000}) || p.Rounds != 3 {
		t.Errorf("spans %v %v rounds %d", p.RPSSpan, p.EffSpan, p.Rounds)
	}
	if p.Requests != 3600 || p.CPU != 3*time.Second || p.Elapsed != 3*time.Second || noisy(p) {
		t.Errorf("sums: requests %d cpu %v elapsed %v, noisy %v (others 10 %% of one round of three)", p.Requests, p.CPU, p.Elapsed, noisy(p))
	}
	if got.Status != statusOK || !strings.Contains(got.Reason, "1 of 4 rounds did not measure (failed: server exited)") {
		t.Errorf("status %s reason %q", got.Status, got.Reason)
	}
	if !noisy(pt(1, 1, 0, 200*time.Millisecond)) {
		t.Error("others at 20 % not flagged")
	}
	if r := aggregate([]*result{{Status: statusFailed, Reason: "a"}, {Status: statusUnavailable, Reason: "b"}}); r.Status != statusUnavailable {
		t.Errorf("all rounds failed: status %s", r.Status)
	}
}

func TestTieThresholdFromSpread(t *testing.T) {
	hello := allWorkloads()[0]
	b := &bench{workloads: []*workload{hello}, opts: options{repeat: 3}}
	eff := func(name string, v, lo, hi float64) *result {
		return &result{Workload: "hello", Target: name, Status: statusOK,
			Points: []point{{Concurrency: 16, ReqPerCPU: v, EffSpan: &span{lo, hi}, loadResult: loadResult{RPS: v}}}}
	}
	b.results = []*result{eff("a", 100, 90, 110), eff("b", 100, 80, 120), eff("c", 100, 70, 130)}
	if got := b.tieThreshold(); got < 0.399 || got > 0.401 {
		t.Errorf("tie threshold %v, want the median spread 0.40", got)
	}
	b.results = []*result{eff("a", 100, 100, 100.5)}
	if got := b.tieThreshold(); got != 0.03 {
		t.Errorf("tie threshold %v, want the 3 %% floor", got)
	}
	b.results = []*result{{Workload: "hello", Target: "a", Status: statusOK, Points: []point{{Concurrency: 16, ReqPerCPU: 1}}}}
	if got := b.tieThreshold(); got != defaultTie {
		t.Errorf("single round: tie threshold %v, want %v", got, defaultTie)
	}
}
