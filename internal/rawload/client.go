// Package rawload is a test load client that retries nothing. It speaks
// HTTP/1.1 over raw connections, one request in flight per connection, so
// that a request the server drops shows up as lost: net/http's Transport
// silently resends an idempotent request when a reused connection turns
// out closed, which would hide exactly the failures the tests look for.
//
// Client sends one request at a time and reports each outcome; Load runs
// many clients until stopped and counts what was served and what was lost.
package rawload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is one request's outcome.
type Result struct {
	Start, End time.Time
	Method     string
	Status     int   // 0 when no complete response head arrived
	Pid        int   // X-Worker-Pid of the response (of the connection's last one on failure); 0 unknown
	Err        error // nil only for a complete response (any status)
	Reused     bool  // the connection had carried a response before
	Got        int64 // response bytes read
	DialErr    bool  // the connection could not be opened: nothing was sent
	Close      bool  // the response closed the connection
}

// Lost reports whether a request was sent and no complete response came
// back.
func (r Result) Lost() bool { return r.Err != nil && !r.DialErr }

// Reset reports whether the failure was a connection reset (RST).
func (r Result) Reset() bool { return errors.Is(r.Err, syscall.ECONNRESET) }

// Client sends requests one at a time over one connection at a time.
type Client struct {
	Addr      string        // host:port, or a unix socket path (starting with /)
	KeepAlive bool          // false: every request says Connection: close
	Timeout   time.Duration // per request; 0 means 20 s
	Host      string        // Host header; default "rawload"

	c *conn
}

type conn struct {
	nc     net.Conn
	cr     *countReader
	br     *bufio.Reader
	pid    int
	served int
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Close closes the client's connection, if any.
func (cl *Client) Close() {
	if cl.c != nil {
		_ = cl.c.nc.Close()
		cl.c = nil
	}
}

func (cl *Client) dial() error {
	network := "tcp"
	if strings.HasPrefix(cl.Addr, "/") {
		network = "unix"
	}
	nc, err := net.DialTimeout(network, cl.Addr, cl.timeout())
	if err != nil {
		return err
	}
	cr := &countReader{r: nc}
	cl.c = &conn{nc: nc, cr: cr, br: bufio.NewReader(cr)}
	return nil
}

func (cl *Client) timeout() time.Duration {
	if cl.Timeout > 0 {
		return cl.Timeout
	}
	return 20 * time.Second
}

// Get sends a GET and reads the whole response.
func (cl *Client) Get(path string) Result { return cl.Do(http.MethodGet, path, nil) }

// Do sends one request (a body is sent with Content-Length) and reads the
// whole response. The connection is kept for the next request when
// KeepAlive is set and the response did not close it; any failure closes
// it.
func (cl *Client) Do(method, path string, body []byte) Result {
	res := Result{Start: time.Now(), Method: method}
	if cl.c == nil {
		if err := cl.dial(); err != nil {
			res.Err, res.DialErr, res.End = err, true, time.Now()
			return res
		}
	}
	c := cl.c
	res.Reused, res.Pid = c.served > 0, c.pid
	c.cr.n = 0
	_ = c.nc.SetDeadline(res.Start.Add(cl.timeout()))
	fail := func(err error) Result {
		res.Err, res.Got, res.End = err, c.cr.n, time.Now()
		cl.Close()
		return res
	}
	if _, err := c.nc.Write(cl.request(method, path, body)); err != nil {
		return fail(fmt.Errorf("write request: %w", err))
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return fail(fmt.Errorf("read response head: %w", err))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	res.Status = resp.StatusCode
	if err != nil {
		return fail(fmt.Errorf("read response body (status %d): %w", resp.StatusCode, err))
	}
	if p, _ := strconv.Atoi(resp.Header.Get("X-Worker-Pid")); p > 0 {
		res.Pid, c.pid = p, p
	}
	c.served++
	res.Got, res.End, res.Close = c.cr.n, time.Now(), resp.Close
	if !cl.KeepAlive || resp.Close {
		cl.Close()
	}
	return res
}

func (cl *Client) request(method, path string, body []byte) []byte {
	host := cl.Host
	if host == "" {
		host = "rawload"
	}
	b := make([]byte, 0, 128+len(body))
	b = fmt.Appendf(b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host)
	if !cl.KeepAlive {
		b = append(b, "Connection: close\r\n"...)
	}
	if body != nil || method == http.MethodPost || method == http.MethodPut {
		b = fmt.Appendf(b, "Content-Length: %d\r\n", len(body))
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// ErrKind names a failure without addresses, for counting.
func ErrKind(r Result) string {
	err := r.Err
	var ne net.Error
	switch {
	case err == nil && r.Status/100 == 2:
		return "ok"
	case err == nil:
		return "status " + strconv.Itoa(r.Status)
	case r.DialErr && errors.Is(err, syscall.ECONNREFUSED):
		return "dial: connection refused"
	case r.DialErr && errors.Is(err, syscall.ENOENT):
		return "dial: no such file"
	case r.DialErr:
		return "dial: " + short(err)
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("reset (after %d bytes)", r.Got)
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("eof (after %d bytes)", r.Got)
	}
	return short(err)
}

func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}
