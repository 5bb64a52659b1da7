package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// compareMetric is one figure compare puts side by side.
type compareMetric struct {
	name      string
	lowerWins bool
	value     func(r row) float64
	lo, hi    func(r row) float64 // nil: no spread recorded
	appliesTo func(mode string) bool
}

var compareMetrics = []compareMetric{
	{name: "req/s", value: func(r row) float64 { return r.RPS }, lo: func(r row) float64 { return r.RPSMin }, hi: func(r row) float64 { return r.RPSMax },
		appliesTo: func(m string) bool { return m != "idle" }},
	{name: "req/CPU-s", value: func(r row) float64 { return r.ReqPerCPU }, lo: func(r row) float64 { return r.ReqPerCPUMin }, hi: func(r row) float64 { return r.ReqPerCPUMax },
		appliesTo: func(m string) bool { return m == "closed" || m == "slow" }},
	{name: "p99 µs", lowerWins: true, value: func(r row) float64 { return r.P99 }, appliesTo: func(m string) bool { return m != "idle" }},
	{name: "lost", lowerWins: true, value: func(r row) float64 { return float64(r.Lost) }, appliesTo: func(m string) bool { return m == "reload" }},
	{name: "KiB/conn", lowerWins: true, value: func(r row) float64 { return r.KiBPerConn }, lo: func(r row) float64 { return r.KiBMin }, hi: func(r row) float64 { return r.KiBMax },
		appliesTo: func(m string) bool { return m == "idle" }},
}

func rowKey(r row) string {
	return fmt.Sprintf("%s|%s|%s|%d", r.Workload, r.Config, r.Mode, r.Concurrency)
}

// compareResults prints, for every measurement in both files, each
// figure's old and new value with its spread across rounds and new ÷ old;
// "~" marks a difference within noise: the two min–max ranges overlap, or,
// where a side has no spread (one round, or a latency), the ratio is within
// the larger of the two runs' tie thresholds.
func compareResults(w io.Writer, old, cur resultsFile) {
	fmt.Fprintf(w, "old: %s\nnew: %s\n", describeRun(old.Run), describeRun(cur.Run))
	if o, n := old.Run.Options, cur.Run.Options; o.DurationS != n.DurationS || o.Workers != n.Workers || o.Driver != n.Driver {
		fmt.Fprintln(w, "note: the runs used different --duration, --workers or --driver; ratios compare unlike measurements")
	}
	noise := max(minTie, old.Run.TieThreshold, cur.Run.TieThreshold)
	fmt.Fprintf(w, "~ = within noise (ranges overlap, or within %.0f %% where a side has no range)\n\n", noise*100)
	byKey := map[string]row{}
	for _, r := range old.Rows {
		if r.Status == statusOK {
			byKey[rowKey(r)] = r
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tconfig\tmode\tconns\tmetric\told\tnew\tnew/old\t")
	seen := map[string]bool{}
	var onlyNew []string
	for _, n := range cur.Rows {
		if n.Status != statusOK {
			continue
		}
		k := rowKey(n)
		o, ok := byKey[k]
		seen[k] = true
		if !ok {
			onlyNew = append(onlyNew, k)
			continue
		}
		for _, m := range compareMetrics {
			if !m.appliesTo(n.Mode) || (m.value(o) == 0 && m.value(n) == 0) {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", n.Workload, n.Config, n.Mode, n.Concurrency, m.name,
				withPM(m, o), withPM(m, n), verdictOf(m, o, n, noise))
		}
	}
	tw.Flush()
	var onlyOld []string
	for _, r := range old.Rows {
		if r.Status == statusOK && !seen[rowKey(r)] {
			onlyOld = append(onlyOld, rowKey(r))
		}
	}
	if len(onlyOld) > 0 {
		fmt.Fprintf(w, "\nonly in old: %s\n", strings.Join(onlyOld, ", "))
	}
	if len(onlyNew) > 0 {
		fmt.Fprintf(w, "\nonly in new: %s\n", strings.Join(onlyNew, ", "))
	}
}

func describeRun(r runMeta) string {
	return fmt.Sprintf("%s, commit %s, %d round(s), load average %s–%s", r.Started.Format("2006-01-02 15:04 UTC"),
		r.Commit, r.Options.Repeat, r.LoadStart, r.LoadEnd)
}

// withPM renders a median with ± half its min–max range, in percent.
func withPM(m compareMetric, r row) string {
	v := m.value(r)
	s := fmtNum(v)
	if v < 100 {
		s = fmt.Sprintf("%.2f", v)
	}
	if m.lo != nil && r.Rounds > 1 && v > 0 {
		s += fmt.Sprintf(" ±%.0f%%", 50*(m.hi(r)-m.lo(r))/v)
	}
	return s
}

func verdictOf(m compareMetric, o, n row, noise float64) string {
	ov, nv := m.value(o), m.value(n)
	if ov <= 0 {
		return "new"
	}
	rat := nv / ov
	within := math.Abs(rat-1) < noise
	if m.lo != nil && o.Rounds > 1 && n.Rounds > 1 {
		within = m.lo(n) <= m.hi(o) && m.lo(o) <= m.hi(n)
	}
	if within {
		return "~"
	}
	better := rat > 1
	if m.lowerWins {
		better = rat < 1
	}
	word := "worse"
	if better {
		word = "better"
	}
	return fmt.Sprintf("%.2f× (%s)", rat, word)
}

// runCompare is `bench compare OLD NEW`.
func runCompare(args []string, w io.Writer) error {
	if len(args) != 2 {
		return fmt.Errorf("bench: usage: bench compare OLD NEW (each a results.json or the directory holding it)")
	}
	old, err := readResults(args[0])
	if err != nil {
		return err
	}
	cur, err := readResults(args[1])
	if err != nil {
		return err
	}
	compareResults(w, old, cur)
	return nil
}
