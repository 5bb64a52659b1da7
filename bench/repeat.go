package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// span is the lowest and highest value of a metric across rounds.
type span struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// rel is the span's width relative to the median m.
func (s *span) rel(m float64) float64 {
	if s == nil || m <= 0 {
		return 0
	}
	return (s.Max - s.Min) / m
}

// aggregate folds one configuration's rounds into one result: medians per
// concurrency level with the min–max of throughput and of requests per
// CPU-second; counts and CPU times summed. Rounds that failed are left
// out and named in the reason.
func aggregate(rounds []*result) *result {
	ok := slices.DeleteFunc(slices.Clone(rounds), func(r *result) bool { return r.Status != statusOK })
	if len(ok) == 0 {
		return rounds[len(rounds)-1]
	}
	// The median round by its first figure carries what is not averaged
	// (open loop, slow-client counts, spread).
	slices.SortStableFunc(ok, func(a, b *result) int { return cmp.Compare(headline(a), headline(b)) })
	out := *ok[len(ok)/2]
	if len(ok) < len(rounds) {
		out.Reason = fmt.Sprintf("%d of %d rounds did not measure (%s)", len(rounds)-len(ok), len(rounds), firstReason(rounds))
	}
	for _, r := range ok {
		out.Syscalls = cmp.Or(out.Syscalls, r.Syscalls) // counted in one round only
	}
	if len(ok) == 1 {
		return &out
	}
	if n := len(ok[0].Points); slices.IndexFunc(ok, func(r *result) bool { return len(r.Points) != n }) < 0 {
		out.Points = make([]point, n)
		for i := range n {
			out.Points[i] = medianPoint(collect(ok, func(r *result) point { return r.Points[i] }))
		}
	}
	if slices.IndexFunc(ok, func(r *result) bool { return r.SlowLoad == nil }) < 0 {
		p := medianPoint(collect(ok, func(r *result) point { return *r.SlowLoad }))
		out.SlowLoad = &p
	}
	if slices.IndexFunc(ok, func(r *result) bool { return r.Reload == nil }) < 0 {
		// Losses are counts: the rounds add up.
		sum := *out.Reload
		sum.HUPs, sum.Requests, sum.ReadErrors, sum.Non2xx, sum.Other = 0, 0, 0, 0, 0
		for _, r := range ok {
			sum.HUPs += r.Reload.HUPs
			sum.Requests += r.Reload.Requests
			sum.ReadErrors += r.Reload.ReadErrors
			sum.Non2xx += r.Reload.Non2xx
			sum.Other += r.Reload.Other
		}
		out.Reload = &sum
	}
	if slices.IndexFunc(ok, func(r *result) bool { return r.Idle == nil }) < 0 {
		idle := *out.Idle
		kb := collect(ok, func(r *result) float64 { return r.Idle.PerConnKB })
		idle.PerConnKB, idle.PerConnSpan = median(kb), spanOf(kb)
		out.Idle = &idle
	}
	return &out
}

// headline is a result's first figure, to pick its median round.
func headline(r *result) float64 {
	switch {
	case len(r.Points) > 0:
		return r.Points[0].RPS
	case r.SlowLoad != nil:
		return r.SlowLoad.RPS
	case r.Idle != nil:
		return r.Idle.PerConnKB
	case len(r.Spread) > 0:
		return r.Spread[0].spread()
	}
	return 0
}

func firstReason(rs []*result) string {
	for _, r := range rs {
		if r.Status != statusOK {
			return short(r.Status + ": " + r.Reason)
		}
	}
	return ""
}

