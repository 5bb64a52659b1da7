package main

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// writeReport renders report.md and the charts into the output directory.
func (b *bench) writeReport(checks []checkResult) (string, error) {
	b.tie = b.tieThreshold()
	var w strings.Builder
	b.writeHeader(&w)
	writeChecks(&w, checks)
	var summary []string
	var sections strings.Builder
	for _, wl := range b.workloads {
		line, err := b.writeWorkload(&sections, wl)
		if err != nil {
			return "", err
		}
		if line != "" {
			summary = append(summary, fmt.Sprintf("- **%s**: %s", wl.name, line))
		}
	}
	if len(summary) > 0 {
		w.WriteString("## Summary\n\n")
		if classes := b.classNames(); len(classes) > 0 {
			rows := b.scoreRows()
			writeMatrix(&w, rows, classes, b.workloads)
			fmt.Fprintf(&w, "%s (The rule is under How to choose.)\n\n", decideOverall(rows, classes, b.tie).sentence(rows))
		}
		w.WriteString(strings.Join(summary, "\n") + "\n\n")
	}
	w.WriteString(sections.String())
	b.writeSyscalls(&w)
	b.writeChoose(&w)
	b.writeMethod(&w)
	if err := b.writeResults(); err != nil {
		return "", err
	}
	path := filepath.Join(b.outDir, "report.md")
	if err := os.WriteFile(path, []byte(w.String()), 0o644); err != nil {
		return "", fmt.Errorf("bench: write report: %w", err)
	}
	return path, nil
}

func (b *bench) writeHeader(w *strings.Builder) {
	fmt.Fprintf(w, "# multiserve bench: worker classes per workload\n\n")
	if b.interrupted {
		w.WriteString("> **Interrupted**: the run was stopped by a signal; this report is partial (rows marked skipped were not measured).\n\n")
	}
	fmt.Fprintf(w, "Run %s UTC, took %s. Command: `%s`.\n\n", b.started.UTC().Format("2006-01-02 15:04"),
		time.Since(b.started).Round(time.Second), strings.TrimSpace(b.opts.commandLine))
	w.WriteString("| | |\n|---|---|\n")
	if b.info.GoVersion != "" {
		fmt.Fprintf(w, "| machine | %d × %s, Linux %s, %s |\n", b.info.CPUs, b.info.CPU, b.info.Kernel, b.info.GoVersion)
		fmt.Fprintf(w, "| code | multiserve `%s` |\n", b.info.Commit)
	}
	fmt.Fprintf(w, "| CPU split | %s |\n", b.split)
	if b.opts.nice != 0 {
		fmt.Fprintf(w, "| priority | runner, servers and wrk ran at nice %d, each in its own session and scheduling autogroup at that nice value |\n", b.opts.nice)
	}
	if b.loadStart != "" {
		fmt.Fprintf(w, "| machine load | 1-minute load average %s at the start, %s at the end (other processes on this machine compete for both CPUs; more than ~2 means noisy numbers) |\n", b.loadStart, b.loadEnd)
	}
	fmt.Fprintf(w, "| same budget | every configuration runs %d worker process(es) on the server CPU; threaded and gunicorn gthread: %d threads; evloop-pool: a 4-goroutine handler pool (1000 on io-1000); evloop: handlers inline on the loop |\n",
		b.opts.workers, b.opts.threads)
	fmt.Fprintf(w, "| closed loop | %s, %s per level, concurrency %s; a request slower than %s counts as an error |\n",
		b.driverDesc(), b.opts.duration, joinInts(b.opts.concurrency), b.opts.reqTimeout)
	if b.opts.openDuration > 0 {
		fmt.Fprintf(w, "| open loop | vegeta (Go library): constant arrival rate for %s, up to %d requests in flight, so a slow server shows up as latency instead of slowing the sender |\n",
			b.opts.openDuration, openMaxWorkers)
	}
	fmt.Fprintf(w, "| req per server CPU-s | requests ÷ (utime + stime) of the server's processes (arbiter, workers, and reaped children) from /proc, read before and after each run |\n\n")
	for _, n := range b.notes {
		fmt.Fprintf(w, "> Note: %s\n\n", n)
	}
	b.writeConfigs(w)
}

// writeChecks lists the --fail-if conditions and how each came out.
func writeChecks(w *strings.Builder, checks []checkResult) {
	if len(checks) == 0 {
		return
	}
	w.WriteString("## Checks (--fail-if)\n\n")
	for _, c := range checks {
		fmt.Fprintf(w, "- %s\n", mdCell(c.line))
	}
	w.WriteString("\n")
}

func (b *bench) driverDesc() string {
	if d, ok := b.driver.(*wrkDriver); ok {
		v := b.info.Tools["wrk"]
		if v == "" {
			v = "wrk"
		}
		v, _, _ = strings.Cut(v, " [")
		return fmt.Sprintf("%s (%d thread(s), --latency)", v, d.threads)
	}
	return "the runner's Go driver (one connection per virtual user)"
}

