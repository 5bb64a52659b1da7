package arbiter

import (
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/multiserve/multiserve/config"
)

// HUP applies bind changes as gunicorn does. a.lns holds every socket a
// live generation uses; each generation's workers get only its own
// (generation.lns), in its bind order. A reload keeps the sockets whose
// --bind entry the new config still names (same entry, same socket: a
// port 0 keeps its port), binds the new entries before anything else
// changes and hands them to the new generation; a socket no live
// generation uses any more (the old one retired, or a reload that failed)
// is closed by pruneListeners, its unix path removed only if this arbiter
// created it. If a new entry cannot be bound, what was bound for the
// reload is closed and the running configuration stays.
//
// Sockets from systemd socket activation replace --bind altogether; the
// .socket unit owns them, so a bind change there is a warning and the
// sockets stay. fd://N entries name descriptors inherited at start: one
// cannot be added by a reload.

// listenersFor returns the sockets a generation with cfg serves, in
// cfg.Bind order; those it bound are added to a.lns, their unix paths
// given to cred.
func (a *arbiter) listenersFor(cfg *config.Config, cred *syscall.Credential) ([]*listener, error) {
	if a.socketActivated() {
		if !slices.Equal(a.gen.cfg.Bind, cfg.Bind) {
			a.log.Warn("reload: bind ignored, the sockets come from systemd socket activation (change the .socket unit)", "bind", cfg.Bind)
		}
		return a.gen.lns, nil
	}
	var lns, fresh []*listener
	for _, b := range cfg.Bind {
		if ln := a.listenerNamed(b); ln != nil {
			lns = append(lns, ln)
			continue
		}
		ln, err := a.bindNew(b, cfg)
		if err != nil {
			closeAll(fresh)
			return nil, err
		}
		fresh = append(fresh, ln)
		lns = append(lns, ln)
	}
	for _, ln := range fresh {
		a.log.Info("reload: listening at "+ln.workerName(), "bind", ln.name)
	}
	a.lns = append(a.lns, fresh...)
	a.chownSocketsOf(fresh, cred)
	return lns, nil
}

// bindNew binds one entry a reload added, in the mode the running sockets
// were made in (reuse_port: a port reservation).
func (a *arbiter) bindNew(b string, cfg *config.Config) (*listener, error) {
	if strings.HasPrefix(b, "fd://") {
		return nil, fmt.Errorf("arbiter: bind %s: an inherited fd cannot be added by a reload", b)
	}
	ln, err := bind(b, cfg.Backlog)
	if err != nil {
		return nil, err
	}
	if a.gen.cfg.ReusePort {
		if err := reservePort(ln); err != nil {
			ln.close()
			return nil, err
		}
	}
	return ln, nil
}

func (a *arbiter) listenerNamed(b string) *listener {
	for _, ln := range a.lns {
		if ln.name == b {
			return ln
		}
	}
	return nil
}

func (a *arbiter) socketActivated() bool {
	for _, ln := range a.lns {
		if strings.HasPrefix(ln.name, systemdPrefix) {
			return true
		}
	}
	return false
}

// pruneListeners closes the sockets no live generation uses: after the
// generation that had them retired, or a reload that did not happen. Not
// while a USR2 child runs (it took copies by name and may still be
// deciding which to keep) or while stopping (cleanup closes everything).
func (a *arbiter) pruneListeners() {
	if a.stop != nil || a.upgrade != nil || a.gen == nil {
		return
	}
	used := map[*listener]bool{}
	for _, g := range a.liveGenerations() {
		for _, ln := range g.lns {
			used[ln] = true
		}
	}
	if len(used) == len(a.lns) {
		return // the common case: every socket in use
	}
	var kept []*listener
	for _, ln := range a.lns {
		if used[ln] {
			kept = append(kept, ln)
			continue
		}
		a.log.Info("closed listener no generation serves any more: "+ln.workerName(), "bind", ln.name)
		ln.close()
	}
	a.lns = kept
}
