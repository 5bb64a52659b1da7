package stats

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/multiserve/multiserve/scoreboard"
)

var (
	descWorkers     = prometheus.NewDesc("multiserve_workers", "Worker processes by state (booting, idle, busy, retiring).", []string{"state"}, nil)
	descTarget      = prometheus.NewDesc("multiserve_workers_target", "Worker processes the arbiter keeps running.", nil, nil)
	descSaturation  = prometheus.NewDesc("multiserve_saturation", "Busy workers divided by live workers (0..1).", nil, nil)
	descInFlight    = prometheus.NewDesc("multiserve_requests_in_flight", "Requests inside a handler now.", nil, nil)
	descConns       = prometheus.NewDesc("multiserve_connections", "Client connections open in worker processes (retiring ones included), by worker class.", []string{"class"}, nil)
	descRequests    = prometheus.NewDesc("multiserve_requests_total", "Requests served, by worker class.", []string{"class"}, nil)
	descResponses   = prometheus.NewDesc("multiserve_responses_total", "Responses by worker class and status class.", []string{"class", "code"}, nil)
	descBytes       = prometheus.NewDesc("multiserve_response_bytes_total", "Response body bytes, by worker class.", []string{"class"}, nil)
	descLatency     = prometheus.NewDesc("multiserve_request_duration_seconds", "Time in the handler, by worker class.", []string{"class"}, nil)
	descQueue       = prometheus.NewDesc("multiserve_request_queue_seconds", "Time from X-Request-Start (set by a proxy) to the handler, by worker class.", []string{"class"}, nil)
	descRejected    = prometheus.NewDesc("multiserve_rejected_requests_total", "Requests the engine refused before the application saw them, by worker class, status and reason.", []string{"class", "code", "reason"}, nil)
	descPromoted    = prometheus.NewDesc("multiserve_route_promotions_total", "Routes moved from the pool to inline on the event loop, by worker class (classes that place requests by route).", []string{"class"}, nil)
	descDemoted     = prometheus.NewDesc("multiserve_route_demotions_total", "Routes moved from inline on the event loop to the pool, by worker class (classes that place requests by route).", []string{"class"}, nil)
	descRestarts    = prometheus.NewDesc("multiserve_worker_restarts_total", "Workers the arbiter had to replace, by reason.", []string{"reason"}, nil)
	descAcceptQueue = prometheus.NewDesc("multiserve_listen_queue_length", "Connections waiting in a listening socket's accept queue (TCP).", []string{"listener"}, nil)
	descBacklog     = prometheus.NewDesc("multiserve_listen_queue_max", "Accept queue limit of a listening socket (TCP).", []string{"listener"}, nil)
	descRSS         = prometheus.NewDesc("multiserve_workers_rss_bytes", "Resident memory of all live workers (VmRSS).", nil, nil)
	descThreads     = prometheus.NewDesc("multiserve_workers_threads", "OS threads of all live workers.", nil, nil)
	descUp          = prometheus.NewDesc("multiserve_up", "1 while the arbiter answers and at least one worker is ready.", nil, nil)
)

// restartReasons are always exported, at 0 until they happen.
var restartReasons = []string{ReasonTimeout, ReasonBootTimeout, ReasonMaxRequests, ReasonCrash, ReasonKilled}

// collector turns a Status into const metrics on every scrape.
type collector struct {
	src   Source
	board *scoreboard.Board
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWorkers, descTarget, descSaturation, descInFlight, descConns, descRequests,
		descResponses, descBytes, descLatency, descQueue, descPromoted, descDemoted, descRejected, descRestarts, descAcceptQueue, descBacklog, descRSS, descThreads, descUp} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, err := Collect(c.src, c.board)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descUp, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	s := st.Summary
	up := 0.0
	if readyWorkers(st.Snapshot) > 0 {
		up = 1
	}
	gauge(descUp, up)
	for state, n := range map[string]int{"booting": s.Booting, "idle": s.Idle, "busy": s.Busy, "retiring": s.Retiring} {
		gauge(descWorkers, float64(n), state)
	}
	gauge(descTarget, float64(st.Target))
	gauge(descSaturation, s.Saturation)
	gauge(descInFlight, float64(s.InFlight))
	for class, n := range st.conns {
		gauge(descConns, float64(n), class)
	}
	gauge(descThreads, float64(s.Threads))
	gauge(descRSS, float64(s.RSSBytes))
	for _, r := range restartReasons {
		counter(descRestarts, st.Restarts[r], r)
	}
	for class, t := range st.totals {
		counter(descRequests, t.Requests, class)
		counter(descBytes, t.Bytes, class)
		for i, n := range t.Status {
			counter(descResponses, n, class, fmt.Sprintf("%dxx", i+1))
		}
		ch <- histogram(descLatency, t.LatSumNs, t.LatBuckets[:], class)
		ch <- histogram(descQueue, t.QSumNs, t.QBuckets[:], class)
		counter(descPromoted, t.Promoted, class) // 0 for classes that do not place by route
		counter(descDemoted, t.Demoted, class)
		for i, r := range scoreboard.RejectedStatuses {
			counter(descRejected, t.Rejected[i], class, strconv.Itoa(r.Status), r.Reason)
		}
	}
	for _, l := range st.Listeners {
		if l.Measured {
			gauge(descAcceptQueue, float64(l.Queue), l.Name)
			gauge(descBacklog, float64(l.Backlog), l.Name)
		}
	}
}

// histogram makes a const histogram from per-bucket (non-cumulative)
// counts; the last count is the overflow bucket. The count is their sum
// (not the requests counter, read at another instant) so the histogram is
// always consistent.
func histogram(d *prometheus.Desc, sumNs uint64, perBucket []uint64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(scoreboard.Buckets))
	var cum uint64
	for i, ub := range scoreboard.Buckets {
		cum += perBucket[i]
		buckets[ub] = cum
	}
	count := cum + perBucket[len(perBucket)-1]
	return prometheus.MustNewConstHistogram(d, count, float64(sumNs)/1e9, buckets, labels...)
}
