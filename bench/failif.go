package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// failIf is one --fail-if condition: "WORKLOAD:TARGET:METRIC OP VALUE",
// where VALUE is a number (with a unit for latencies: 50ms) or
// [FACTOR*]OTHER, the same metric of another configuration on the same
// workload. The run fails when the condition holds.
type failIf struct {
	text             string
	workload, target string
	metric, op       string
	value            float64 // threshold when other is ""
	factor           float64 // multiplies other's value
	other            string
}

// failMetrics are the metrics a condition can name. Latencies are the
// worst across concurrency levels (a threshold must hold at every level),
// in milliseconds; throughputs are the best level.
var failMetrics = map[string]string{
	"rps":          "peak requests per second",
	"rps_per_cpu":  "requests per server CPU-second (best level)",
	"p50":          "p50 latency, worst level (ms)",
	"p90":          "p90 latency, worst level (ms)",
	"p99":          "p99 latency, worst level (ms)",
	"max":          "maximum latency (ms)",
	"errors":       "failed requests ÷ all requests, worst level (a fraction; 1% = 0.01)",
	"kib_per_conn": "KiB of server RSS per idle connection (idle)",
	"lost":         "requests lost across the reloads: read errors + non-2xx (reload)",
}

var failOps = []string{"<=", ">=", "<", ">"}

// parseFailIf reads one condition.
func parseFailIf(s string) (failIf, error) {
	f := failIf{text: strings.TrimSpace(s), factor: 1}
	bad := func(why string) (failIf, error) {
		return failIf{}, fmt.Errorf("bench: --fail-if %q: %s (form: WORKLOAD:CONFIG:METRIC OP VALUE, e.g. custom:goroutine:p99>50ms or hello:evloop:rps_per_cpu<0.9*gnetbare)", s, why)
	}
	parts := strings.SplitN(strings.ReplaceAll(f.text, " ", ""), ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return bad("needs three ':'-separated parts")
	}
	f.workload, f.target = parts[0], parts[1]
	i := strings.IndexAny(parts[2], "<>")
	if i < 0 {
		return bad("no comparison (<, >, <=, >=)")
	}
	f.metric = parts[2][:i]
	rest := parts[2][i:]
	for _, op := range failOps {
		if v, ok := strings.CutPrefix(rest, op); ok {
			f.op, rest = op, v
			break
		}
	}
	if _, ok := failMetrics[f.metric]; !ok {
		return bad(fmt.Sprintf("unknown metric %q (known: %s)", f.metric, strings.Join(sortedKeys(failMetrics), ", ")))
	}
	if rest == "" {
		return bad("no value")
	}
	if v, err := parseThreshold(rest); err == nil {
		f.value = v
		return f, nil
	}
	if fac, other, ok := strings.Cut(rest, "*"); ok {
		v, err := strconv.ParseFloat(fac, 64)
		if err != nil || v <= 0 {
			return bad(fmt.Sprintf("bad factor %q", fac))
		}
		f.factor, rest = v, other
	}
	if strings.ContainsAny(rest, "*<>=") || (rest[0] >= '0' && rest[0] <= '9') {
		return bad(fmt.Sprintf("bad value %q", rest))
	}
	f.other = rest
	return f, nil
}

// parseThreshold reads "50ms", "1.5s", "300us", "2%", "0.9", "45000".
func parseThreshold(s string) (float64, error) {
	if v, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(v, 64)
		return f / 100, err
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return ms(d), nil
}

