package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// collapseBelow is the relative score under which a class is said to
// collapse on a workload: it serves less than a quarter of what the best
// class serves with the same CPU.
const collapseBelow = 0.25

// overallRule states how the overall recommendation is computed; the
// report prints it and docs/choosing-a-worker-class.md follows it (a test
// checks that they agree).
const overallRule = "A class *collapses* on a workload when it scores under 0.25 of the best class there on a throughput metric " +
	"(idle memory is a cost, not a collapse), or when it started but failed the workload. " +
	"The overall first choice is, among the classes measured on every throughput workload of the run that collapse on none of them, " +
	"the one with the highest geometric mean of its relative scores; classes within the tie threshold of it share first place, in no order. " +
	"When every class collapses somewhere, no class is recommended overall and the one with the best worst case is named."

// scoreRow is one workload's relative scores (1 = the best class).
type scoreRow struct {
	workload string
	memory   bool               // idle memory: a cost, never a collapse
	scores   map[string]float64 // class → score relative to the best class
	failed   []string           // classes that started but failed the workload
}

// overall is the computed overall recommendation.
type overall struct {
	first     []string            // the first choice; several when tied
	worstCase string              // set when every class collapses somewhere
	collapses map[string][]string // class → workloads where it collapses
	missing   map[string][]string // class → throughput workloads it was not measured on
	geomean   map[string]float64
}

// decideOverall applies overallRule to the classes (in registry order).
func decideOverall(rows []scoreRow, classes []string, tie float64) overall {
	o := overall{collapses: map[string][]string{}, missing: map[string][]string{}, geomean: map[string]float64{}}
	var eligible []string
	for _, c := range classes {
		measured := false
		logSum, n := 0.0, 0
		for _, r := range rows {
			v, ok := r.scores[c]
			switch {
			case slices.Contains(r.failed, c):
				o.collapses[c] = append(o.collapses[c], r.workload)
				measured = true
			case !ok && !r.memory && len(r.scores) > 0:
				o.missing[c] = append(o.missing[c], r.workload)
			case !ok:
			default:
				measured = true
				if !r.memory && v < collapseBelow {
					o.collapses[c] = append(o.collapses[c], r.workload)
				}
				logSum += math.Log(math.Max(v, 1e-3))
				n++
			}
		}
		if n > 0 {
			o.geomean[c] = math.Exp(logSum / float64(n))
		}
		if measured && len(o.collapses[c]) == 0 && len(o.missing[c]) == 0 {
			eligible = append(eligible, c)
		}
	}
	if len(eligible) > 0 {
		best := 0.0
		for _, c := range eligible {
			best = math.Max(best, o.geomean[c])
		}
		for _, c := range eligible {
			if o.geomean[c] >= best*(1-tie) {
				o.first = append(o.first, c)
			}
		}
		return o
	}
	o.worstCase = bestWorstCase(rows, classes)
	return o
}

// bestWorstCase is the class whose lowest throughput score is the highest
// (a failed workload scores 0); "" when no class has a throughput score.
func bestWorstCase(rows []scoreRow, classes []string) string {
	worst := func(c string) float64 {
		w := math.Inf(1)
		for _, r := range rows {
			if slices.Contains(r.failed, c) {
				return 0
			}
			if v, ok := r.scores[c]; ok && !r.memory {
				w = math.Min(w, v)
			}
		}
		return w
	}
	best, bestWorst := "", -1.0
	for _, c := range classes {
		if w := worst(c); !math.IsInf(w, 1) && w > bestWorst {
			bestWorst, best = w, c
		}
	}
	return best
}

// sentence renders the overall recommendation for the report, over the
// rows that have numbers.
func (o overall) sentence(rows []scoreRow) string {
	n := 0
	for _, r := range rows {
		if len(r.scores) > 0 || len(r.failed) > 0 {
			n++
		}
	}
	var s strings.Builder
	switch {
	case len(o.first) == 1:
		fmt.Fprintf(&s, "Overall in this run, **%s** is the first choice: it collapses on none of the %d workloads and has the highest geometric mean of relative scores (%.2f).",
			o.first[0], n, o.geomean[o.first[0]])
	case len(o.first) > 1:
		var parts []string
		for _, c := range o.first {
			parts = append(parts, fmt.Sprintf("**%s** (%.2f)", c, o.geomean[c]))
		}
		fmt.Fprintf(&s, "Overall in this run, %s tie for first choice: none collapses on any of the %d workloads and their geometric means of relative scores are within the tie threshold.",
			joinAnd(parts), n)
	case o.worstCase != "":
		fmt.Fprintf(&s, "No class is the overall first choice in this run: every class collapses on at least one workload. The best worst case is **%s**'s.", o.worstCase)
	default:
		s.WriteString("No class was measured on every workload, so there is no overall first choice.")
	}
	var notes []string
	for _, c := range sortedKeys(o.collapses) {
		notes = append(notes, fmt.Sprintf("%s collapses on %s", c, strings.Join(o.collapses[c], ", ")))
	}
	for _, c := range sortedKeys(o.missing) {
		notes = append(notes, fmt.Sprintf("%s was not measured on %s", c, strings.Join(o.missing[c], ", ")))
	}
	if len(notes) > 0 {
		fmt.Fprintf(&s, " Not eligible: %s.", strings.Join(notes, "; "))
	}
	return s.String()
}

// uncovered names the built-in situations a run did not measure (not
// selected, or nothing measured: a time budget, failures), so a verdict
// from a partial run is not read as a verdict on everything.
func uncovered(ran []*workload, measured func(name string) bool) (missing []string, noWaiting bool) {
	covered := func(w *workload) bool {
		return measured(w.name) && slices.ContainsFunc(ran, func(r *workload) bool { return r.name == w.name })
	}
	noWaiting = !slices.ContainsFunc(allWorkloads(), func(w *workload) bool { return w.waits && covered(w) })
	for _, w := range allWorkloads() {
		if w.question == "" || covered(w) {
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (`%s`)", lowerFirst(w.question), w.name))
	}
	return missing, noWaiting
}

// lowerFirst lowers a sentence's first letter unless it starts an acronym.
func lowerFirst(s string) string {
	if len(s) > 1 && s[1] >= 'A' && s[1] <= 'Z' {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