func (b *bench) writeConfigs(w *strings.Builder) {
	w.WriteString("## Configurations\n\n| config | kind | command | status |\n|---|---|---|---|\n")
	for _, t := range b.targets {
		kind := "multiserve class"
		if t.peer {
			kind = "peer"
		}
		status := "ran"
		if t.unavailable != "" {
			status = "unavailable: " + short(t.unavailable)
		} else if cpus := b.cpusOf(t.name); cpus != "" {
			status = "ran; server processes' CPUs: " + cpus
		}
		show := t.show
		if show == "" {
			show = "–"
		}
		fmt.Fprintf(w, "| %s | %s | `%s` | %s |\n", t.name, kind, show, status)
	}
	w.WriteString("\n")
}

// cpusOf returns the affinity seen on a configuration's processes.
func (b *bench) cpusOf(name string) string {
	for _, r := range b.results {
		if r.Target == name && r.CPUs != "" {
			return r.CPUs
		}
	}
	return ""
}

// writeWorkload renders one workload's section and returns its verdict.
func (b *bench) writeWorkload(w *strings.Builder, wl *workload) (string, error) {
	fmt.Fprintf(w, "## %s\n\n%s\n\n", wl.name, capitalize(wl.desc))
	rs := b.resultsFor(wl)
	var verdict string
	var err error
	switch wl.kind {
	case kindClosed:
		verdict, err = b.writeClosed(w, wl, rs)
	case kindSlow:
		verdict, err = b.writeSlow(w, wl, rs)
	case kindIdle:
		verdict, err = b.writeIdle(w, wl, rs)
	case kindSpread:
		verdict = b.writeSpread(w, wl, rs)
	case kindReload:
		verdict = b.writeReload(w, rs)
	}
	b.writeMissing(w, rs)
	return verdict, err
}

func (b *bench) resultsFor(wl *workload) []*result {
	var out []*result
	for _, r := range b.results {
		if r.Workload == wl.name {
			out = append(out, r)
		}
	}
	return out
}

// writeMissing lists configurations without numbers: unavailable ones by
// name (the reason is in the configurations table), others with theirs.
func (b *bench) writeMissing(w *strings.Builder, rs []*result) {
	var unavailable, other []string
	for _, r := range rs {
		switch r.Status {
		case statusOK, statusUnsupported:
		case statusUnavailable:
			unavailable = append(unavailable, r.Target)
		default:
			other = append(other, fmt.Sprintf("%s %s (%s)", r.Target, r.Status, short(r.Reason)))
		}
	}
	if len(unavailable) > 0 {
		other = append(other, strings.Join(unavailable, ", ")+" unavailable (see Configurations)")
	}
	if len(other) > 0 {
		fmt.Fprintf(w, "Not measured: %s.\n\n", strings.Join(other, "; "))
	}
}

// short keeps a reason to one table-safe line of bounded length.
func short(s string) string {
	s = mdCell(s)
	if r := []rune(s); len(r) > 240 {
		s = string(r[:240]) + "…"
	}
	return s
}

func (b *bench) color(name string) string {
	for i, t := range b.targets {
		if t.name == name {
			return palette[i%len(palette)]
		}
	}
	return "#777777"
}

func (b *bench) writeChart(file, svg string) error {
	if err := os.WriteFile(filepath.Join(b.outDir, file), []byte(svg), 0o644); err != nil {
		return fmt.Errorf("bench: write chart: %w", err)
	}
	return nil
}

func label(r *result) string {
	if r.Peer {
		return r.Target + " (peer)"
	}
	return r.Target
}

// --- closed-loop workloads ---

func (b *bench) writeClosed(w *strings.Builder, wl *workload, rs []*result) (string, error) {
	ok := okWith(rs, func(r *result) bool { return len(r.Points) > 0 })
	if len(ok) == 0 {
		w.WriteString("No configuration produced numbers.\n\n")
		return "", nil
	}
	if err := b.closedCharts(w, wl, ok); err != nil {
		return "", err
	}
	fmt.Fprintf(w, "Closed loop (each connection sends its next request when the previous answer arrives)%s:\n\n", b.roundsNote())
	w.WriteString("| config | conns | req/s | p50 | p90 | p99 | req per server CPU-s | server CPU busy | errors |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	flagged := false
	for _, r := range ok {
		for _, p := range r.Points {
			flagged = flagged || noisy(p)
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", rowLabel(r, p), p.Concurrency, withSpan(p.RPS, p.RPSSpan),
				fmtDur(p.P50), fmtDur(p.P90), fmtDur(p.P99), withSpan(p.ReqPerCPU, p.EffSpan), busy(p), fmtErrors(p.Errors, p.Requests))
		}
	}
	w.WriteString("\n")
	writeNoisyNote(w, flagged)
	openVerdict := b.writeOpen(w, ok)
	verdict := closedVerdict(wl, ok, b.tie)
	switch wl.name {
	case "hello":
		if v := helloRatios(ok); v != "" {
			verdict += " " + v
		}
	case "io-1000":
		if v := poolRatio(ok); v != "" {
			verdict += " " + v
		}
	}
	if openVerdict != "" {
		verdict += " " + openVerdict
	}
	fmt.Fprintf(w, "**Verdict:** %s\n\n", verdict)
	return verdict, nil
}

