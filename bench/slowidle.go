package main

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// slowStats counts what the slow clients went through.
type slowStats struct {
	Clients   int   `json:"clients"`
	Connected int64 `json:"connected"` // connections established (incl. reconnects)
	Refused   int64 `json:"refused"`   // dials that failed
	Kicked    int64 `json:"kicked"`    // connections the server closed before the request was complete
	OpenAtEnd int64 `json:"open_at_end"`
}

// slowRequest is sent one byte per second: about 40 s for the whole head
// at path /, longer than any sane header timeout, so the server must either
// hold the connection cheaply or cut it.
func slowRequest(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: slow\r\n\r\n"
}

// slowClients keeps k connections dribbling slowRequest until ctx ends; a
// connection the server closes is counted and replaced. Call the returned
// function to stop them and get the counts.
func slowClients(ctx context.Context, addr, path string, k int) func() slowStats {
	ctx, cancel := context.WithCancel(ctx)
	st := slowStats{Clients: k}
	var open atomic.Int64
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Stagger the clients over the first second so their bytes do
			// not arrive in one burst per second.
			delay := time.Duration(i) * time.Second / time.Duration(k)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				slowConn(ctx, addr, slowRequest(path), &st, &open)
			}
		}()
	}
	return func() slowStats {
		st.OpenAtEnd = open.Load()
		cancel()
		wg.Wait()
		return st
	}
}

// slowConn runs one slow connection until the server closes it or ctx ends.
func slowConn(ctx context.Context, addr, slowRequest string, st *slowStats, open *atomic.Int64) {
	conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() == nil {
			atomic.AddInt64(&st.Refused, 1)
			sleepCtx(ctx, 100*time.Millisecond+rand.N(100*time.Millisecond)) // do not spin on a full backlog
		}
		return
	}
	atomic.AddInt64(&st.Connected, 1)
	open.Add(1)
	defer open.Add(-1)
	closed := make(chan struct{})
	go func() { // any read result means the server answered or hung up
		_, _ = conn.Read(make([]byte, 1))
		close(closed)
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; i < len(slowRequest); i++ {
		if _, err := conn.Write([]byte{slowRequest[i]}); err != nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-closed:
			atomic.AddInt64(&st.Kicked, 1)
			return
		case <-tick.C:
		}
	}
	select { // whole request sent: wait for the answer or the end
	case <-ctx.Done():
	case <-closed:
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// idleResult is the memory cost of idle keep-alive connections.
type idleResult struct {
	Conns       int     `json:"conns"`       // connections attempted
	Opened      int     `json:"opened"`      // got their response
	OpenAtEnd   int     `json:"open_at_end"` // still open (not closed by the server) at measurement time
	Failed      int     `json:"failed"`
	Closed      int     `json:"closed"` // closed by the server right after its response
	RSSBefore   int64   `json:"rss_before_kb"`
	RSSAfter    int64   `json:"rss_after_kb"`
	PerConnKB   float64 `json:"per_conn_kb"`                 // (after-before)/open_at_end; 0 when none stayed open
	PerConnSpan *span   `json:"per_conn_kb_range,omitempty"` // min–max across rounds (--repeat)
}

// idleConns opens n keep-alive connections, each making one request to
// path, and returns them still open. It stops early when ctx ends.
// closed counts those the server closed right after answering (sync).
func idleConns(ctx context.Context, addr, path string, n int) (conns []net.Conn, failed, closed int) {
	const dialers = 64
	var mu sync.Mutex
	next := make(chan struct{})
	var wg sync.WaitGroup
	for range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := idleOne(ctx, addr, path)
				mu.Lock()
				switch {
				case errors.Is(err, errClosedByServer):
					closed++
				case err != nil:
					failed++
				default:
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return conns, failed, closed
}

func idleOne(ctx context.Context, addr, path string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	keep, err := roundTrip(c, bufio.NewReader(c), request{path: path}, false, time.Now().Add(10*time.Second))
	if err != nil {
		c.Close()
		return nil, err
	}
	if !keep { // the server closes after each response (sync): nothing stays open
		c.Close()
		return nil, errClosedByServer
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

var errClosedByServer = errors.New("bench: server closed the connection after the response")

// stillOpen counts connections the server has not closed, without
// waiting: a non-blocking peek that would block means open and idle.
func stillOpen(conns []net.Conn) int {
	n := 0
	buf := make([]byte, 1)
	for _, c := range conns {
		tc, ok := c.(*net.TCPConn)
		if !ok {
			continue
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			continue
		}
		idle := false
		_ = rc.Read(func(fd uintptr) bool {
			_, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
			idle = err == unix.EAGAIN
			return true // never wait
		})
		if idle {
			n++
		}
	}
	return n
}
