package h1

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// CountObserver counts with atomic adds, as the scoreboard slot does
// (exported for the external tests: TestObserver).
type CountObserver struct{ Open, Reading atomic.Int64 }

func (o *CountObserver) ConnOpened()     { o.Open.Add(1) }
func (o *CountObserver) ConnClosed()     { o.Open.Add(-1) }
func (o *CountObserver) ReadingStarted() { o.Reading.Add(1) }
func (o *CountObserver) ReadingDone()    { o.Reading.Add(-1) }

// BenchmarkServeObserved is BenchmarkServeKeepAlive with and without a
// ConnObserver: the cost of reporting reading per request.
func BenchmarkServeObserved(b *testing.B) {
	for _, name := range []string{"none", "observer"} {
		b.Run(name, func(b *testing.B) {
			srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "Hello, World!")
			})}
			if name == "observer" {
				srv.Observer = &CountObserver{}
			}
			b.ReportAllocs()
			b.ResetTimer()
			lc := &loopConn{req: []byte(browserRequest), left: b.N}
			srv.NewConn(lc).Serve(context.Background(), false)
		})
	}
}
