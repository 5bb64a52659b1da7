package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// The summary matrix and the overall sentence are computed from the
// measurement rows that results.json holds, so a committed run's summary
// can be regenerated from its data (`bench summary DIR`) exactly as its
// report printed it.

// classNames lists the multiserve rows in registry order.
func (b *bench) classNames() []string {
	var classes []string
	for _, t := range b.targets {
		if !t.peer {
			classes = append(classes, t.name)
		}
	}
	return classes
}

// scoreRows gives, per ranked workload, each class's deciding metric
// relative to the best class (1.00), and the classes that failed it.
func (b *bench) scoreRows() []scoreRow { return scoreRowsOf(b.rows(), b.workloads) }

// scoreRowsOf computes the score rows of measurement rows, in the order of
// the workloads.
func scoreRowsOf(rows []row, workloads []*workload) []scoreRow {
	var out []scoreRow
	for _, wl := range workloads {
		if wl.kind == kindSpread || wl.kind == kindReload {
			continue // no ranking: the same class twice; a count of losses
		}
		sr := scoreRow{workload: wl.name, memory: wl.kind == kindIdle, scores: map[string]float64{}}
		for _, r := range rows {
			if r.Workload != wl.name || r.Peer {
				continue
			}
			if r.Status == statusFailed && !slices.Contains(sr.failed, r.Config) {
				sr.failed = append(sr.failed, r.Config)
			}
			if v, ok := score(wl, r); ok {
				sr.scores[r.Config] = math.Max(sr.scores[r.Config], v)
			}
		}
		best := 0.0
		for _, v := range sr.scores {
			best = math.Max(best, v)
		}
		for c, v := range sr.scores {
			if best > 0 {
				sr.scores[c] = v / best
			}
		}
		out = append(out, sr)
	}
	return out
}

// score is one row's value on its workload's deciding metric, higher is
// better; a class's score is the best of its rows (its peak, or its best
// requests per CPU-second, across concurrency levels). ok is false when
// the row has no number there.
func score(wl *workload, r row) (float64, bool) {
	if r.Status != statusOK {
		return 0, false
	}
	switch {
	case wl.kind == kindClosed && r.Mode == "closed":
		if wl.cpuBound {
			return r.ReqPerCPU, true
		}
		return r.RPS, true
	case wl.kind == kindSlow && r.Mode == "slow":
		return r.RPS, true
	case wl.kind == kindIdle && r.Mode == "idle" && keptOpen(r.OpenConns, r.Attempted) && r.KiBPerConn > 0:
		return 1 / r.KiBPerConn, true
	}
	return 0, false
}

// writeMatrix renders one row per workload and one column per class: the
// class's deciding metric relative to the best class (1.00).
func writeMatrix(w io.Writer, rows []scoreRow, classes []string, workloads []*workload) {
	fmt.Fprint(w, "Relative score per workload (1.00 = the best class on the workload's deciding metric; – = not measured):\n\n")
	fmt.Fprint(w, "| workload | deciding metric | "+strings.Join(classes, " | ")+" |\n|---|---|"+strings.Repeat("--:|", len(classes))+"\n")
	for _, row := range rows {
		cells := make([]string, len(classes))
		for i, c := range classes {
			v, ok := row.scores[c]
			switch {
			case slices.Contains(row.failed, c):
				cells[i] = "failed"
			case !ok:
				cells[i] = "–"
			case v >= 1:
				cells[i] = "**1.00**"
			default:
				cells[i] = fmt.Sprintf("%.2f", v)
			}
		}
		i := slices.IndexFunc(workloads, func(wl *workload) bool { return wl.name == row.workload })
		fmt.Fprintf(w, "| %s | %s | %s |\n", row.workload, decidingMetric(workloads[i]), strings.Join(cells, " | "))
	}
	fmt.Fprint(w, "\n")
}

func decidingMetric(wl *workload) string {
	switch wl.kind {
	case kindSlow:
		return "normal-load req/s"
	case kindIdle:
		return "fewest KiB per idle conn"
	}
	prim, _ := metrics(wl)
	return prim.unit
}

// summaryOf is a results file's matrix and overall sentence, as its
// report's Summary printed them.
func summaryOf(rf resultsFile) (matrix, sentence string) {
	workloads, classes := shapeOf(rf.Rows)
	rows := scoreRowsOf(rf.Rows, workloads)
	var w strings.Builder
	writeMatrix(&w, rows, classes, workloads)
	return w.String(), decideOverall(rows, classes, rf.Run.TieThreshold).sentence(rows)
}

// shapeOf recovers a run's workloads and multiserve classes, in the order
// the rows list them. A workload that is not built in is the user's own
// handler, ranked like every waiting workload by peak throughput.
func shapeOf(rows []row) (workloads []*workload, classes []string) {
	builtin := allWorkloads()
	for _, r := range rows {
		if !slices.ContainsFunc(workloads, func(wl *workload) bool { return wl.name == r.Workload }) {
			i := slices.IndexFunc(builtin, func(wl *workload) bool { return wl.name == r.Workload })
			wl := &workload{name: r.Workload, kind: kindClosed}
			if i >= 0 {
				wl = builtin[i]
			}
			workloads = append(workloads, wl)
		}
		if !r.Peer && !slices.Contains(classes, r.Config) {
			classes = append(classes, r.Config)
		}
	}
	return workloads, classes
}

// runSummary is `bench summary DIR`: the Summary matrix and overall
// sentence of a committed run, recomputed from its results.json.
func runSummary(args []string, w io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("bench: usage: bench summary RUN (a results.json or the directory holding it)")
	}
	rf, err := readResults(args[0])
	if err != nil {
		return err
	}
	matrix, sentence := summaryOf(rf)
	_, err = fmt.Fprintf(w, "%s%s\n", matrix, sentence)
	return err
}
