package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// resultsSchema names the results file's format; bench/README.md documents
// it. A change that breaks a reader gets a new number.
const resultsSchema = "multiserve-bench/1"

// resultsFile is results.json: the run's metadata and one row per
// measurement, in the units its field names and "units" give.
type resultsFile struct {
	Schema string            `json:"schema"`
	Units  map[string]string `json:"units"`
	Run    runMeta           `json:"run"`
	Rows   []row             `json:"rows"`
	// Syscalls per request from the traced phase (hello, conn-per-request).
	Syscalls []syscallRow `json:"syscalls,omitempty"`
}

type syscallRow struct {
	Workload string             `json:"workload"`
	Config   string             `json:"config"`
	Peer     bool               `json:"peer"`
	Requests int                `json:"requests"`
	Total    float64            `json:"total"`
	Groups   map[string]float64 `json:"groups"` // IO, polling, runtime, other
	Calls    map[string]float64 `json:"calls"`  // syscall → calls per request
}

type runMeta struct {
	Started      time.Time  `json:"started"`
	TookS        float64    `json:"took_s"`
	Command      string     `json:"command"`
	Commit       string     `json:"commit"`
	Go           string     `json:"go"`
	Kernel       string     `json:"kernel"`
	CPU          string     `json:"cpu"`
	CPUs         int        `json:"cpus"`
	CPUSplit     string     `json:"cpu_split"`
	LoadStart    string     `json:"load_avg_start"`
	LoadEnd      string     `json:"load_avg_end"`
	Interrupted  bool       `json:"interrupted"`
	TieThreshold float64    `json:"tie_threshold"`
	Options      runOptions `json:"options"`
}

// runOptions is the subset of the flags that shapes the numbers.
type runOptions struct {
	Repeat      int      `json:"repeat"`
	DurationS   float64  `json:"duration_s"`
	OpenS       float64  `json:"open_duration_s"`
	Concurrency []int    `json:"concurrency"`
	Workers     int      `json:"workers"`
	Threads     int      `json:"threads"`
	Pool        int      `json:"pool"`
	Driver      string   `json:"driver"`
	Nice        int      `json:"nice"`
	Quick       bool     `json:"quick"`
	ServerFlags []string `json:"server_flags"`
}

// row is one measurement: a concurrency level of a closed-loop workload,
// an open-loop run, slow-clients' normal load, or an idle-connection count.
type row struct {
	Workload     string    `json:"workload"`
	Config       string    `json:"config"`
	Peer         bool      `json:"peer"`
	Mode         string    `json:"mode"` // closed, open, slow, idle, reload
	Status       string    `json:"status"`
	Reason       string    `json:"reason,omitempty"`
	Concurrency  int       `json:"concurrency"`
	Rounds       int       `json:"rounds"`
	RPS          float64   `json:"rps"`
	RPSMin       float64   `json:"rps_min"`
	RPSMax       float64   `json:"rps_max"`
	ReqPerCPU    float64   `json:"req_per_cpu_s"`
	ReqPerCPUMin float64   `json:"req_per_cpu_s_min"`
	ReqPerCPUMax float64   `json:"req_per_cpu_s_max"`
	P50          float64   `json:"p50_us"`
	P90          float64   `json:"p90_us"`
	P99          float64   `json:"p99_us"`
	P999         float64   `json:"p999_us"`
	Max          float64   `json:"max_us"`
	Requests     int64     `json:"requests"`
	Errors       int64     `json:"errors"`
	ServerCPU    float64   `json:"server_cpu_s"`
	OthersCPU    float64   `json:"others_cpu_s"`
	Elapsed      float64   `json:"elapsed_s"`
	KiBPerConn   float64   `json:"kib_per_conn"`
	KiBMin       float64   `json:"kib_per_conn_min"`
	KiBMax       float64   `json:"kib_per_conn_max"`
	OpenConns    int       `json:"open_conns"`
	Attempted    int       `json:"attempted,omitempty"` // idle: connections opened, open_conns of them still open at the end
	HUPs         int       `json:"hups"`
	Lost         int64     `json:"lost"`                 // reload: read errors + non-2xx
	Latency      []latency `json:"latency_us,omitempty"` // cumulative histogram
}

