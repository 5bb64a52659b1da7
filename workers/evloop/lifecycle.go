package evloop

import (
	"context"
	"errors"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// startAcceptLoops starts an accept loop (accept.go) for every listener
// gnet's acceptor does not serve. Their hand-overs need the engine's loops,
// which exist once it runs (the first OnTick); each gets its loopState now,
// so that the probes and the graceful stop reach loops before their first
// connection.
func (s *server) startAcceptLoops() error {
	s.gloops = engineLoops(s.eng)
	if len(s.gloops) == 0 {
		return errors.New("gnet's event loops not found (is gnet still the pinned version?)")
	}
	for _, gl := range s.gloops {
		s.loopOf(gl.el)
	}
	for i, slot := range s.slots {
		if slot >= 0 {
			continue
		}
		l := s.env.Listeners[i]
		a, err := newAcceptLoop(s, l)
		if err != nil {
			s.log.Error("evloop: listener unusable", "listener", l.Name, "err", err)
			continue
		}
		s.accepts = append(s.accepts, a)
		s.regWG.Add(1)
		go a.run()
	}
	return nil
}

// stopAcceptLoops closes the accept loops' listeners (dups) and waits for
// the loops to return; their last hand-overs are queued on the event loops
// by then.
func (s *server) stopAcceptLoops() {
	for _, a := range s.accepts {
		if err := a.ln.Close(); err != nil {
			s.log.Error("evloop: stop accepting", "listener", a.name, "err", err)
		}
	}
	s.regWG.Wait()
}

// stopAccepting stops gnet accepting: every listener slot is parked and
// the accept loops' listeners (dups) are closed, so only the
// inherited fds still refer to the sockets. A shared socket stays open for
// the arbiter and sibling workers (the inherited fd keeps it). The runtime
// is then told it may close this worker's own reuse_port sockets
// (Env.ListenersDone), which it already gated and drained before ctx was
// cancelled, so that they leave the kernel's SO_REUSEPORT group now: an
// open one would keep getting connections nobody accepts.
func (s *server) stopAccepting() {
	s.stopAcceptLoops()
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
// (gnet runs its urgent queue, where its acceptor's hand-overs go, first;
// then its task queue, FIFO, where the accept loops' hand-overs were queued
// before stopAcceptLoops returned). Every loop is known (startAcceptLoops).
func (s *server) settleAccepted(deadline time.Time) {
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
