package h1

// ConnObserver is told what the connections of a Server are doing, so the
// worker can report connections open and the reading state (the worker's
// scoreboard slot implements it). It is called on the hot path, from every
// connection's goroutine or loop: implementations must be cheap (an atomic
// add) and safe for concurrent use.
//
// Each connection calls ConnOpened once, then ReadingStarted and
// ReadingDone in pairs, then ConnClosed once (preceded by ReadingDone when
// it closes mid-head). Reading runs from the first byte of a request head
// to its end; a connection open and not reading is waiting for a request
// (fresh or kept alive) or has one in its handler.
type ConnObserver interface {
	ConnOpened()
	ConnClosed()
	ReadingStarted()
	ReadingDone()
}

// Reading states of a blocking Conn, for its observer.
const (
	obsWaiting int32 = iota // open, not mid-head
	obsReading              // a request head is arriving
	obsClosed               // reported closed: nothing more is reported
)

// observeReading reports the connection starting (on) or finishing a head.
// A CAS, not a plain field: Close may run on another goroutine.
func (c *Conn) observeReading(on bool) {
	o := c.srv.Observer
	if o == nil {
		return
	}
	from, to := obsWaiting, obsReading
	if !on {
		from, to = obsReading, obsWaiting
	}
	if !c.obs.CompareAndSwap(from, to) {
		return
	}
	if on {
		o.ReadingStarted()
	} else {
		o.ReadingDone()
	}
}

// observeClosed reports the close, once.
func (c *Conn) observeClosed() {
	o := c.srv.Observer
	if o == nil {
		return
	}
	switch c.obs.Swap(obsClosed) {
	case obsReading:
		o.ReadingDone()
		o.ConnClosed()
	case obsWaiting:
		o.ConnClosed()
	}
}
