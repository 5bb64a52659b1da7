//go:build chaos

package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	stdsync "sync"
	"time"
)

// classSummary is what the suite reports per worker class.
type classSummary struct {
	sent        int64           // requests sent by the load clients of every scenario
	failed      int64           // failed requests of clients that retry nothing
	unexplained int64           // failures not on a killed worker (kill storm)
	retryFailed int64           // failed requests of clients that retry a GET once
	respawn     []time.Duration // kill → a new pid answered
	respawnNow  []time.Duration // the same, for kills respawned without back-off
	slowP99     time.Duration
	slowNote    string
	rssPerConn  string
	failures    []string // scenarios that failed
	skipped     bool
}

var (
	summaryMu stdsync.Mutex
	summary   = map[string]*classSummary{}
)

func summaryOf(class string, fn func(s *classSummary)) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	s := summary[class]
	if s == nil {
		s = &classSummary{}
		summary[class] = s
	}
	fn(s)
}

// addLoad adds a load run's counts to the class's totals.
func addLoad(class string, st *loadStats) {
	summaryOf(class, func(s *classSummary) {
		s.sent += st.sent.Load()
		if st.retry {
			s.retryFailed += st.failed.Load()
		} else {
			s.failed += st.failed.Load()
		}
	})
}

func noteFailure(class, scenario string) {
	summaryOf(class, func(s *classSummary) { s.failures = append(s.failures, scenario) })
}

func printSummary(w io.Writer) {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	if len(summary) == 0 {
		return
	}
	mode := "full"
	if quick {
		mode = "quick (CHAOS_QUICK=1)"
	}
	fmt.Fprintf(w, "\n=== chaos summary, %s mode ===\n", mode)
	fmt.Fprintln(w, "| class | requests sent | failed (no retry) | of which not on a killed worker | failed (1 retry) | respawn p50 / max (n) | respawn without back-off p50 / max (n) | slow-client p99 | RSS / idle conn | failed scenarios |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, class := range classes {
		s := summary[class]
		if s == nil {
			fmt.Fprintf(w, "| %s | skipped | | | | | | | | |\n", class)
			continue
		}
		fail := "none"
		if len(s.failures) > 0 {
			fail = strings.Join(s.failures, ", ")
		}
		p99 := "-"
		if s.slowP99 > 0 {
			p99 = s.slowP99.Round(time.Millisecond).String()
		}
		if s.slowNote != "" {
			p99 += " " + s.slowNote
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s |\n",
			class, s.sent, s.failed, s.unexplained, s.retryFailed,
			durStats(s.respawn), durStats(s.respawnNow), p99, orDash(s.rssPerConn), fail)
	}
	printHostileRSS(w)
}

// durStats formats the median and maximum of ds.
func durStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%v / %v (%d)", s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond), len(s))
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
