package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestReloadWorkload runs the reload workload for real against one class:
// four HUPs reach the arbiter during the load, the server keeps serving
// (the row is ok), and the report has the table. It does not assert the
// loss count: that is what the workload measures.
func TestReloadWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a server")
	}
	out := t.TempDir()
	o, err := parseFlags([]string{"--workloads", "reload", "--classes", "goroutine", "--peers", "none", "--workers", "2",
		"--repeat", "1", "--out", out, "--fail-if", "reload:goroutine:lost>1000000"})
	if err != nil {
		t.Fatal(err)
	}
	o.logw, o.skipBuildInfo = testLog{t}, true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := runBench(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.code != exitOK {
		t.Errorf("exit %d: %s", res.code, res.reason)
	}
	rf, err := readResults(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.Rows) != 1 || rf.Rows[0].Mode != "reload" || rf.Rows[0].Status != statusOK || rf.Rows[0].HUPs != 4 || rf.Rows[0].Requests == 0 {
		t.Errorf("rows %+v", rf.Rows)
	}
	if report := readFile(t, res.path); !strings.Contains(report, "| goroutine | 4 | ") {
		t.Errorf("report lacks the reload row:\n%s", report)
	}
}

func TestReloadReport(t *testing.T) {
	b := &bench{opts: options{repeat: 2}}
	rl := func(name string, peer bool, reqs, read, non2xx int64) *result {
		return &result{Workload: "reload", Target: name, Peer: peer, Status: statusOK,
			Reload: &reloadResult{HUPs: 4, Requests: reqs, ReadErrors: read, Non2xx: non2xx}}
	}
	folded := aggregate([]*result{rl("goroutine", false, 1000, 3, 1), rl("goroutine", false, 3000, 5, 0)})
	if r := folded.Reload; r.HUPs != 8 || r.Requests != 4000 || r.lost() != 9 {
		t.Errorf("rounds folded to %+v", r)
	}
	var w strings.Builder
	v := b.writeReload(&w, []*result{folded, rl("evloop", false, 5000, 0, 0), rl("nginx", true, 9000, 32, 0)})
	for _, want := range []string{"| goroutine | 8 | 4,000 | 9 | 8 | 1 | 0 | 22.45 |", "median of 2 interleaved rounds"} {
		if !strings.Contains(w.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, w.String())
		}
	}
	if v != "No request lost across the reloads: evloop. Lost requests (read errors + non-2xx): goroutine 9, nginx (peer) 32." {
		t.Errorf("verdict %q", v)
	}
}
