package evloop

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/multiserve/multiserve/workers"
)

// startRegistered starts the Engine.Register fallback: a Go accept loop for
// every listener whose fd swap failed. Engine.Register needs running loops,
// so this waits for the first OnTick.
func (s *server) startRegistered() {
	for i, slot := range s.slots {
		if slot >= 0 {
			continue
		}
		l := s.env.Listeners[i]
		ln, err := l.NetListener()
		if err != nil {
			s.log.Error("evloop: listener unusable", "listener", l.Name, "err", err)
			continue
		}
		s.regLns = append(s.regLns, ln)
		s.regWG.Add(1)
		go s.acceptLoop(ln)
	}
}

// acceptLoop hands each Go-accepted connection to gnet. gnet dups the fd
// and closes nc itself once Register succeeded; on error nc is still ours.
func (s *server) acceptLoop(ln net.Listener) {
	defer s.regWG.Done()
	var backoff workers.Backoff
	for {
		nc, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// EMFILE and friends: back off (do not spin), log at the
			// shared rate; keep accepting whatever the error.
			backoff.Sleep(s.log, ln.Addr().String(), err)
			continue
		}
		s.regMu.Lock()
		var res <-chan gnet.RegisteredResult
		res, err = s.eng.Register(gnet.NewNetConnContext(context.Background(), nc))
		if err == nil {
			s.regPending = append(dropDone(s.regPending), res)
		}
		s.regMu.Unlock()
		if err != nil {
			_ = nc.Close()
			if s.draining.Load() {
				return
			}
		}
	}
}

// dropDone drops the leading results that have arrived (a registration
// reached OnOpen or failed), keeping the list as short as the hand-overs
// in flight.
func dropDone(pending []<-chan gnet.RegisteredResult) []<-chan gnet.RegisteredResult {
	for len(pending) > 0 {
		select {
		case <-pending[0]:
			pending = pending[1:]
		default:
			return pending
		}
	}
	return pending
}

// awaitRegistered waits, until deadline, for the connections the accept
// loops handed to Engine.Register to reach OnOpen: Register completes on a
// goroutine of gnet's, so a connection accepted just before the stop is
// not yet counted, and stopping on a zero count would close it unanswered.
// Call it after stopRegistered (no more hand-overs).
func (s *server) awaitRegistered(deadline time.Time) {
	s.regMu.Lock()
	pending := s.regPending
	s.regPending = nil
	s.regMu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for _, res := range pending {
		select {
		case <-res:
		case <-t.C:
			return // a stuck loop: the graceful timeout decides
		}
	}
}

func (s *server) stopRegistered() {
	for _, ln := range s.regLns {
		_ = ln.Close()
	}
	s.regWG.Wait()
}

// stopAccepting stops gnet accepting: every listener slot is parked and
// the Register fallback's listeners (dups) are closed, so only the
// inherited fds still refer to the sockets. A shared socket stays open for
// the arbiter and sibling workers (the inherited fd keeps it). The runtime
// is then told it may close this worker's own reuse_port sockets
// (Env.ListenersDone), which it already gated and drained before ctx was
// cancelled, so that they leave the kernel's SO_REUSEPORT group now: an
// open one would keep getting connections nobody accepts.
func (s *server) stopAccepting() {
	s.stopRegistered()
	for _, slot := range s.slots {
		if slot < 0 {
			continue
		}
		if err := park(slot); err != nil {
			s.log.Error("evloop: stop accepting", "err", err)
		}
	}
	s.env.DoneListening()
}

// stop is the graceful stop: stop accepting, let in-flight requests finish
// and answer those that arrive on idle connections within
// retire_idle_timeout (their responses carry Connection: close), close
// the connections that stayed idle (see expired), then stop gnet, all
// within graceful_timeout.
func (s *server) stop(done <-chan error) error {
	deadline := time.Now().Add(s.cfg.GracefulTimeout)
	s.retireAt.Store(time.Now().UnixNano())
	s.draining.Store(true)
	s.stopAccepting()
	s.settleAccepted(deadline)
	for _, ls := range s.loopList() {
		s.postSweep(ls) // apply the stop to idle connections now, not at the next tick
	}
	if s.conns.Load() > 0 {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-s.drained:
		case <-t.C:
			s.log.Warn("evloop: graceful timeout, closing remaining connections", "open", s.conns.Load())
		}
		t.Stop()
	}
	return s.stopEngine(done, deadline)
}

// acceptSettle is how long stop lets gnet's acceptor finish the accept4 it
// may have been in when the listeners were parked.
const acceptSettle = 5 * time.Millisecond

// settleAccepted waits until the connections gnet accepted before the
// listeners were parked have been opened (OnOpen counted them): gnet
// accepts on its main reactor and hands each connection to a loop through
// the loop's task queue, so a connection can be accepted but not yet
// counted. Stopping on a zero count then closed it unanswered (a reset,
// its request unread) instead of giving it the first request's grace. A
// task posted to each loop after the accepts runs after their hand-overs
// (the queue is FIFO). Loops that never had a connection are not known
// here; they are covered only by acceptSettle. Connections from the accept
// loops are awaited first (awaitRegistered).
func (s *server) settleAccepted(deadline time.Time) {
	s.awaitRegistered(deadline)
	time.Sleep(acceptSettle)
	loops := s.loopList()
	done := make(chan struct{}, len(loops))
	posted := 0
	for _, ls := range loops {
		err := ls.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			done <- struct{}{}
			return nil
		}))
		if err == nil {
			posted++
		}
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for range posted {
		select {
		case <-done:
		case <-t.C:
			return // a stuck loop: the graceful timeout decides
		}
	}
}

// stopEngine stops gnet and waits for Rotate to return. Engine.Stop polls
// for completion every 500 ms; Rotate returning is the earlier signal, so
// the Stop call is abandoned (its context cancelled) as soon as it does.
func (s *server) stopEngine(done <-chan error, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(time.Second))
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = s.eng.Stop(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = errors.New("evloop: engine did not stop in time")
	}
	cancel()
	<-stopped
	s.closePool(deadline)
	return err
}

// closePool stops the handler pool, waiting for handlers still running off
// the loop (their writes fail harmlessly once the engine is gone), bounded
// by the deadline.
func (s *server) closePool(deadline time.Time) {
	idle := make(chan struct{})
	go func() { s.pool.close(); close(idle) }()
	t := time.NewTimer(time.Until(deadline) + time.Second)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
		s.log.Warn("evloop: handlers still running at exit")
	}
}
