package main

import (
	"fmt"
	"slices"
	"strings"
)

// Exit codes of the bench, for scripts and CI (bench/README.md lists them).
// When several apply, the first in this order wins: interrupted, nothing
// measured, unavailable, fail-if.
const (
	exitOK          = 0
	exitError       = 1 // the runner could not work at all (no output directory, bad workload set)
	exitUsage       = 2 // bad flags
	exitNothing     = 3 // no configuration produced a number
	exitUnavailable = 4 // a configuration named in --classes or --peers could not be built or started
	exitFailIf      = 5 // a --fail-if condition held or could not be evaluated
	exitInterrupted = 6 // SIGINT or SIGTERM: the partial report was written, marked interrupted
)

// outcome is what a run ends with: the report and the exit code, with why.
type outcome struct {
	path   string
	code   int
	reason string
	checks []checkResult
}

// measured says whether any configuration produced a number.
func (b *bench) measured() bool {
	return slices.ContainsFunc(b.results, func(r *result) bool {
		return r.Status == statusOK && (len(r.Points) > 0 || r.SlowLoad != nil || r.Idle != nil || len(r.Spread) > 0 || r.Reload != nil)
	})
}

// requestedUnavailable names the configurations the user listed by name
// that could not run ("all" and the defaults ask for whatever is there).
func (b *bench) requestedUnavailable() []string {
	var out []string
	for _, t := range b.targets {
		list := b.opts.classes
		if t.peer {
			list = b.opts.peersAsked
		}
		if t.unavailable != "" && namedIn(list, t.name) {
			out = append(out, t.name)
		}
	}
	return out
}

func namedIn(list, name string) bool {
	if list == "" || list == "all" || list == "none" {
		return false
	}
	for n := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

// outcome decides the exit code once the report is written.
func (b *bench) outcome(path string, checks []checkResult) outcome {
	o := outcome{path: path, checks: checks}
	var failed []string
	for _, c := range checks {
		if c.failed {
			failed = append(failed, c.cond.text)
		}
	}
	switch un := b.requestedUnavailable(); {
	case b.interrupted:
		o.code, o.reason = exitInterrupted, "interrupted; the report is partial"
	case !b.measured():
		o.code, o.reason = exitNothing, "nothing was measured"
	case len(un) > 0:
		o.code, o.reason = exitUnavailable, "requested but unavailable: "+strings.Join(un, ", ")
	case len(failed) > 0:
		o.code, o.reason = exitFailIf, fmt.Sprintf("--fail-if held: %s", strings.Join(failed, "; "))
	}
	return o
}
