package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// loadSpec is one closed-loop measurement to make.
type loadSpec struct {
	addr        string
	paths       []string
	method      string // "" is GET
	body        []byte // sent with every request (with Content-Length)
	close       bool
	concurrency int
	duration    time.Duration
	timeout     time.Duration // a request slower than this counts as an error
}

// loadResult is what a closed-loop driver measured.
type loadResult struct {
	Requests int64 `json:"requests"` // completed requests (any status)
	Errors   int64 `json:"errors"`   // socket errors, timeouts, non-2xx/3xx
	// Of Errors: connections closed under an unanswered request, and
	// error statuses (wrk only; the Go driver does not tell them apart).
	ReadErrors int64         `json:"read_errors"`
	Non2xx     int64         `json:"non_2xx"`
	Elapsed    time.Duration `json:"elapsed"`
	RPS        float64       `json:"rps"`
	P50        time.Duration `json:"p50"`
	P90        time.Duration `json:"p90"`
	P99        time.Duration `json:"p99"`
	P999       time.Duration `json:"p999"`
	Max        time.Duration `json:"max"`
	Dist       []pct         `json:"dist,omitempty"` // latency at each of distPcts
}

// pct is one point of a latency distribution.
type pct struct {
	P float64       `json:"p"` // percentile, 0-100
	D time.Duration `json:"d"`
}

// distPcts are the percentiles every driver records: the latency
// histogram of the results file, in cumulative form.
var distPcts = []float64{10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100}

// setDist records a distribution and the named percentiles from it.
func (r *loadResult) setDist(d []pct) {
	r.Dist = d
	for _, p := range d {
		switch p.P {
		case 50:
			r.P50 = p.D
		case 90:
			r.P90 = p.D
		case 99:
			r.P99 = p.D
		case 99.9:
			r.P999 = p.D
		case 100:
			r.Max = p.D
		}
	}
}

// wrkDriver drives load with wrk, pinned to the load CPUs.
type wrkDriver struct {
	bin     string
	cpus    cpuList
	threads int
	tmp     string
}

func (d *wrkDriver) name() string { return "wrk" }

func (d *wrkDriver) run(ctx context.Context, s loadSpec) (loadResult, error) {
	secs := max(1, int(math.Ceil(s.duration.Seconds()))) // wrk takes whole seconds
	threads := min(d.threads, s.concurrency)
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(s.concurrency),
		"-d", fmt.Sprintf("%ds", secs), "--timeout", fmt.Sprintf("%ds", max(1, int(s.timeout.Seconds()))), "--latency"}
	if s.close {
		args = append(args, "-H", "Connection: close")
	}
	url := "http://" + s.addr + s.paths[0]
	if len(s.paths) > 1 || s.method != "" || len(s.body) > 0 {
		url = "http://" + s.addr + "/"
	}
	script, err := d.script(s)
	if err != nil {
		return loadResult{}, err
	}
	args = append(args, "-s", script, url)

	cmd := exec.Command(d.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = childAttr()
	done, err := startPinned(d.cpus, cmd)
	if err != nil {
		return loadResult{}, fmt.Errorf("bench: start wrk: %w", err)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return loadResult{}, ctx.Err()
	case <-time.After(time.Duration(secs)*time.Second + s.timeout + 30*time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return loadResult{}, fmt.Errorf("bench: wrk did not finish")
	}
	if err != nil {
		return loadResult{}, fmt.Errorf("bench: wrk: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return parseWrk(out.String())
}

// script writes the wrk Lua script: a request function that cycles
// through the paths with the spec's method and body (when there is more
// than one GET path), and a done function that prints distPcts.
func (d *wrkDriver) script(s loadSpec) (string, error) {
	var b strings.Builder
	b.WriteString("done = function(summary, latency, requests)\n  for _, p in ipairs({")
	for i, p := range distPcts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, p)
	}
	// percentile(100) is 0 in wrk's histogram; the maximum is latency.max.
	b.WriteString("}) do\n    local v = p == 100 and latency.max or latency:percentile(p)\n    io.write(string.format(\"BENCHPCT %g %d\\n\", p, v))\n  end\nend\n")
	if len(s.paths) > 1 || s.method != "" || len(s.body) > 0 {
		requestFunc(&b, s)
	}
	path := filepath.Join(d.tmp, "wrk.lua")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("bench: write wrk script: %w", err)
	}
	return path, nil
}

// requestFunc writes a wrk request function cycling through the paths.
func requestFunc(b *strings.Builder, s loadSpec) {
	b.WriteString("local paths = {")
	for i, p := range s.paths {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(luaQuote(p))
	}
	method := "nil"
	if s.method != "" {
		method = luaQuote(s.method)
	}
	body := "nil"
	if len(s.body) > 0 {
		body = luaQuote(string(s.body))
	}
	fmt.Fprintf(b, "}\nlocal i = 0\nrequest = function()\n  i = i %% #paths + 1\n  return wrk.format(%s, paths[i], nil, %s)\nend\n", method, body)
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([\d.]+\w+)`)
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|90|99)(?:\.0+)?%\s+([\d.]+\w+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+Latency\s+\S+\s+\S+\s+(\S+)`)
	wrkSock    = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkDist    = regexp.MustCompile(`(?m)^BENCHPCT ([\d.]+) (\d+)$`)
)

// parseWrk reads wrk's text report (with --latency).
func parseWrk(out string) (loadResult, error) {
	var r loadResult
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("bench: wrk output has no request count: %q", lastLines(out, 3))
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Elapsed, _ = parseWrkDuration(m[2])
	if m := wrkRPS.FindStringSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	}
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		d, _ := parseWrkDuration(m[2])
		switch m[1] {
		case "50":
			r.P50 = d
		case "90":
			r.P90 = d
		default:
			r.P99 = d
		}
	}
	if m := wrkLatency.FindStringSubmatch(out); m != nil {
		r.Max, _ = parseWrkDuration(m[1])
	}
	if m := wrkSock.FindStringSubmatch(out); m != nil {
		for i, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
			if i == 1 {
				r.ReadErrors = n
			}
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		r.Errors += r.Non2xx
	}
	var dist []pct
	for _, m := range wrkDist.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.ParseFloat(m[1], 64)
		us, _ := strconv.ParseInt(m[2], 10, 64)
		dist = append(dist, pct{P: p, D: time.Duration(us) * time.Microsecond})
	}
	if len(dist) > 0 && r.Requests > 0 {
		r.setDist(dist)
	}
	return r, nil
}

// parseWrkDuration reads wrk's "625.00us", "1.23ms", "2.00s", "1.00m", "1.00h".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: wrk duration %q: %w", s, err)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("bench: wrk duration %q: unknown unit", s)
}

// luaQuote renders s as a Lua string literal: every byte outside printable
// ASCII, and the quote and backslash, as a decimal escape.
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			fmt.Fprintf(&b, "\\%03d", c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
