package goroutine_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"

	_ "github.com/multiserve/multiserve/workers/goroutine"
	"github.com/multiserve/multiserve/workers/workerstest"
)

func TestConformance(t *testing.T) {
	workerstest.Run(t, "goroutine", workerstest.Options{})
}

func TestH1Probe(t *testing.T) {
	in := workerstest.Start(t, "goroutine", workerstest.Options{})
	workerstest.H1Probe(t, in.Addr, false)
	workerstest.H1Probe(t, in.Addr, true)
}

// TestNativeWorkerConnections: with worker_connections=2 and two kept-alive
// connections open, a third waits (in the backlog) until one closes.
func TestNativeWorkerConnections(t *testing.T) {
	in := workerstest.Start(t, "goroutine", workerstest.Options{Config: func(c *config.Config) { c.WorkerConnections = 2 }})
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", in.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(c net.Conn, br *bufio.Reader, wait time.Duration) error {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	c1, br1 := dial()
	c2, br2 := dial()
	for _, c := range []struct {
		c  net.Conn
		br *bufio.Reader
	}{{c1, br1}, {c2, br2}} {
		if err := get(c.c, c.br, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	c3, br3 := dial()
	c3.SetDeadline(time.Now().Add(300 * time.Millisecond))
	io.WriteString(c3, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
	if _, err := br3.ReadByte(); err == nil {
		t.Fatal("a third connection was served past worker_connections=2")
	}
	c1.Close()
	c3.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br3, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("third connection after a slot freed: %v", err)
	}
}
