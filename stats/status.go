package stats

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/scoreboard"
)

// Status is /status: the arbiter's snapshot joined with the scoreboard.
type Status struct {
	Snapshot
	Summary   Summary                `json:"summary"`
	Workers   []WorkerStatus         `json:"workers"`
	Classes   map[string]ClassTotals `json:"classes"`
	Listeners []ListenerStatus       `json:"listeners"`

	totals map[string]*scoreboard.Counters
	conns  map[string]int64 // open connections by class (every worker with a slot)
}

// Summary are the pool-wide gauges.
type Summary struct {
	Workers  int   `json:"workers"` // live, not retiring
	Busy     int   `json:"busy"`
	Idle     int   `json:"idle"`
	Booting  int   `json:"booting"`
	Retiring int   `json:"retiring"`
	InFlight int64 `json:"in_flight"`
	// Connections open in every worker (retiring ones included: they
	// still serve theirs).
	Connections int64   `json:"connections"`
	Saturation  float64 `json:"saturation"` // busy / workers
	Threads     int     `json:"threads"`    // OS threads of all live workers
	RSSBytes    int64   `json:"rss_bytes"`  // resident memory of all live workers
}

// WorkerStatus is one worker's row.
type WorkerStatus struct {
	PID         int             `json:"pid"`
	Age         int             `json:"age"`
	Generation  int             `json:"generation"`
	Class       string          `json:"class"`
	Slot        int             `json:"slot"`
	State       string          `json:"state"`
	Ready       bool            `json:"ready"`
	Retiring    bool            `json:"retiring"`
	UptimeSec   float64         `json:"uptime_seconds"`
	Requests    uint64          `json:"requests"`
	InFlight    int64           `json:"in_flight"`
	Bytes       uint64          `json:"bytes_out"`
	Connections int64           `json:"connections"`
	RSSBytes    int64           `json:"rss_bytes"`
	Threads     int             `json:"threads"`
	Current     *CurrentRequest `json:"current_request,omitempty"`
	// Routes is the worker's route table, busiest first, for a class that
	// places requests by route (auto): where each runs, its samples and
	// handler time.
	Routes []scoreboard.Route `json:"routes,omitempty"`
}

// CurrentRequest is the request a worker is serving (or last served).
type CurrentRequest struct {
	Method  string  `json:"method"`
	Path    string  `json:"path"`
	Client  string  `json:"client"`
	AgeSec  float64 `json:"age_seconds"`
	Running bool    `json:"in_flight"`
}

// ClassTotals are cumulative counters of one worker class (retired
// workers included).
type ClassTotals struct {
	Requests  uint64            `json:"requests"`
	Bytes     uint64            `json:"bytes_out"`
	Responses map[string]uint64 `json:"responses"` // "2xx" → count
	// Latency since start, in seconds: the mean, and p50/p99 as the upper
	// bound of the histogram bucket holding them (-1: above the last).
	LatencyMean float64 `json:"latency_mean_seconds"`
	LatencyP50  float64 `json:"latency_p50_seconds"`
	LatencyP99  float64 `json:"latency_p99_seconds"`
	// Route placement changes of a class that places requests by route.
	Promotions uint64 `json:"route_promotions,omitempty"`
	Demotions  uint64 `json:"route_demotions,omitempty"`
}

