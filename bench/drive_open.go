package main

import (
	"cmp"
	"context"
	"net"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// openResult is one open-loop (constant arrival rate) measurement.
type openResult struct {
	Rate       int           `json:"rate"`       // requested arrivals per second
	Sent       float64       `json:"sent"`       // achieved send rate
	Throughput float64       `json:"throughput"` // successful responses per second
	Success    float64       `json:"success"`    // fraction of requests answered 2xx/3xx
	Requests   uint64        `json:"requests"`
	P50        time.Duration `json:"p50"`
	P99        time.Duration `json:"p99"`
	Max        time.Duration `json:"max"`
	Errors     []string      `json:"errors,omitempty"` // distinct error texts, a few
	CPU        time.Duration `json:"cpu"`              // server CPU during the run
	Others     time.Duration `json:"others_cpu"`       // CPU other processes took on the server's CPUs
	Elapsed    time.Duration `json:"elapsed"`          // wall time, including waiting for the last answers
}

// openMaxWorkers bounds the requests in flight: enough that arrivals stay on
// schedule against a slow server (no coordinated omission), bounded so a
// stalled server cannot exhaust the runner's file descriptors.
const openMaxWorkers = 4000

// runOpen sends rate requests per second for d with vegeta, whatever the
// server's speed: when the server falls behind, more requests are in
// flight at once and their queueing shows up as latency, instead of the
// load generator slowing down with the server as a closed loop does.
func runOpen(ctx context.Context, s loadSpec, rate int) openResult {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: s.timeout}).DialContext,
		MaxIdleConnsPerHost: openMaxWorkers,
		DisableKeepAlives:   s.close,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	atk := vegeta.NewAttacker(
		vegeta.Client(&http.Client{Transport: tr, Timeout: s.timeout}),
		vegeta.Workers(64), vegeta.MaxWorkers(openMaxWorkers),
		vegeta.MaxBody(0), // read and discard: large responses cost no memory
	)
	targets := make([]vegeta.Target, len(s.paths))
	for i, p := range s.paths {
		targets[i] = vegeta.Target{Method: cmp.Or(s.method, http.MethodGet), URL: "http://" + s.addr + p, Body: s.body}
	}
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	var m vegeta.Metrics
	for res := range atk.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{Freq: rate, Per: time.Second}, s.duration, "bench") {
		m.Add(res)
	}
	m.Close()
	r := openResult{Rate: rate, Sent: m.Rate, Throughput: m.Throughput, Success: m.Success,
		Requests: m.Requests, P50: m.Latencies.P50, P99: m.Latencies.P99, Max: m.Latencies.Max}
	if len(m.Errors) > 3 {
		m.Errors = m.Errors[:3]
	}
	r.Errors = m.Errors
	return r
}