// latency is one point of the cumulative latency histogram: P percent of
// the requests took at most US microseconds.
type latency struct {
	P  float64 `json:"p"`
	US float64 `json:"us"`
}

var resultsUnits = map[string]string{
	"*_us": "microseconds", "*_s": "seconds", "rps*": "requests per second (median across rounds; _min/_max across rounds)",
	"req_per_cpu_s*": "requests per second of server CPU time (utime+stime of every server process)",
	"kib_per_conn*":  "KiB of server RSS per open idle connection", "requests, errors": "counts, summed over rounds",
	"latency_us": "cumulative histogram: p percent of requests took at most us microseconds",
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// rows flattens the results into measurement rows.
func (b *bench) rows() []row {
	var out []row
	for _, r := range b.results {
		base := row{Workload: r.Workload, Config: r.Target, Peer: r.Peer, Status: r.Status, Reason: r.Reason}
		if r.Status != statusOK {
			out = append(out, base)
			continue
		}
		for _, p := range r.Points {
			out = append(out, pointRow(base, "closed", p))
		}
		if r.SlowLoad != nil {
			out = append(out, pointRow(base, "slow", *r.SlowLoad))
		}
		if o := r.Open; o != nil {
			rr := base
			rr.Mode, rr.Rounds, rr.RPS, rr.P50, rr.P99, rr.Max = "open", 1, o.Throughput, us(o.P50), us(o.P99), us(o.Max)
			rr.Requests, rr.ServerCPU, rr.OthersCPU, rr.Elapsed = int64(o.Requests), o.CPU.Seconds(), o.Others.Seconds(), o.Elapsed.Seconds()
			rr.Errors = int64(float64(o.Requests) * (1 - o.Success))
			out = append(out, rr)
		}
		if rl := r.Reload; rl != nil {
			rr := pointRow(base, "reload", rl.Load)
			rr.Requests, rr.Errors, rr.HUPs, rr.Lost = rl.Requests, rl.lost()+rl.Other, rl.HUPs, rl.lost()
			out = append(out, rr)
		}
		if ir := r.Idle; ir != nil {
			rr := base
			rr.Mode, rr.Rounds, rr.KiBPerConn, rr.KiBMin, rr.KiBMax, rr.OpenConns = "idle", 1, ir.PerConnKB, ir.PerConnKB, ir.PerConnKB, ir.OpenAtEnd
			rr.Attempted = ir.Conns
			if s := ir.PerConnSpan; s != nil {
				rr.KiBMin, rr.KiBMax = s.Min, s.Max
			}
			out = append(out, rr)
		}
	}
	return out
}

func pointRow(base row, mode string, p point) row {
	r := base
	r.Mode, r.Concurrency, r.Rounds = mode, p.Concurrency, max(1, p.Rounds)
	r.RPS, r.RPSMin, r.RPSMax = p.RPS, p.RPS, p.RPS
	if s := p.RPSSpan; s != nil {
		r.RPSMin, r.RPSMax = s.Min, s.Max
	}
	r.ReqPerCPU, r.ReqPerCPUMin, r.ReqPerCPUMax = p.ReqPerCPU, p.ReqPerCPU, p.ReqPerCPU
	if s := p.EffSpan; s != nil {
		r.ReqPerCPUMin, r.ReqPerCPUMax = s.Min, s.Max
	}
	r.P50, r.P90, r.P99, r.P999, r.Max = us(p.P50), us(p.P90), us(p.P99), us(p.P999), us(p.Max)
	r.Requests, r.Errors = p.Requests, p.Errors
	r.ServerCPU, r.OthersCPU, r.Elapsed = p.CPU.Seconds(), p.Others.Seconds(), p.Elapsed.Seconds()
	for _, d := range p.Dist {
		r.Latency = append(r.Latency, latency{P: d.P, US: us(d.D)})
	}
	return r
}

func (b *bench) syscallRows() []syscallRow {
	var out []syscallRow
	for _, r := range b.results {
		if s := r.Syscalls; s != nil {
			g := map[string]float64{}
			for _, name := range []string{groupIO, groupPoll, groupRuntime, groupOther} {
				g[name] = s.group(name)
			}
			out = append(out, syscallRow{Workload: r.Workload, Config: r.Target, Peer: r.Peer, Requests: s.Requests, Total: s.total(), Groups: g, Calls: s.Calls})
		}
	}
	return out
}

func (b *bench) resultsData() resultsFile {
	o := b.opts
	return resultsFile{Schema: resultsSchema, Units: resultsUnits, Rows: b.rows(), Syscalls: b.syscallRows(), Run: runMeta{
		Started: b.started.UTC(), TookS: time.Since(b.started).Round(time.Second).Seconds(), Command: o.commandLine,
		Commit: b.info.Commit, Go: b.info.GoVersion, Kernel: b.info.Kernel, CPU: b.info.CPU, CPUs: b.info.CPUs,
		CPUSplit: b.split.String(), LoadStart: b.loadStart, LoadEnd: b.loadEnd, Interrupted: b.interrupted, TieThreshold: b.tie,
		Options: runOptions{Repeat: o.repeat, DurationS: o.duration.Seconds(), OpenS: o.openDuration.Seconds(), Concurrency: o.concurrency,
			Workers: o.workers, Threads: o.threads, Pool: o.pool, Driver: o.driver, Nice: o.nice, Quick: o.quick, ServerFlags: o.serverFlags},
	}}
}

// writeResults writes results.json and results.csv next to the report.
func (b *bench) writeResults() error {
	data := b.resultsData()
	js, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.outDir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: write results: %w", err)
	}
	f, err := os.Create(filepath.Join(b.outDir, "results.csv"))
	if err != nil {
		return fmt.Errorf("bench: write results: %w", err)
	}
	records := [][]string{csvHeader}
	for _, r := range data.Rows {
		records = append(records, csvRecord(r))
	}
	if err := csv.NewWriter(f).WriteAll(records); err != nil {
		f.Close()
		return fmt.Errorf("bench: write results.csv: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: write results.csv: %w", err)
	}
	return nil
}

