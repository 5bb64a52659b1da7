package main

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// matrix builds score rows from "workload: class=score ..." lines; a
// workload named "idle" is a memory row and a score "x" marks a failure.
func matrix(lines ...string) []scoreRow {
	var rows []scoreRow
	for _, l := range lines {
		name, cells, _ := strings.Cut(l, ":")
		row := scoreRow{workload: name, memory: name == "idle", scores: map[string]float64{}}
		for _, f := range strings.Fields(cells) {
			c, v, _ := strings.Cut(f, "=")
			if v == "x" {
				row.failed = append(row.failed, c)
				continue
			}
			row.scores[c], _ = strconv.ParseFloat(v, 64)
		}
		rows = append(rows, row)
	}
	return rows
}

func TestDecideOverall(t *testing.T) {
	five := []string{"sync", "threaded", "evloop", "evloop-pool", "goroutine"}
	for _, c := range []struct {
		name      string
		classes   []string
		rows      []scoreRow
		first     []string
		worstCase string
		collapsed []string
	}{{
		// The committed full report's matrix: evloop and goroutine each win
		// 4 of 9 workloads; evloop serves nothing on io.
		name:    "4-4 win count, evloop collapses on waits",
		classes: five,
		rows: matrix(
			"hello: sync=0.26 threaded=0.58 evloop=1 evloop-pool=0.98 goroutine=0.89",
			"io: sync=0 threaded=0.08 evloop=0 evloop-pool=0.02 goroutine=1",
			"io-1000: sync=0 threaded=0.06 evloop=0 evloop-pool=1 goroutine=0.99",
			"cpu: sync=0.96 threaded=0.95 evloop=0.99 evloop-pool=0.98 goroutine=1",
			"mixed: sync=0.05 threaded=0.68 evloop=0.05 evloop-pool=0.21 goroutine=1",
			"large: sync=0.92 threaded=0.82 evloop=0.88 evloop-pool=0.55 goroutine=1",
			"conn-per-request: sync=0.8 threaded=0.64 evloop=1 evloop-pool=0.81 goroutine=0.73",
			"slow-clients: sync=0 threaded=0.31 evloop=1 evloop-pool=0.78 goroutine=0.81",
			"idle: threaded=0.59 evloop=1 evloop-pool=0.82 goroutine=0.14"),
		first:     []string{"goroutine"},
		collapsed: []string{"sync", "threaded", "evloop", "evloop-pool"},
	}, {
		name:    "wins hello, collapses on io",
		classes: []string{"evloop", "goroutine"},
		rows: matrix("hello: evloop=1 goroutine=0.6", "io: evloop=0.01 goroutine=1",
			"slow-clients: evloop=1 goroutine=0.7", "idle: evloop=1 goroutine=0.14"),
		first:     []string{"goroutine"},
		collapsed: []string{"evloop"},
	}, {
		// Mirrored scores: a tie, named in class order, not alphabetically.
		name:    "a tie is a tie",
		classes: []string{"zeta", "alpha"},
		rows: matrix("hello: zeta=1 alpha=0.8", "io: zeta=0.8 alpha=1",
			"cpu: zeta=1 alpha=0.8", "mixed: zeta=0.8 alpha=1"),
		first: []string{"zeta", "alpha"},
	}, {
		name:    "within the tie threshold",
		classes: []string{"a", "b", "c"},
		rows:    matrix("hello: a=1 b=0.95 c=0.5", "io: a=0.97 b=1 c=1"),
		first:   []string{"a", "b"},
	}, {
		name:      "every class collapses somewhere",
		classes:   []string{"sync", "evloop"},
		rows:      matrix("hello: sync=0.2 evloop=1", "io: sync=1 evloop=0.1"),
		worstCase: "sync",
		collapsed: []string{"sync", "evloop"},
	}, {
		name:      "a failed workload is a collapse",
		classes:   []string{"a", "b"},
		rows:      matrix("hello: a=1 b=0.9", "io: a=x b=1"),
		first:     []string{"b"},
		collapsed: []string{"a"},
	}, {
		name:    "not measured everywhere is not eligible",
		classes: []string{"a", "b"},
		rows:    matrix("hello: a=1 b=0.9", "io: b=1"),
		first:   []string{"b"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			o := decideOverall(c.rows, c.classes, defaultTie)
			if !slices.Equal(o.first, c.first) || o.worstCase != c.worstCase {
				t.Errorf("first %v worst case %q, want %v %q (geomeans %v)", o.first, o.worstCase, c.first, c.worstCase, o.geomean)
			}
			var collapsed []string
			for _, cl := range c.classes {
				if len(o.collapses[cl]) > 0 {
					collapsed = append(collapsed, cl)
				}
			}
			if !slices.Equal(collapsed, c.collapsed) {
				t.Errorf("collapsed %v, want %v", collapsed, c.collapsed)
			}
			s := o.sentence(c.rows)
			if len(c.first) > 1 && !strings.Contains(s, " tie for first choice") {
				t.Errorf("a tie not called a tie: %s", s)
			}
		})
	}
}