// busy is the server's CPU time over the run's wall time: near 100 % per
// server CPU means CPU-bound; far below it on a CPU-bound workload means
// other processes took the CPU.
func busy(p point) string { return busyOf(p.CPU, p.Others, p.Elapsed) }

func busyOf(cpu, others, elapsed time.Duration) string {
	if elapsed <= 0 {
		return "–"
	}
	s := fmt.Sprintf("%.0f %%", 100*cpu.Seconds()/elapsed.Seconds())
	if o := 100 * others.Seconds() / elapsed.Seconds(); o >= 5 {
		s += fmt.Sprintf(" (others %.0f %%)", o)
	}
	return s
}

func okWith(rs []*result, has func(*result) bool) []*result {
	var out []*result
	for _, r := range rs {
		if r.Status == statusOK && has(r) {
			out = append(out, r)
		}
	}
	return out
}

func (b *bench) closedCharts(w *strings.Builder, wl *workload, ok []*result) error {
	if len(b.levels(wl)) == 1 {
		return b.levelBars(w, wl, ok)
	}
	route := wl.route()
	thr := lineChart{title: route + ": throughput vs concurrency", xLabel: "concurrent connections (log scale)",
		yLabel: "requests per second", yTick: humanNumber}
	eff := lineChart{title: route + ": requests per server CPU-second", xLabel: "concurrent connections (log scale)",
		yLabel: "requests per server CPU-second", yTick: humanNumber}
	lat := lineChart{title: route + ": latency (solid p99, dashed p50)", xLabel: "concurrent connections (log scale)",
		yLabel: "latency, ms (log scale)", logY: true, yTick: func(v float64) string { return humanNumber(v) }}
	var peaks []float64
	for _, r := range ok {
		c := b.color(r.Target)
		var xs, rps, perCPU, p50, p99 []float64
		for _, p := range r.Points {
			xs = append(xs, float64(p.Concurrency))
			rps = append(rps, p.RPS)
			perCPU = append(perCPU, p.ReqPerCPU)
			p50 = append(p50, ms(p.P50))
			p99 = append(p99, ms(p.P99))
		}
		peaks = append(peaks, slices.Max(rps))
		thr.series = append(thr.series, series{name: label(r), color: c, square: r.Peer, xs: xs, ys: rps})
		thr.legend = append(thr.legend, legendEntry{name: label(r), color: c})
		eff.series = append(eff.series, series{name: label(r), color: c, square: r.Peer, xs: xs, ys: perCPU})
		lat.series = append(lat.series, series{name: label(r) + " p99", color: c, square: r.Peer, xs: xs, ys: p99},
			series{name: label(r) + " p50", color: c, dashed: true, square: r.Peer, xs: xs, ys: p50})
		lat.legend = append(lat.legend, legendEntry{name: label(r), color: c})
	}
	if lo, hi := minMax(peaks); lo > 0 && hi/lo > 30 {
		thr.logY, thr.yLabel = true, "requests per second (log scale)"
	}
	lat.legend = append(lat.legend, legendEntry{name: "", color: "none"},
		legendEntry{name: "p99", color: "#555555"}, legendEntry{name: "p50", color: "#555555", dashed: true})
	eff.legend = thr.legend
	return b.writeCharts(w, wl, thr.svg(), eff.svg(), lat.svg())
}

// writeCharts writes a workload's throughput, per-CPU and latency charts
// and links them from the report.
func (b *bench) writeCharts(w *strings.Builder, wl *workload, thr, eff, lat string) error {
	for _, c := range []struct{ kind, svg string }{{"throughput", thr}, {"per-cpu", eff}, {"latency", lat}} {
		f := wl.name + "-" + c.kind + ".svg"
		if err := b.writeChart(f, c.svg); err != nil {
			return err
		}
		fmt.Fprintf(w, "![%s %s](%s)\n\n", wl.name, c.kind, f)
	}
	return nil
}

// levelBars draws bar charts instead of lines when a workload has a
// single concurrency level (a line needs two points).
func (b *bench) levelBars(w *strings.Builder, wl *workload, ok []*result) error {
	c := b.levels(wl)[0]
	var thr, eff, lat []bar
	for _, r := range ok {
		p := r.Points[0]
		thr = append(thr, bar{name: label(r), color: b.color(r.Target), value: p.RPS})
		eff = append(eff, bar{name: label(r), color: b.color(r.Target), value: p.ReqPerCPU})
		lb := bar{name: label(r), color: b.color(r.Target), value: ms(p.P99)}
		if p.Requests == 0 {
			lb.note = "no request answered"
		}
		lat = append(lat, lb)
	}
	route := wl.route()
	tc := barChart{title: fmt.Sprintf("%s: throughput at %d connections", route, c), xLabel: "requests per second", bars: thr,
		valueText: func(v float64) string { return fmtNum(v) + " req/s" }}
	ec := barChart{title: fmt.Sprintf("%s: requests per server CPU-second at %d connections", route, c), xLabel: "requests per server CPU-second", bars: eff,
		valueText: func(v float64) string { return fmtNum(v) + " req/CPU-s" }}
	lc := barChart{title: fmt.Sprintf("%s: p99 latency at %d connections", route, c), xLabel: "p99 latency, ms", bars: lat,
		valueText: func(v float64) string { return fmtDur(time.Duration(v * float64(time.Millisecond))) }}
	return b.writeCharts(w, wl, tc.svg(), ec.svg(), lc.svg())
}