// quantile is the upper bound of the bucket holding quantile q of the
// per-bucket counts (the last count is the overflow bucket: -1).
func quantile(perBucket []uint64, q float64) float64 {
	var total uint64
	for _, n := range perBucket {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var cum uint64
	for i, n := range perBucket {
		cum += n
		if cum >= rank {
			if i < len(scoreboard.Buckets) {
				return scoreboard.Buckets[i]
			}
			return -1
		}
	}
	return -1
}

// ListenerStatus is a listening socket's accept queue (TCP only).
type ListenerStatus struct {
	Name     string `json:"name"`
	Queue    int    `json:"queue"`   // connections waiting for accept()
	Backlog  int    `json:"backlog"` // the queue's limit
	Measured bool   `json:"measured"`
}

// Collect builds the Status now.
func Collect(src Source, board *scoreboard.Board) (*Status, error) {
	snap, err := src.Snapshot()
	if err != nil {
		return nil, err
	}
	st := &Status{Snapshot: snap, Classes: map[string]ClassTotals{}, conns: map[string]int64{}}
	now := time.Now()
	for _, w := range snap.Workers {
		ws := workerStatus(w, board, now)
		st.Workers = append(st.Workers, ws)
		st.Summary.add(ws)
		if board != nil {
			st.conns[ws.Class] += ws.Connections
		}
	}
	sort.Slice(st.Workers, func(i, j int) bool { return st.Workers[i].Age < st.Workers[j].Age })
	if st.Summary.Workers > 0 {
		st.Summary.Saturation = float64(st.Summary.Busy) / float64(st.Summary.Workers)
	}
	st.totals = totals(snap, board)
	for class, c := range st.totals {
		ct := ClassTotals{Requests: c.Requests, Bytes: c.Bytes, Responses: map[string]uint64{},
			Promotions: c.Promoted, Demotions: c.Demoted,
			LatencyP50: quantile(c.LatBuckets[:], .5), LatencyP99: quantile(c.LatBuckets[:], .99)}
		if c.Requests > 0 {
			ct.LatencyMean = float64(c.LatSumNs) / 1e9 / float64(c.Requests)
		}
		for i, n := range c.Status {
			ct.Responses[fmt.Sprintf("%dxx", i+1)] = n
		}
		st.Classes[class] = ct
	}
	for _, l := range snap.Listeners {
		st.Listeners = append(st.Listeners, listenerStatus(l))
	}
	return st, nil
}

func (s *Summary) add(w WorkerStatus) {
	s.Connections += w.Connections
	switch {
	case w.Retiring:
		s.Retiring++
		return
	case !w.Ready:
		s.Booting++
	case w.InFlight > 0:
		s.Busy++
	default:
		s.Idle++
	}
	s.Workers++
	s.InFlight += w.InFlight
	s.Threads += w.Threads
	s.RSSBytes += w.RSSBytes
}

func workerStatus(w Worker, board *scoreboard.Board, now time.Time) WorkerStatus {
	ws := WorkerStatus{
		PID: w.PID, Age: w.Age, Generation: w.Generation, Class: w.Class, Slot: w.Slot,
		Ready: w.Ready, Retiring: w.Retiring, UptimeSec: now.Sub(w.Spawned).Seconds(), State: "unknown",
	}
	if !w.Ready {
		ws.State = scoreboard.StateBooting.String()
	}
	if board != nil && w.Slot >= 0 {
		if in := board.Slot(w.Slot).Info(); in.PID == w.PID {
			ws.Routes = board.Slot(w.Slot).Routes()
			ws.State = stateOf(in).String()
			ws.Requests, ws.InFlight, ws.Bytes, ws.Connections = in.Requests, in.InFlight, in.Bytes, in.Connections
			if in.Current.Start != 0 {
				ws.Current = &CurrentRequest{
					Method: in.Current.Method, Path: in.Current.Path, Client: in.Current.Client,
					AgeSec: in.Current.Age().Seconds(), Running: in.InFlight > 0,
				}
			}
		}
	}
	if w.Retiring {
		ws.State = "retiring"
	}
	ws.RSSBytes, ws.Threads = procStatus(w.PID)
	return ws
}

// stateOf trusts the in-flight count over the state word for idle versus
// handling: two requests ending and starting at once on different threads
// can leave the last-written state behind the count.
func stateOf(in scoreboard.Info) scoreboard.State {
	switch {
	case in.InFlight > 0 && in.State == scoreboard.StateIdle:
		return scoreboard.StateHandling
	case in.InFlight == 0 && in.State == scoreboard.StateHandling:
		return scoreboard.StateIdle
	}
	return in.State
}

// totals are the per-class cumulative counters of the pool.
func totals(snap Snapshot, board *scoreboard.Board) map[string]*scoreboard.Counters {
	if board == nil {
		return nil
	}
	live := map[int]scoreboard.Owner{}
	for _, w := range snap.Workers {
		if w.Slot >= 0 {
			live[w.Slot] = scoreboard.Owner{PID: w.PID, Class: w.Class}
		}
	}
	return board.Totals(live)
}

// procStatus reads VmRSS and Threads from /proc/PID/status.
func procStatus(pid int) (rss int64, threads int) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			n, _ := strconv.ParseInt(fields[0], 10, 64)
			rss = n * 1024 // reported in kB
		case "Threads":
			threads, _ = strconv.Atoi(fields[0])
		}
	}
	return rss, threads
}

// listenerStatus reads a TCP listening socket's accept queue: for a socket
// in LISTEN state Linux reports the queue length in tcpi_unacked and its
// limit in tcpi_sacked.
func listenerStatus(l Listener) ListenerStatus {
	ls := ListenerStatus{Name: l.Name}
	info, err := unix.GetsockoptTCPInfo(l.FD, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil || info.State != 10 { // TCP_LISTEN
		return ls
	}
	ls.Queue, ls.Backlog, ls.Measured = int(info.Unacked), int(info.Sacked), true
	return ls
}