// failValue is a configuration's value of a metric on a workload.
func (b *bench) failValue(workload, target, metric string) (float64, error) {
	i := slices.IndexFunc(b.results, func(r *result) bool { return r.Workload == workload && r.Target == target })
	if i < 0 {
		return 0, fmt.Errorf("%s did not run %s", target, workload)
	}
	r := b.results[i]
	if r.Status != statusOK {
		return 0, fmt.Errorf("%s on %s: %s", target, workload, r.Status)
	}
	pts := r.Points
	if r.SlowLoad != nil {
		pts = []point{*r.SlowLoad}
	}
	// The level with the largest value: the worst for latencies and
	// errors, the best for throughputs (see failMetrics).
	highest := func(f func(p point) float64) float64 {
		return f(slices.MaxFunc(pts, func(a, b point) int { return cmp.Compare(f(a), f(b)) }))
	}
	switch {
	case metric == "kib_per_conn" && r.Idle != nil:
		return r.Idle.PerConnKB, nil
	case metric == "lost" && r.Reload != nil:
		return float64(r.Reload.lost()), nil
	case len(pts) == 0:
		return 0, fmt.Errorf("%s on %s has no %s", target, workload, metric)
	}
	switch metric {
	case "rps":
		return highest(func(p point) float64 { return p.RPS }), nil
	case "rps_per_cpu":
		return highest(func(p point) float64 { return p.ReqPerCPU }), nil
	case "p50":
		return highest(func(p point) float64 { return ms(p.P50) }), nil
	case "p90":
		return highest(func(p point) float64 { return ms(p.P90) }), nil
	case "p99":
		return highest(func(p point) float64 { return ms(p.P99) }), nil
	case "max":
		return highest(func(p point) float64 { return ms(p.Max) }), nil
	case "errors":
		return highest(errRate), nil
	}
	return 0, fmt.Errorf("%s on %s has no %s", target, workload, metric)
}

// check evaluates one condition: held means the run fails; err means it
// could not be evaluated, which fails the run too (a CI gate on a number
// that was not measured must not pass silently).
func (b *bench) check(f failIf) (held bool, detail string, err error) {
	v, err := b.failValue(f.workload, f.target, f.metric)
	if err != nil {
		return false, "", err
	}
	limit := f.value
	detail = fmt.Sprintf("%s = %.4g", f.metric, v)
	if f.other != "" {
		ov, err := b.failValue(f.workload, f.other, f.metric)
		if err != nil {
			return false, "", err
		}
		limit = f.factor * ov
		detail += fmt.Sprintf(", %s's = %.4g, limit %.4g", f.other, ov, limit)
	}
	switch f.op {
	case "<":
		held = v < limit
	case "<=":
		held = v <= limit
	case ">":
		held = v > limit
	case ">=":
		held = v >= limit
	}
	return held, detail, nil
}

// checkResult is one evaluated condition, for the report and the exit code.
type checkResult struct {
	cond   failIf
	failed bool
	line   string
}

// runChecks evaluates every --fail-if condition.
func (b *bench) runChecks() []checkResult {
	var out []checkResult
	for _, f := range b.opts.failIf {
		held, detail, err := b.check(f)
		c := checkResult{cond: f, failed: held || err != nil}
		switch {
		case err != nil:
			c.line = fmt.Sprintf("FAIL `%s`: cannot evaluate: %v", f.text, err)
		case held:
			c.line = fmt.Sprintf("FAIL `%s`: %s", f.text, detail)
		default:
			c.line = fmt.Sprintf("pass `%s`: %s", f.text, detail)
		}
		out = append(out, c)
	}
	return out
}

// validateFailIf rejects conditions that name a workload or configuration
// the run does not have, before anything is measured.
func (b *bench) validateFailIf() error {
	for _, f := range b.opts.failIf {
		if !slices.ContainsFunc(b.workloads, func(w *workload) bool { return w.name == f.workload }) {
			return fmt.Errorf("bench: --fail-if %q: workload %q is not in this run", f.text, f.workload)
		}
		for _, n := range []string{f.target, f.other} {
			if n != "" && !slices.ContainsFunc(b.targets, func(t *target) bool { return t.name == n }) {
				return fmt.Errorf("bench: --fail-if %q: configuration %q is not in this run", f.text, n)
			}
		}
	}
	return nil
}
