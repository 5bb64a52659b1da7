package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// The reload workload: keep-alive load while the server is told to reload
// (SIGHUP to its master process) once a second. A pre-fork server replaces
// its workers on a reload; a kept-alive client that loses a request to it
// sees a read error (the connection closed under an unanswered request) or
// an error status. Counted with wrk, which never retries.
const kindReload = "reload"

const (
	reloadFor   = 5 * time.Second // wrk's run; HUPs at 1, 2, 3 and 4 s
	reloadConns = 8
)

// reloadResult is what one configuration lost across its reloads.
type reloadResult struct {
	HUPs       int   `json:"hups"`
	Requests   int64 `json:"requests"`
	ReadErrors int64 `json:"read_errors"` // connections closed under an unanswered request
	Non2xx     int64 `json:"non_2xx"`
	Other      int64 `json:"other_errors"` // connect, write and timeout errors
	Load       point `json:"load"`
}

// lost is what a client of a reloading server loses.
func (r *reloadResult) lost() int64 { return r.ReadErrors + r.Non2xx }

// measureReload runs reloadFor of keep-alive load and HUPs the server's
// master once a second meanwhile.
func (b *bench) measureReload(ctx context.Context, wl *workload, t *target, srv *serverProc, r *result) {
	hctx, stop := context.WithCancel(ctx)
	hups := make(chan int, 1)
	go func() {
		n := 0
		defer func() { hups <- n }()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n < int(reloadFor/time.Second)-1 {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
				if syscall.Kill(srv.pid, syscall.SIGHUP) == nil {
					n++
				}
			}
		}
	}()
	p, err := b.measure(ctx, srv, b.spec(srv, wl, reloadConns, reloadFor))
	stop()
	rr := &reloadResult{HUPs: <-hups, Requests: p.Requests, ReadErrors: p.ReadErrors, Non2xx: p.Non2xx, Load: p}
	if _, ok := b.driver.(*wrkDriver); !ok {
		// The Go driver does not retry either, but does not tell a closed
		// connection from an error status: every failed request was lost.
		rr.ReadErrors = p.Errors
	}
	rr.Other = max(0, p.Errors-rr.ReadErrors-rr.Non2xx)
	r.Reload = rr
	if err != nil {
		r.Status, r.Reason = statusFailed, err.Error()
		b.logf("%s %-16s %-16s failed: %v", b.tag(), wl.name, t.name, err)
		return
	}
	b.logf("%s %-16s %-16s %d HUPs: %d requests, lost %d (read errors %d, non-2xx %d), other errors %d", b.tag(), wl.name, t.name,
		rr.HUPs, rr.Requests, rr.lost(), rr.ReadErrors, rr.Non2xx, rr.Other)
}

// writeReload renders the reload table and its verdict.
func (b *bench) writeReload(w *strings.Builder, rs []*result) string {
	ok := okWith(rs, func(r *result) bool { return r.Reload != nil })
	if len(ok) == 0 {
		w.WriteString("No configuration produced numbers.\n\n")
		return ""
	}
	fmt.Fprintf(w, "wrk, %d keep-alive connections for %s; SIGHUP to the master process once a second (for nginx, what `nginx -s reload` sends)%s.\n\n",
		reloadConns, reloadFor, b.roundsNote())
	w.WriteString("| config | HUPs | requests | lost | read errors | non-2xx | other errors | lost per 10,000 |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range ok {
		rr := r.Reload
		per := "–"
		if rr.Requests > 0 {
			per = fmt.Sprintf("%.2f", 1e4*float64(rr.lost())/float64(rr.Requests+rr.lost()))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %d | %d | %d | %s |\n", label(r), rr.HUPs, fmtNum(float64(rr.Requests)),
			rr.lost(), rr.ReadErrors, rr.Non2xx, rr.Other, per)
	}
	w.WriteString("\n")
	var none, some []string
	for _, r := range rankBy(ok, func(r *result) float64 { return -float64(r.Reload.lost()) }) { // fewest lost first
		if r.Reload.lost() == 0 {
			none = append(none, label(r))
		} else {
			some = append(some, fmt.Sprintf("%s %d", label(r), r.Reload.lost()))
		}
	}
	var s strings.Builder
	if len(none) > 0 {
		fmt.Fprintf(&s, "No request lost across the reloads: %s.", joinAnd(none))
	}
	if len(some) > 0 {
		fmt.Fprintf(&s, " Lost requests (read errors + non-2xx): %s.", strings.Join(some, ", "))
	}
	verdict := strings.TrimSpace(s.String())
	fmt.Fprintf(w, "**Verdict:** %s\n\n", verdict)
	return verdict
}
