package workerstest_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/workers"
	"github.com/multiserve/multiserve/workers/workerstest"
)

// miniClass is the smallest class the suite accepts: one goroutine per
// connection on the h1 engine. It checks the suite itself; the real classes
// run the suite from their own packages.
type miniClass struct{}

func (miniClass) Serve(ctx context.Context, env *workers.Env) error {
	ln, err := env.Listeners[0].NetListener()
	if err != nil {
		return err
	}
	srv := &h1.Server{Handler: env.Handler, Config: env.Config, Log: env.Log}
	var wg sync.WaitGroup
	stopBeat := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				env.Beat()
			case <-stopBeat:
				return
			}
		}
	}()
	context.AfterFunc(ctx, func() { ln.Close() })
	env.Ready()
	for {
		nc, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func(nc net.Conn) {
			defer wg.Done()
			srv.NewConn(nc).Serve(ctx, false)
		}(nc)
	}
	wg.Wait()
	close(stopBeat)
	return nil
}

func init() {
	workers.Register(workers.Class{Name: "workerstest-mini", Summary: "suite self-test", New: func() workers.Worker { return miniClass{} }})
}

func TestSuiteOnMiniClass(t *testing.T) {
	workerstest.Run(t, "workerstest-mini", workerstest.Options{})
}

// The h1probe run against a class lives in workers/goroutine (TestH1Probe),
// on the real class built on the engine.