// TestChoosingDocAgrees checks docs/choosing-a-worker-class.md against the
// run it cites (the last report linked before its table): the page's
// relative-score table and the overall sentence under it are what `bench
// summary` computes from that run's results.json, which is also what the
// run's own report printed; the sentence is the rule applied to the
// page's table; and "not sure" names the class the rule picks from it.
func TestChoosingDocAgrees(t *testing.T) {
	doc := readFile(t, "../docs/choosing-a-worker-class.md")
	run := citedRun(t, doc)
	rf, err := readResults(filepath.Join("..", run))
	if err != nil {
		t.Fatal(err)
	}
	matrix, sentence := summaryOf(rf)
	if !strings.Contains(doc, matrix) {
		t.Errorf("docs/choosing-a-worker-class.md's table is not %s's; paste `go run ./bench summary %s`:\n%s", run, run, matrix)
	}
	if report := readFile(t, filepath.Join("..", run, "report.md")); !strings.Contains(report, matrix+sentence) {
		t.Errorf("%s/report.md's Summary differs from the one recomputed from its results.json:\n%s%s", run, matrix, sentence)
	}
	rows, classes := parseMatrix(t, doc)
	o := decideOverall(rows, classes, rf.Run.TieThreshold)
	if len(o.first) != 1 {
		t.Fatalf("the page's matrix gives no single first choice: %s", o.sentence(rows))
	}
	if s := o.sentence(rows); s != sentence || !strings.Contains(doc, "\n"+s+"\n") {
		t.Errorf("docs/choosing-a-worker-class.md lacks, under its table, the rule's sentence for it:\n%s", s)
	}
	want := "**Not sure, or a bit of everything → `" + o.first[0] + "`.**"
	if !strings.Contains(doc, want) {
		t.Errorf("docs/choosing-a-worker-class.md lacks %q (the rule's choice from its own matrix)", want)
	}
	if !strings.Contains(strings.Join(strings.Fields(doc), " "), "geometric mean") {
		t.Error("docs/choosing-a-worker-class.md does not state the overall rule")
	}
}

var reportLink = regexp.MustCompile(`\]\(\.\./(bench/results/[^/)]+)/report\.md\)`)

// citedRun is the results directory of the last report a page links before
// its relative-score table.
func citedRun(t *testing.T, doc string) string {
	t.Helper()
	m := matrixHeader.FindStringIndex(doc)
	if m == nil {
		t.Fatal("no relative-score table")
	}
	links := reportLink.FindAllStringSubmatch(doc[:m[0]], -1)
	if len(links) == 0 {
		t.Fatal("no report linked before the relative-score table")
	}
	return links[len(links)-1][1]
}

var matrixHeader = regexp.MustCompile(`(?m)^\| workload \| deciding metric \| (.+) \|$`)

// parseMatrix reads the first relative-score table of a Markdown page.
func parseMatrix(t *testing.T, doc string) ([]scoreRow, []string) {
	t.Helper()
	m := matrixHeader.FindStringSubmatchIndex(doc)
	if m == nil {
		t.Fatal("no relative-score table")
	}
	classes := strings.Split(doc[m[2]:m[3]], " | ")
	var rows []scoreRow
	for _, line := range strings.Split(doc[m[1]:], "\n")[2:] {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		row := scoreRow{workload: cells[0], memory: cells[0] == "idle", scores: map[string]float64{}}
		for i, cell := range cells[2:] {
			if v, err := strconv.ParseFloat(strings.Trim(cell, "*"), 64); err == nil {
				row.scores[classes[i]] = v
			} else if cell == "failed" {
				row.failed = append(row.failed, classes[i])
			}
		}
		rows = append(rows, row)
	}
	return rows, classes
}

// TestUncovered: a workload that ran but measured nothing (a time budget)
// is not covered, and without a measured waiting workload the run says so.
func TestUncovered(t *testing.T) {
	ws, err := selectWorkloads("hello,io,idle", allWorkloads())
	if err != nil {
		t.Fatal(err)
	}
	missing, noWaiting := uncovered(ws, func(name string) bool { return name != "io" })
	if !noWaiting || !strings.Contains(strings.Join(missing, "; "), "mostly wait on a database or another service (`io`)") ||
		strings.Contains(strings.Join(missing, "; "), "(`hello`)") || !strings.Contains(strings.Join(missing, "; "), "CPU-heavy") {
		t.Errorf("missing %v, no waiting %v", missing, noWaiting)
	}
	if _, noWaiting := uncovered(ws, func(string) bool { return true }); noWaiting {
		t.Error("io measured, yet no waiting workload")
	}
}
