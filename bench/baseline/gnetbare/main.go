// Command gnetbare is the benchmark baseline for the evloop worker class: a
// bare gnet v2 server that answers every complete request head in its input
// with a fixed 13-byte "Hello, World!" response. It parses nothing beyond
// finding "\r\n\r\n", so it bounds what any HTTP server on gnet can reach;
// evloop's cost over it is the HTTP engine plus multiserve's bookkeeping.
//
// Usage: gnetbare -addr 127.0.0.1:8080 -loops 1
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

var (
	headEnd = []byte("\r\n\r\n")
	// wrk and curl spell the header this way; matching two spellings keeps
	// the hot path free of allocations (no lowering of the whole head).
	closeHdr  = []byte("\r\nConnection: close")
	closeHdrL = []byte("\r\nconnection: close")
	keepReply = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!")
	closReply = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!")
)

type server struct {
	gnet.BuiltinEventEngine
	eng gnet.Engine
}

func (s *server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	return gnet.None
}

// OnTraffic answers every complete request head buffered so far (pipelining)
// and leaves an incomplete one in gnet's inbound buffer for the next event.
func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	used := 0
	for {
		i := bytes.Index(buf[used:], headEnd)
		if i < 0 {
			break
		}
		head := buf[used : used+i]
		used += i + len(headEnd)
		if bytes.Contains(head, closeHdr) || bytes.Contains(head, closeHdrL) {
			_, _ = c.Write(closReply)
			_, _ = c.Discard(used)
			return gnet.Close
		}
		_, _ = c.Write(keepReply)
	}
	_, _ = c.Discard(used)
	return gnet.None
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	loops := flag.Int("loops", 0, "event loops (0: one per CPU)")
	reuse := flag.Bool("reuseport", false, "SO_REUSEPORT listener per loop")
	flag.Parse()

	srv := &server{}
	done := make(chan error, 1)
	go func() {
		done <- gnet.Run(srv, "tcp://"+*addr,
			gnet.WithMulticore(true), gnet.WithNumEventLoop(*loops), gnet.WithReusePort(*reuse))
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintln(os.Stderr, "gnetbare:", err)
			os.Exit(1)
		}
	case <-sig:
		_ = srv.eng.Stop(context.Background())
		<-done
	}
}