// csvHeader is the CSV's columns: the JSON row's fields without the
// histogram, plus the schema on every line so a lone CSV says its format.
var csvHeader = []string{"schema", "workload", "config", "peer", "mode", "status", "concurrency", "rounds",
	"rps", "rps_min", "rps_max", "req_per_cpu_s", "req_per_cpu_s_min", "req_per_cpu_s_max",
	"p50_us", "p90_us", "p99_us", "p999_us", "max_us", "requests", "errors",
	"server_cpu_s", "others_cpu_s", "elapsed_s", "kib_per_conn", "kib_per_conn_min", "kib_per_conn_max", "open_conns", "attempted", "hups", "lost", "reason"}

func csvRecord(r row) []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return []string{resultsSchema, r.Workload, r.Config, strconv.FormatBool(r.Peer), r.Mode, r.Status,
		strconv.Itoa(r.Concurrency), strconv.Itoa(r.Rounds), f(r.RPS), f(r.RPSMin), f(r.RPSMax),
		f(r.ReqPerCPU), f(r.ReqPerCPUMin), f(r.ReqPerCPUMax), f(r.P50), f(r.P90), f(r.P99), f(r.P999), f(r.Max),
		strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.Errors, 10), f(r.ServerCPU), f(r.OthersCPU), f(r.Elapsed),
		f(r.KiBPerConn), f(r.KiBMin), f(r.KiBMax), strconv.Itoa(r.OpenConns), strconv.Itoa(r.Attempted), strconv.Itoa(r.HUPs), strconv.FormatInt(r.Lost, 10), r.Reason}
}

// readResults loads a results.json, or the one in a directory.
func readResults(path string) (resultsFile, error) {
	var rf resultsFile
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "results.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return rf, fmt.Errorf("bench: %w", err)
	}
	if err := json.Unmarshal(data, &rf); err != nil {
		return rf, fmt.Errorf("bench: %s: %w", path, err)
	}
	if rf.Schema != resultsSchema {
		return rf, fmt.Errorf("bench: %s: schema %q, this bench reads %q", path, rf.Schema, resultsSchema)
	}
	return rf, nil
}
