package h1

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Lingering close (nginx's lingering_close): a server that closes a socket
// while input it has not read is waiting makes the kernel answer with a
// reset, and a reset can destroy a response its client has not read yet.
// So a connection the server ends while its client may still be sending
// (its wait for a next request ended, or a body or pipelined request is
// left unread) is closed in three steps: shut the write side (the client reads
// the end of the responses, then EOF), read and discard whatever still
// arrives until the client's own EOF or LingerTime, then close.
const (
	LingerTime = 2 * time.Second
	// MaxLingering bounds the connections lingering at once;
	// beyond it one is closed at once, as without lingering.
	MaxLingering = 256
)

// lingering tracks the process's lingering connections (one worker
// process serves one Server per class).
var lingering struct {
	n  atomic.Int32
	wg sync.WaitGroup
}

// linger closes nc the lingering way, in the background; connections that
// cannot half-close (TLS) are closed at once.
func linger(nc net.Conn) error {
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok {
		return nc.Close()
	}
	if lingering.n.Add(1) > MaxLingering || cw.CloseWrite() != nil {
		lingering.n.Add(-1)
		return nc.Close()
	}
	lingering.wg.Add(1)
	go func() {
		defer lingering.wg.Done()
		defer lingering.n.Add(-1)
		discardInput(nc, LingerTime)
		_ = nc.Close()
	}()
	return nil
}

// discardInput reads and drops what arrives on nc until EOF, an error or d.
func discardInput(nc net.Conn, d time.Duration) {
	_ = nc.SetReadDeadline(time.Now().Add(d))
	var buf [512]byte
	for {
		if _, err := nc.Read(buf[:]); err != nil {
			return
		}
	}
}

// WaitLingering waits until every connection closed the lingering way is
// closed (each within LingerTime). A worker calls it before it exits:
// exiting closes them with their input unread.
func WaitLingering() { lingering.wg.Wait() }

// CloseLingering closes the connection without throwing away what its
// client already sent (see LingerTime): what a class calls to end an idle
// connection it parked. Safe to call from another goroutine, like Close.
func (c *Conn) CloseLingering() error { return c.close(linger) }

// readWaiting reads, without waiting, a request that arrived as an idle
// wait timed out (a read fails once its deadline passed, even with input
// waiting). Only on netpoller sockets; 0 when nothing is there.
func (c *Conn) readWaiting() int {
	if c.rc == nil {
		return 0
	}
	c.rawN, c.rawErr = 0, nil
	err := c.rc.Control(func(fd uintptr) { c.rawReadOnce(fd) })
	if err != nil || c.rawErr != nil || c.rawN <= 0 {
		return 0
	}
	c.r, c.w = 0, c.rawN
	return c.rawN
}