func collect[T, U any](xs []T, f func(T) U) []U {
	out := make([]U, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// medianPoint is the median of each measure of several rounds' points.
func medianPoint(ps []point) point {
	out := ps[0]
	rps := collect(ps, func(p point) float64 { return p.RPS })
	eff := collect(ps, func(p point) float64 { return p.ReqPerCPU })
	out.RPS, out.RPSSpan = median(rps), spanOf(rps)
	out.ReqPerCPU, out.EffSpan = median(eff), spanOf(eff)
	lat := func(f func(p point) time.Duration) time.Duration {
		return time.Duration(median(collect(ps, func(p point) float64 { return float64(f(p)) })))
	}
	out.P50, out.P90, out.P99 = lat(func(p point) time.Duration { return p.P50 }), lat(func(p point) time.Duration { return p.P90 }), lat(func(p point) time.Duration { return p.P99 })
	out.P999 = lat(func(p point) time.Duration { return p.P999 })
	if n := len(out.Dist); slices.IndexFunc(ps, func(p point) bool { return len(p.Dist) != n }) < 0 {
		out.Dist = make([]pct, n)
		for i := range n {
			out.Dist[i] = pct{P: ps[0].Dist[i].P, D: lat(func(p point) time.Duration { return p.Dist[i].D })}
		}
	}
	out.Requests, out.Errors, out.CPU, out.Others, out.Elapsed, out.Max = 0, 0, 0, 0, 0, 0
	for _, p := range ps {
		out.Requests += p.Requests
		out.Errors += p.Errors
		out.CPU += p.CPU
		out.Others += p.Others
		out.Elapsed += p.Elapsed
		out.Max = max(out.Max, p.Max)
	}
	out.Rounds = len(ps)
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spanOf(v []float64) *span {
	return &span{Min: slices.Min(v), Max: slices.Max(v)}
}

// defaultTie is the tie threshold of a single-round run, which measures
// no spread: runs on a shared 2-core machine vary by several percent.
const defaultTie = 0.10

// minTie is the least tie threshold, derived or compared: below it, a
// difference between two runs on a shared machine is not a result.
const minTie = 0.03

// tieThreshold derives the tie threshold from the run's own noise: the
// median min–max width, relative to the median, of the classes' deciding
// metric across rounds (at least minTie). A single round has no spread to
// measure and keeps defaultTie.
func (b *bench) tieThreshold() float64 {
	var widths []float64
	for _, wl := range b.workloads {
		for _, r := range b.resultsFor(wl) {
			if w, ok := b.scoreSpread(wl, r); ok {
				widths = append(widths, w)
			}
		}
	}
	if len(widths) == 0 {
		return defaultTie
	}
	return math.Min(0.5, math.Max(minTie, median(widths)))
}

// scoreSpread is the relative min–max width of a class's deciding metric.
func (b *bench) scoreSpread(wl *workload, r *result) (float64, bool) {
	if r.Status != statusOK || r.Peer {
		return 0, false
	}
	switch {
	case wl.kind == kindClosed && len(r.Points) > 0:
		prim, _ := metrics(wl)
		p := peak(r)
		if prim.name == byEfficiency.name {
			p = slices.MaxFunc(r.Points, func(a, b point) int { return cmp.Compare(a.ReqPerCPU, b.ReqPerCPU) })
			return p.EffSpan.rel(p.ReqPerCPU), p.EffSpan != nil
		}
		return p.RPSSpan.rel(p.RPS), p.RPSSpan != nil
	case wl.kind == kindSlow && r.SlowLoad != nil:
		return r.SlowLoad.RPSSpan.rel(r.SlowLoad.RPS), r.SlowLoad.RPSSpan != nil
	case wl.kind == kindIdle && r.Idle != nil && r.Idle.PerConnSpan != nil:
		return r.Idle.PerConnSpan.rel(r.Idle.PerConnKB), true
	}
	return 0, false
}

// noisyShare is the share of the server's CPU other processes may take
// during a row before the row is flagged as noisy.
const noisyShare = 0.10

// noisy says whether other processes took a noticeable share of the
// server's CPU while p was measured.
func noisy(p point) bool {
	return p.Elapsed > 0 && p.Others.Seconds() >= noisyShare*p.Elapsed.Seconds()
}

// tieSentence says where the tie threshold came from.
func (b *bench) tieSentence() string {
	if b.opts.repeat > 1 {
		return fmt.Sprintf("Tie threshold: %.0f %%, the median min–max spread across the %d rounds of the classes' deciding metrics in this run (at least %.0f %%).", b.tie*100, b.opts.repeat, minTie*100)
	}
	return fmt.Sprintf("Tie threshold: %.0f %% (a single round measures no spread; run with --repeat 3 or more to derive it from the run's own noise).", b.tie*100)
}

// withSpan renders a median with its min–max across rounds.
func withSpan(v float64, s *span) string {
	if s == nil {
		return fmtNum(v)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(v), fmtNum(s.Min), fmtNum(s.Max))
}

// rowLabel is a table row's configuration, flagged when other processes
// took the server's CPU during it.
func rowLabel(r *result, p point) string {
	if noisy(p) {
		return label(r) + " †"
	}
	return label(r)
}

func writeNoisyNote(w *strings.Builder, flagged bool) {
	if flagged {
		fmt.Fprintf(w, "† other processes took at least %.0f %% of the server's CPU during this row (see \"others\"): its req/s is noisy; req per server CPU-s is less affected.\n\n", noisyShare*100)
	}
}

// roundsNote tells how a table's figures were folded from rounds.
func (b *bench) roundsNote() string {
	if b.opts.repeat > 1 {
		return fmt.Sprintf("; each figure is the median of %d interleaved rounds, (min–max) across them", b.opts.repeat)
	}
	return ""
}
