package evloop

import "github.com/multiserve/multiserve/workers"

// reuse_port mode: the arbiter gives each worker its own SO_REUSEPORT
// listening socket per TCP bind (arbiter/reuseport.go). It is swapped into
// gnet's slot like a shared socket. Its stop is the worker runtime's, as
// for every class (workers/ownsocket.go): before ctx is cancelled the
// runtime gates it and lets gnet accept what is queued; once evloop has
// parked the slot (stopAccepting) it calls Env.ListenersDone and the
// runtime closes the inherited fd, the last descriptor of the socket in
// this process, so it leaves the kernel's group before the requests in
// flight finish.

// ownCount is how many of the worker's listeners are its own sockets.
func (s *server) ownCount() int {
	n := 0
	for _, l := range s.env.Listeners {
		if workers.OwnSocket(s.cfg, l) {
			n++
		}
	}
	return n
}