// peak is the point with the highest throughput.
func peak(r *result) point {
	return slices.MaxFunc(r.Points, func(a, b point) int { return cmp.Compare(a.RPS, b.RPS) })
}

// efficiency is the best requests per server CPU-second across levels.
func efficiency(r *result) float64 {
	return slices.MaxFunc(r.Points, func(a, b point) int { return cmp.Compare(a.ReqPerCPU, b.ReqPerCPU) }).ReqPerCPU
}

func classesOf(rs []*result) (classes, peers []*result) {
	for _, r := range rs {
		if r.Peer {
			peers = append(peers, r)
		} else {
			classes = append(classes, r)
		}
	}
	return classes, peers
}

// rankBy sorts a copy of rs by key, highest first.
func rankBy(rs []*result, key func(*result) float64) []*result {
	out := slices.Clone(rs)
	slices.SortStableFunc(out, func(a, b *result) int { return cmp.Compare(key(b), key(a)) })
	return out
}

// versus renders "1.1× evloop, 3.0× sync" for the leader against the rest.
func versus(lead float64, rest []*result, key func(*result) float64) string {
	var parts []string
	for _, r := range rest {
		parts = append(parts, fmt.Sprintf("%s %s", ratio(lead, key(r)), r.Target))
	}
	return strings.Join(parts, ", ")
}

// metric is one way to rank closed-loop results.
type metric struct {
	name string // "requests per server CPU-second"
	unit string // "req/CPU-s"
	key  func(*result) float64
}

var (
	byThroughput = metric{"peak throughput", "req/s", func(r *result) float64 { return peak(r).RPS }}
	byEfficiency = metric{"requests per server CPU-second", "req/CPU-s", efficiency}
)

// metrics returns the primary and secondary ranking for a workload. A
// CPU-bound workload is judged by what one server CPU-second buys (robust
// to CPU taken by other processes, and what decides how many machines you
// need); a waiting workload by peak throughput (how much waiting the
// concurrency model overlaps).
func metrics(wl *workload) (primary, secondary metric) {
	if wl.cpuBound {
		return byEfficiency, byThroughput
	}
	return byThroughput, byEfficiency
}

// rankSentence renders "By M, **x** wins with V unit: 1.1× y, 3× z (x and y
// within 10 %: a tie)."
func rankSentence(m metric, classes []*result, tie float64) string {
	ranked := rankBy(classes, m.key)
	lead := ranked[0]
	var s strings.Builder
	fmt.Fprintf(&s, "By %s, **%s** wins with %s %s", m.name, lead.Target, fmtNum(m.key(lead)), m.unit)
	if m.unit == "req/s" {
		fmt.Fprintf(&s, " (at %d connections)", peak(lead).Concurrency)
	}
	if len(ranked) > 1 {
		fmt.Fprintf(&s, ": %s", versus(m.key(lead), ranked[1:], m.key))
		if tied := tiedWith(ranked, m.key, tie); len(tied) > 1 {
			fmt.Fprintf(&s, " (%s within %.0f %% of each other: a tie on this machine)", joinAnd(tied), tie*100)
		}
	}
	return s.String() + "."
}

func closedVerdict(wl *workload, ok []*result, tie float64) string {
	classes, peers := classesOf(ok)
	if len(classes) == 0 {
		return "no multiserve class ran; see the peers' rows."
	}
	prim, sec := metrics(wl)
	var s strings.Builder
	s.WriteString(rankSentence(prim, classes, tie))
	if len(classes) > 1 {
		s.WriteString(" " + rankSentence(sec, classes, tie))
	}
	for _, r := range classes {
		worst := slices.MaxFunc(r.Points, func(a, b point) int { return cmp.Compare(errRate(a), errRate(b)) })
		if errRate(worst) > 0.01 {
			fmt.Fprintf(&s, " %s failed %.0f %% of requests at %d connections (errors or timeouts over the limit).", r.Target, 100*errRate(worst), worst.Concurrency)
		}
	}
	if len(peers) > 0 {
		lead, bp := rankBy(classes, prim.key)[0], rankBy(peers, prim.key)[0]
		fmt.Fprintf(&s, " Best peer by %s: %s, %s %s; %s reaches %s of it.", prim.name, bp.Target, fmtNum(prim.key(bp)), prim.unit,
			lead.Target, ratio(prim.key(lead), prim.key(bp)))
	}
	return s.String()
}

// tiedWith names the leader and every result within tie of it.
func tiedWith(ranked []*result, key func(*result) float64, tie float64) []string {
	var out []string
	for _, r := range ranked {
		if key(r) >= key(ranked[0])*(1-tie) {
			out = append(out, r.Target)
		}
	}
	return out
}

