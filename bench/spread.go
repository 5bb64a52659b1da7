package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The spread workload: one class at spreadWorkers workers, run twice in a row, once on the arbiter's shared
// listening socket and once with reuse_port (a SO_REUSEPORT socket per
// worker), under a new connection per request. The arbiter's /status
// (stats_bind, on a unix socket) gives each worker's request count before
// and after the load; the difference is what each worker served.

const kindSpread = "spread" // the same load, shared socket vs reuse_port

// spreadWorkers is the worker count of the spread workload, whatever
// --workers says: a spread needs several workers.
const spreadWorkers = 3

// spreadClasses are the configurations the spread workload runs;
// spreadQuick those of --quick (about 7 s).
var (
	spreadClasses = []string{"sync", "evloop", "goroutine"}
	spreadQuick   = []string{"evloop", "goroutine"}
)

// spreadMode is one of the two runs of a class.
type spreadMode struct {
	ReusePort bool     `json:"reuse_port"`
	PerWorker []uint64 `json:"per_worker"` // requests each worker served during the load, ascending
	Load      point    `json:"load"`
}

func (m spreadMode) socket() string {
	if m.ReusePort {
		return "reuse_port"
	}
	return "shared"
}

// minMax are the least and most requests one worker served.
func (m spreadMode) minMax() (lo, hi uint64) {
	if len(m.PerWorker) == 0 {
		return 0, 0
	}
	return slices.Min(m.PerWorker), slices.Max(m.PerWorker)
}

// spread is (max − min) ÷ mean: 0 for a perfectly even split, 3 (with 3
// workers) when one worker served everything.
func (m spreadMode) spread() float64 {
	var sum uint64
	for _, n := range m.PerWorker {
		sum += n
	}
	if sum == 0 {
		return 0
	}
	lo, hi := m.minMax()
	return float64(hi-lo) / (float64(sum) / float64(len(m.PerWorker)))
}

// runSpread measures one class on the shared socket, then with reuse_port.
func (b *bench) runSpread(ctx context.Context, wl *workload, t *target, r *result) {
	r.Status = statusOK
	for _, reuse := range []bool{false, true} {
		m, err := b.spreadRun(ctx, wl, t, reuse)
		if err != nil {
			r.Status, r.Reason = statusFailed, err.Error()
			b.logf("%s %-16s %-16s failed: %v", b.tag(), wl.name, t.name, err)
			return
		}
		r.Spread = append(r.Spread, m)
		lo, hi := m.minMax()
		b.logf("%s %-16s %-16s %-10s %s | per worker %v (min %d, max %d, spread %.0f %%)", b.tag(), wl.name, t.name,
			m.socket(), pointLine(m.Load), m.PerWorker, lo, hi, 100*m.spread())
	}
}

// spreadRun starts the class with spreadWorkers workers and a stats
// endpoint, drives the load and reads what each worker served.
func (b *bench) spreadRun(ctx context.Context, wl *workload, t *target, reuse bool) (spreadMode, error) {
	m := spreadMode{ReusePort: reuse}
	sock := filepath.Join(b.tmp, fmt.Sprintf("stats-%s-%s.sock", t.name, m.socket()))
	extra := []string{"-w", fmt.Sprint(spreadWorkers), "--stats-bind", "unix:" + sock}
	if reuse {
		extra = append(extra, "--reuse-port")
	}
	srv, err := b.startArgs(ctx, wl, t, extra, 1+spreadWorkers, m.socket())
	if err != nil {
		return m, err
	}
	defer srv.stop(5 * time.Second)
	stats := unixHTTP(sock)
	before, err := workerRequests(ctx, stats)
	if err != nil {
		return m, err
	}
	c := b.levels(wl)[0]
	m.Load, err = b.measure(ctx, srv, b.spec(srv, wl, c, b.opts.duration))
	if err != nil {
		return m, err
	}
	after, err := workerRequests(ctx, stats)
	if err != nil {
		return m, err
	}
	m.PerWorker = perWorkerDelta(before, after)
	return m, nil
}

// unixHTTP is a client for the stats endpoint on a unix socket.
func unixHTTP(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// workerRequests reads every live worker's request count from /status.
func workerRequests(ctx context.Context, c *http.Client) (map[int]uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://stats/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: stats /status: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("bench: stats /status: %w", err)
	}
	return parseStatus(body)
}

// parseStatus extracts pid → requests from the arbiter's /status JSON.
func parseStatus(body []byte) (map[int]uint64, error) {
	var st struct {
		Workers []struct {
			PID      int    `json:"pid"`
			Requests uint64 `json:"requests"`
		} `json:"workers"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("bench: stats /status: %w", err)
	}
	out := map[int]uint64{}
	for _, w := range st.Workers {
		out[w.PID] = w.Requests
	}
	return out, nil
}

// perWorkerDelta is what each worker alive at the end served between the
// two readings (a worker missing from before counts from zero), ascending.
func perWorkerDelta(before, after map[int]uint64) []uint64 {
	var out []uint64
	for pid, n := range after {
		out = append(out, n-min(n, before[pid]))
	}
	slices.Sort(out)
	return out
}

// writeSpread renders the per-worker table, shared socket vs reuse_port.
func (b *bench) writeSpread(w *strings.Builder, wl *workload, rs []*result) string {
	ok := okWith(rs, func(r *result) bool { return len(r.Spread) == 2 })
	if len(ok) == 0 {
		w.WriteString("No configuration produced numbers.\n\n")
		return ""
	}
	fmt.Fprintf(w, "%d workers, %d connections, a new connection per request, %s per run; each class ran on the shared socket, then with `--reuse-port`. Requests per worker from the arbiter's `/status`. The workers share the server CPU, so req/s is shown, not ranked: with reuse_port a connection waits for its own worker to run.\n\n",
		spreadWorkers, b.levels(wl)[0], b.opts.duration)
	w.WriteString("| config | socket | requests per worker | min | max | spread (max − min) ÷ mean | req/s | errors |\n|---|---|---|--:|--:|--:|--:|--:|\n")
	var parts []string
	for _, r := range ok {
		for _, m := range r.Spread {
			counts := make([]string, len(m.PerWorker))
			for i, n := range m.PerWorker {
				counts[i] = fmtNum(float64(n))
			}
			lo, hi := m.minMax()
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.0f %% | %s | %s |\n", label(r), m.socket(), strings.Join(counts, " / "),
				fmtNum(float64(lo)), fmtNum(float64(hi)), 100*m.spread(), fmtNum(m.Load.RPS), fmtErrors(m.Load.Errors, m.Load.Requests))
		}
		parts = append(parts, fmt.Sprintf("%s %.0f %% vs %.0f %%", r.Target, 100*r.Spread[1].spread(), 100*r.Spread[0].spread()))
	}
	w.WriteString("\n")
	verdict := "spread of requests across workers with reuse_port vs the shared socket (0 % is even): " + strings.Join(parts, ", ") + "."
	fmt.Fprintf(w, "**Verdict:** %s\n\n", capitalize(verdict))
	return verdict
}
