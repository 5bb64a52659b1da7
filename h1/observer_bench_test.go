package h1

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// atomicObserver costs what the scoreboard slot costs: an atomic add.
type atomicObserver struct{ open, reading atomic.Int64 }

func (o *atomicObserver) ConnOpened()     { o.open.Add(1) }
func (o *atomicObserver) ConnClosed()     { o.open.Add(-1) }
func (o *atomicObserver) ReadingStarted() { o.reading.Add(1) }
func (o *atomicObserver) ReadingDone()    { o.reading.Add(-1) }

// BenchmarkServeObserved is BenchmarkServeKeepAlive with and without a
// ConnObserver: the cost of reporting reading per request.
func BenchmarkServeObserved(b *testing.B) {
	for _, name := range []string{"none", "observer"} {
		b.Run(name, func(b *testing.B) {
			srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "Hello, World!")
			})}
			if name == "observer" {
				srv.Observer = &atomicObserver{}
			}
			b.ReportAllocs()
			b.ResetTimer()
			lc := &loopConn{req: []byte(browserRequest), left: b.N}
			srv.NewConn(lc).Serve(context.Background(), false)
		})
	}
}