func errRate(p point) float64 {
	if p.Requests+p.Errors == 0 {
		return 0
	}
	return float64(p.Errors) / float64(p.Requests+p.Errors)
}

// helloRatios states, for the hello workload, evloop against the goroutine
// class and against bare gnet (the floor of the event-loop library's cost),
// per server CPU-second and per second.
func helloRatios(ok []*result) string {
	find := func(name string) *result {
		i := slices.IndexFunc(ok, func(r *result) bool { return r.Target == name })
		if i < 0 {
			return nil
		}
		return ok[i]
	}
	ev, gr, bare := find("evloop"), find("goroutine"), find("gnetbare")
	if ev == nil {
		return ""
	}
	var parts []string
	if gr != nil {
		parts = append(parts, fmt.Sprintf("evloop ÷ goroutine = %s req/CPU-s, %s req/s",
			ratio(efficiency(ev), efficiency(gr)), ratio(peak(ev).RPS, peak(gr).RPS)))
	}
	if bare != nil {
		parts = append(parts, fmt.Sprintf("evloop ÷ bare gnet = %s req/CPU-s, %s req/s",
			ratio(efficiency(ev), efficiency(bare)), ratio(peak(ev).RPS, peak(bare).RPS)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Ratios: " + strings.Join(parts, "; ") + "."
}

// poolRatio states, for io-1000, evloop with a handler pool against plain
// net/http, the reference for a goroutine per connection.
func poolRatio(ok []*result) string {
	var pool, nh, inline *result
	for _, r := range ok {
		switch r.Target {
		case "evloop-pool":
			pool = r
		case "nethttp":
			nh = r
		case "evloop":
			inline = r
		}
	}
	if pool == nil || nh == nil {
		return ""
	}
	s := fmt.Sprintf("evloop-pool ÷ plain net/http = %s req/s", ratio(peak(pool).RPS, peak(nh).RPS))
	if inline != nil {
		s += fmt.Sprintf("; evloop inline reaches %s req/s", fmtNum(peak(inline).RPS))
	}
	return s + "."
}

// writeOpen renders the open-loop table and returns its verdict.
func (b *bench) writeOpen(w *strings.Builder, ok []*result) string {
	open := okWith(ok, func(r *result) bool { return r.Open != nil })
	if len(open) == 0 {
		return ""
	}
	fmt.Fprintf(w, "Open loop (constant %d req/s for %s, whatever the server's speed; latency without coordinated omission):\n\n", open[0].Open.Rate, b.opts.openDuration)
	w.WriteString("| config | sent/s | answered ok/s | success | p50 | p99 | max | req per server CPU-s | server CPU busy |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range open {
		o := r.Open
		eff := 0.0
		if o.CPU > 0 {
			eff = float64(o.Requests) * o.Success / o.CPU.Seconds()
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f %% | %s | %s | %s | %s | %s |\n", label(r), fmtNum(o.Sent), fmtNum(o.Throughput),
			100*o.Success, fmtDur(o.P50), fmtDur(o.P99), fmtDur(o.Max), fmtNum(eff), busyOf(o.CPU, o.Others, o.Elapsed))
	}
	w.WriteString("\n")
	classes, _ := classesOf(open)
	keptUp := func(r *result) bool { return r.Open.Success >= 0.99 && r.Open.Throughput >= 0.9*float64(r.Open.Rate) }
	var good, behind []*result
	for _, r := range classes {
		if keptUp(r) {
			good = append(good, r)
		} else {
			behind = append(behind, r)
		}
	}
	var s strings.Builder
	rate := open[0].Open.Rate
	if len(good) > 0 {
		p99 := func(r *result) float64 { return -ms(r.Open.P99) } // lower is better
		best := rankBy(good, p99)
		fmt.Fprintf(&s, "At a constant %d req/s, **%s** has the lowest p99 (%s)", rate, best[0].Target, fmtDur(best[0].Open.P99))
		if len(best) > 1 {
			var parts []string
			for _, r := range best[1:] {
				parts = append(parts, fmt.Sprintf("%s %s", r.Target, fmtDur(r.Open.P99)))
			}
			fmt.Fprintf(&s, "; then %s", strings.Join(parts, ", "))
		}
		s.WriteString(".")
	}
	if len(behind) > 0 {
		var parts []string
		for _, r := range behind {
			parts = append(parts, fmt.Sprintf("%s (%s ok/s, %.0f %% success, p99 %s)", r.Target, fmtNum(r.Open.Throughput), 100*r.Open.Success, fmtDur(r.Open.P99)))
		}
		fmt.Fprintf(&s, " Could not keep up with %d req/s: %s.", rate, strings.Join(parts, ", "))
	}
	return strings.TrimSpace(s.String())
}

// --- slow clients ---

func (b *bench) writeSlow(w *strings.Builder, wl *workload, rs []*result) (string, error) {
	ok := okWith(rs, func(r *result) bool { return r.SlowLoad != nil })
	if len(ok) == 0 {
		w.WriteString("No configuration produced numbers.\n\n")
		return "", nil
	}
	k, c := ok[0].Slow.Clients, ok[0].SlowLoad.Concurrency
	fmt.Fprintf(w, "%d slow clients; normal load: %d keep-alive connections for %s.\n\n", k, c, b.opts.duration)
	var bars []bar
	flagged := false
	w.WriteString("| config | normal req/s | p50 | p99 | errors | same load without slow clients (hello) | slow conns cut by the server | still open at end |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range ok {
		p := r.SlowLoad
		flagged = flagged || noisy(*p)
		base := "–"
		if hp, found := b.helloAt(r.Target, c); found {
			base = fmt.Sprintf("%s req/s, p99 %s", fmtNum(hp.RPS), fmtDur(hp.P99))
		}
		errs := fmtErrors(p.Errors, p.Requests)
		if p.Requests == 0 {
			errs = "no request answered"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d | %d |\n", rowLabel(r, *p), withSpan(p.RPS, p.RPSSpan), fmtDur(p.P50), fmtDur(p.P99),
			errs, base, r.Slow.Kicked, r.Slow.OpenAtEnd)
		bars = append(bars, bar{name: label(r), color: b.color(r.Target), value: p.RPS})
	}
	w.WriteString("\n")
	writeNoisyNote(w, flagged)
	chart := barChart{title: fmt.Sprintf("%s: normal-load throughput with %d slow clients", wl.route(), k),
		xLabel: fmt.Sprintf("requests per second (normal load, %d connections)", c), bars: bars,
		valueText: func(v float64) string { return fmtNum(v) + " req/s" }}
	if err := b.writeChart("slow-clients.svg", chart.svg()); err != nil {
		return "", err
	}
	w.WriteString("![slow clients](slow-clients.svg)\n\n")
	verdict := b.slowVerdict(ok)
	fmt.Fprintf(w, "**Verdict:** %s\n\n", verdict)
	return verdict, nil
}

// helloAt finds a configuration's hello point at concurrency c.
func (b *bench) helloAt(target string, c int) (point, bool) {
	for _, r := range b.results {
		if r.Workload == "hello" && r.Target == target && r.Status == statusOK {
			for _, p := range r.Points {
				if p.Concurrency == c {
					return p, true
				}
			}
		}
	}
	return point{}, false
}

// starved says whether slow clients took most of a configuration's
// throughput away: under half of its own hello rate, or over 10 % errors.
func (b *bench) starved(r *result) bool {
	p := *r.SlowLoad
	if errRate(p) > 0.10 || p.Requests == 0 {
		return true
	}
	if hp, ok := b.helloAt(r.Target, p.Concurrency); ok && p.RPS < 0.5*hp.RPS {
		return true
	}
	return false
}

func (b *bench) slowVerdict(ok []*result) string {
	classes, _ := classesOf(ok)
	if len(classes) == 0 {
		return "no multiserve class ran."
	}
	rps := func(r *result) float64 { return r.SlowLoad.RPS }
	ranked := rankBy(classes, rps)
	var s strings.Builder
	lead := ranked[0]
	fmt.Fprintf(&s, "**%s** serves the normal load best with %d slow clients connected: %s req/s, p99 %s",
		lead.Target, lead.Slow.Clients, fmtNum(rps(lead)), fmtDur(lead.SlowLoad.P99))
	if len(ranked) > 1 {
		fmt.Fprintf(&s, " (%s)", versus(rps(lead), ranked[1:], rps))
	}
	s.WriteString(".")
	var starved, fine []string
	for _, r := range classes {
		if b.starved(r) {
			starved = append(starved, r.Target)
		} else {
			fine = append(fine, r.Target)
		}
	}
	if len(fine) > 0 {
		fmt.Fprintf(&s, " Unaffected (at least half their hello throughput, under 10 %% errors): %s.", strings.Join(fine, ", "))
	}
	if len(starved) > 0 {
		fmt.Fprintf(&s, " Starved by slow clients: %s.", strings.Join(starved, ", "))
	}
	return s.String()
}

// --- idle connections ---

func (b *bench) writeIdle(w *strings.Builder, wl *workload, rs []*result) (string, error) {
	ok := okWith(rs, func(r *result) bool { return r.Idle != nil })
	if len(ok) == 0 {
		w.WriteString("No configuration produced numbers.\n\n")
		return "", nil
	}
	var bars []bar
	w.WriteString("| config | open / attempted | RSS before | RSS after | KiB per idle connection | closed by the server after answering | failed |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range ok {
		ir := r.Idle
		per := "–"
		br := bar{name: label(r), color: b.color(r.Target), value: ir.PerConnKB}
		if ir.OpenAtEnd > 0 {
			per = fmt.Sprintf("%.1f", ir.PerConnKB)
			if s := ir.PerConnSpan; s != nil {
				per += fmt.Sprintf(" (%.1f–%.1f)", s.Min, s.Max)
			}
		} else {
			br.note = "keeps no idle connection open"
		}
		fmt.Fprintf(w, "| %s | %s / %s | %s KiB | %s KiB | %s | %d | %d |\n", label(r), fmtNum(float64(ir.OpenAtEnd)), fmtNum(float64(ir.Conns)),
			fmtNum(float64(ir.RSSBefore)), fmtNum(float64(ir.RSSAfter)), per, ir.Closed, ir.Failed)
		bars = append(bars, br)
	}
	w.WriteString("\n")
	chart := barChart{title: fmt.Sprintf("idle, GET %s: server memory per idle keep-alive connection (%s connections)", wl.probePath(), fmtNum(float64(ok[0].Idle.Conns))),
		xLabel: "KiB of server RSS per open idle connection", bars: bars,
		valueText: func(v float64) string { return fmt.Sprintf("%.1f KiB", v) }}
	if err := b.writeChart("idle.svg", chart.svg()); err != nil {
		return "", err
	}
	w.WriteString("![idle memory](idle.svg)\n\n")
	verdict := idleVerdict(ok)
	fmt.Fprintf(w, "**Verdict:** %s\n\n", verdict)
	return verdict, nil
}

// holdsIdle says whether a configuration kept (nearly) all connections open.
func holdsIdle(r *result) bool { return keptOpen(r.Idle.OpenAtEnd, r.Idle.Conns) }

// keptOpen: at least 90 % of the attempted connections, and one, were
// still open at the end (a few lost to the machine are not a policy).
func keptOpen(open, attempted int) bool { return open > 0 && open >= attempted*9/10 }

func idleVerdict(ok []*result) string {
	classes, _ := classesOf(ok)
	var holders, others []*result
	for _, r := range classes {
		if holdsIdle(r) {
			holders = append(holders, r)
		} else {
			others = append(others, r)
		}
	}
	if len(classes) == 0 {
		return "no multiserve class ran."
	}
	var s strings.Builder
	if len(holders) > 0 {
		cheap := func(r *result) float64 { return -r.Idle.PerConnKB }
		ranked := rankBy(holders, cheap)
		lead := ranked[0]
		fmt.Fprintf(&s, "**%s** holds %s idle connections most cheaply, %.1f KiB each", lead.Target, fmtNum(float64(lead.Idle.OpenAtEnd)), lead.Idle.PerConnKB)
		if len(ranked) > 1 {
			var parts []string
			for _, r := range ranked[1:] {
				parts = append(parts, fmt.Sprintf("%s %.1f KiB (%s)", r.Target, r.Idle.PerConnKB, ratio(r.Idle.PerConnKB, lead.Idle.PerConnKB)))
			}
			fmt.Fprintf(&s, "; %s", strings.Join(parts, ", "))
		}
		s.WriteString(".")
	}
	for _, r := range others {
		if r.Idle.Closed > 0 && r.Idle.OpenAtEnd == 0 {
			fmt.Fprintf(&s, " %s closes every connection after its response (no keep-alive), so it holds none.", r.Target)
		} else {
			fmt.Fprintf(&s, " %s kept only %s of %s open.", r.Target, fmtNum(float64(r.Idle.OpenAtEnd)), fmtNum(float64(r.Idle.Conns)))
		}
	}
	return strings.TrimSpace(s.String())
}

// --- how to choose ---

// choice is the computed recommendation for one workload.
type choice struct {
	best     []string // the leader and every class within the tie threshold of it
	evidence string
}

func (b *bench) writeChoose(w *strings.Builder) {
	w.WriteString("## How to choose (computed from this run)\n\n")
	fmt.Fprintf(w, "Each line is derived from the tables above by fixed rules. CPU-bound workloads (hello, cpu, large, conn-per-request) are ranked by requests per server CPU-second, workloads that wait (io, io-1000, mixed, custom) by peak throughput; classes within the tie threshold of the leader tie with it. Slow clients: the highest normal-load throughput. Idle connections: the fewest KiB per open connection among classes that keep them open.\n\n%s\n\n", b.tieSentence())
	n := 0
	for _, wl := range b.workloads {
		ch, ok := b.choose(wl)
		if !ok {
			continue
		}
		n++
		tie := ""
		if len(ch.best) > 1 {
			tie = fmt.Sprintf(" (within %.0f %% of each other: a tie)", b.tie*100)
		}
		fmt.Fprintf(w, "- **%s** (`%s`) → **%s**%s. %s\n", wl.question, wl.name, strings.Join(ch.best, "** or **"), tie, ch.evidence)
	}
	if n == 0 {
		w.WriteString("No multiserve class produced numbers in this run, so there is nothing to choose from.\n\n")
		return
	}
	rows := b.scoreRows()
	fmt.Fprintf(w, "\n%s\n\n", decideOverall(rows, b.classNames(), b.tie).sentence(rows))
	fmt.Fprintf(w, "The rule: %s\n\n", overallRule)
	missing, noWaiting := uncovered(b.workloads, func(name string) bool {
		i := slices.IndexFunc(rows, func(r scoreRow) bool { return r.workload == name })
		return i >= 0 && len(rows[i].scores) > 0
	})
	if noWaiting {
		w.WriteString("**This run had no workload where requests wait** (io, io-1000, mixed): it cannot tell which class collapses when a handler waits on a database or another service.\n\n")
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "Not covered by this run (not selected, or nothing measured): %s.\n\n", strings.Join(missing, "; "))
	}
}

// choose applies the rules above to one workload's class results.
func (b *bench) choose(wl *workload) (choice, bool) {
	rs := b.resultsFor(wl)
	var classes []*result
	var key func(*result) float64
	var evidence func(lead *result, rest []*result) string
	switch wl.kind {
	case kindClosed:
		classes, _ = classesOf(okWith(rs, func(r *result) bool { return len(r.Points) > 0 }))
		prim, _ := metrics(wl)
		key = prim.key
		evidence = func(lead *result, rest []*result) string {
			e := fmt.Sprintf("Ranked by %s: %s %s (peak %s req/s, p99 %s at %d connections)", prim.name, fmtNum(key(lead)), prim.unit,
				fmtNum(peak(lead).RPS), fmtDur(peak(lead).P99), peak(lead).Concurrency)
			if len(rest) > 0 {
				last := rest[len(rest)-1]
				e += fmt.Sprintf("; %s the last class (%s)", ratio(key(lead), key(last)), last.Target)
			}
			return e + "."
		}
	case kindSlow:
		classes, _ = classesOf(okWith(rs, func(r *result) bool { return r.SlowLoad != nil }))
		key = func(r *result) float64 { return r.SlowLoad.RPS }
		evidence = func(lead *result, rest []*result) string {
			e := fmt.Sprintf("%s req/s with p99 %s while %d clients dribble bytes", fmtNum(key(lead)), fmtDur(lead.SlowLoad.P99), lead.Slow.Clients)
			var starved []string
			for _, r := range rest {
				if b.starved(r) {
					starved = append(starved, r.Target)
				}
			}
			if len(starved) > 0 {
				e += "; starved: " + strings.Join(starved, ", ")
			}
			return e + "."
		}
	case kindIdle:
		all, _ := classesOf(okWith(rs, func(r *result) bool { return r.Idle != nil }))
		classes = slices.DeleteFunc(all, func(r *result) bool { return !holdsIdle(r) })
		key = func(r *result) float64 { return -r.Idle.PerConnKB }
		evidence = func(lead *result, rest []*result) string {
			e := fmt.Sprintf("%.1f KiB per idle connection", lead.Idle.PerConnKB)
			if len(rest) > 0 {
				last := rest[len(rest)-1]
				e += fmt.Sprintf("; %s uses %s as much", last.Target, ratio(last.Idle.PerConnKB, lead.Idle.PerConnKB))
			}
			return e + "."
		}
	}
	if len(classes) == 0 {
		return choice{}, false
	}
	ranked := rankBy(classes, key)
	lead := ranked[0]
	ch := choice{best: []string{lead.Target}, evidence: evidence(lead, ranked[1:])}
	if wl.kind != kindIdle {
		ch.best = tiedWith(ranked, key, b.tie)
	}
	return ch, true
}

func (b *bench) writeMethod(w *strings.Builder) {
	w.WriteString(`## Method and caveats

- Every configuration is started fresh for each workload on a free loopback port, waited for (it must answer, with all its worker processes up), checked (each workload path must answer 200), measured, and stopped with SIGTERM to its process group (SIGKILL after 5 s).
- Closed-loop percentiles come from the load generator and understate queueing (coordinated omission: a stalled server also stalls the sender). The open-loop table does not have that bias: requests leave on schedule whatever the server does.
- "server CPU busy" is the server's CPU time over the run's wall time; "(others N %)" is CPU time that other processes on this machine took from the server's CPU during the run (from /proc/stat). Rows with a large "others" share are noisy in req/s; req per server CPU-s is much less affected.
- "req per server CPU-s" separates fast servers when the load generator, on its own CPU, saturates first: a server that needs half the CPU per request would serve twice the load given the same CPU.
- Latency under 1 ms is mostly the load generator's own cost on a 2-core machine; compare ratios, not absolute values, and rerun before trusting a difference under 10 %.
- Raw per-run data and every server's log are in raw/ next to this report (not committed).
`)
}

// --- formatting ---

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", ms(d))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fmtNum prints a count or rate with thousands separators.
func fmtNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func fmtErrors(errs, reqs int64) string {
	if errs == 0 {
		return "0"
	}
	return fmt.Sprintf("%s (%.1f %%)", fmtNum(float64(errs)), 100*float64(errs)/float64(errs+reqs))
}

// ratio renders a/b as "1.6×", "12×"; "∞×" when b did nothing.
func ratio(a, b float64) string {
	switch {
	case b <= 0 && a <= 0:
		return "–"
	case b <= 0:
		return "∞×"
	}
	r := a / b
	if r >= 10 {
		return fmt.Sprintf("%.0f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// joinAnd renders "a", "a and b", "a, b and c".
func joinAnd(v []string) string {
	if len(v) <= 1 {
		return strings.Join(v, "")
	}
	return strings.Join(v[:len(v)-1], ", ") + " and " + v[len(v)-1]
}

func joinInts(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = fmt.Sprint(n)
	}
	return strings.Join(parts, ", ")
}

func capitalize(s string) string {
	if s == "" || s[0] == '`' {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// mdCell keeps a free text from breaking a Markdown table.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
