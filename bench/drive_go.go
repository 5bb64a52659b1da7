package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// goDriver is the closed-loop fallback when wrk is missing: concurrency
// goroutines, each with its own connection, sending the next request as
// soon as the previous answer is read. It runs in the runner, which is
// pinned to the load CPUs.
type goDriver struct{}

func (goDriver) name() string { return "go" }

func (goDriver) run(ctx context.Context, s loadSpec) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.duration)
	defer cancel()
	type worker struct {
		lat    []time.Duration
		errors int64
	}
	ws := make([]worker, s.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws[i].lat, ws[i].errors = closedLoop(ctx, s, i)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	var r loadResult
	for _, w := range ws {
		all = append(all, w.lat...)
		r.Errors += w.errors
	}
	r.Requests = int64(len(all))
	r.Elapsed = elapsed
	r.RPS = float64(r.Requests) / elapsed.Seconds()
	r.setDist(distribution(all))
	return r, nil
}

// closedLoop is one virtual user: it keeps one connection (a new one per
// request with close) and returns the latencies of successful requests.
func closedLoop(ctx context.Context, s loadSpec, id int) ([]time.Duration, int64) {
	var lat []time.Duration
	var errs int64
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	end, _ := ctx.Deadline() // run() always sets one
	// The clock, not just ctx, ends the loop: ctx's timer fires a little
	// after its deadline, and failures past the end are not errors.
	live := func() bool { return ctx.Err() == nil && time.Now().Before(end) }
	for n := id; live(); n++ {
		if conn == nil {
			c, err := (&net.Dialer{Timeout: s.timeout}).DialContext(ctx, "tcp", s.addr)
			if err != nil {
				if live() {
					errs++
					sleepCtx(ctx, 10*time.Millisecond) // do not spin on a refusing server
				}
				continue
			}
			conn, br = c, bufio.NewReader(c)
		}
		t0 := time.Now()
		dl := t0.Add(s.timeout)
		if end.Before(dl) {
			dl = end // a request cut by the end of the run is not an error
		}
		keep, err := roundTrip(conn, br, s.request(n), s.close, dl)
		if err != nil {
			if live() {
				errs++
			}
			conn.Close()
			conn = nil
			continue
		}
		lat = append(lat, time.Since(t0))
		if !keep {
			conn.Close()
			conn = nil
		}
	}
	return lat, errs
}

// request is one request to send: a GET of a path unless method is set.
type request struct {
	method, path string
	body         []byte
}

// request is the spec's n-th request (paths in turn).
func (s loadSpec) request(n int) request {
	return request{method: s.method, path: s.paths[n%len(s.paths)], body: s.body}
}

// wire renders the request as HTTP/1.1 bytes.
func (r request) wire(close bool) string {
	method := r.method
	if method == "" {
		method = "GET"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: bench\r\n", method, r.path)
	if close {
		b.WriteString("Connection: close\r\n")
	}
	if len(r.body) > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("\r\n")
	b.Write(r.body)
	return b.String()
}

// roundTrip writes one request and reads its response; keep says whether
// the connection may carry another request.
func roundTrip(conn net.Conn, br *bufio.Reader, req request, close bool, deadline time.Time) (keep bool, err error) {
	_ = conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, req.wire(close)); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	if resp.StatusCode >= 400 {
		return !resp.Close, fmt.Errorf("status %d", resp.StatusCode)
	}
	return !resp.Close && !close, nil
}

// distribution returns the latency at each of distPcts (sorts d in place).
func distribution(d []time.Duration) []pct {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	out := make([]pct, len(distPcts))
	for i, p := range distPcts {
		out[i] = pct{P: p, D: d[min(len(d)-1, int(p/100*float64(len(d))))]}
	}
	return out
}
