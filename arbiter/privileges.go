package arbiter

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/multiserve/multiserve/config"
)

// Privileges (user, group, umask). The arbiter keeps its own identity: it
// binds first (privileged ports work when it runs as root) and must be
// able to signal and respawn workers. Workers are started with the
// configured uid/gid (exec.Cmd's SysProcAttr.Credential: set in the child
// before execve, supplementary groups cleared). What a worker must write
// is handed to it owned by that user: its heartbeat file (futimes needs
// ownership) and the unix socket paths the arbiter bound. umask is the
// arbiter's, set before binding, so unix sockets, and everything workers
// create, get its mode.

// credential resolves user and group; nil when neither is set. A user
// without a group runs with the user's primary group.
func credential(cfg *config.Config) (*syscall.Credential, error) {
	if cfg.User == "" && cfg.Group == "" {
		return nil, nil
	}
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: []uint32{}}
	if cfg.User != "" {
		u, err := lookupUser(cfg.User)
		if err != nil {
			return nil, fmt.Errorf("arbiter: user %q: %w", cfg.User, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
	}
	if cfg.Group != "" {
		gid, err := lookupGroup(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("arbiter: group %q: %w", cfg.Group, err)
		}
		cred.Gid = uint32(gid)
	}
	return cred, nil
}

func lookupUser(s string) (*user.User, error) {
	if _, err := strconv.Atoi(s); err == nil {
		if u, err := user.LookupId(s); err == nil {
			return u, nil
		}
		// A numeric uid with no passwd entry: its own group id.
		return &user.User{Uid: s, Gid: s}, nil
	}
	return user.Lookup(s)
}

func lookupGroup(s string) (int, error) {
	if id, err := strconv.Atoi(s); err == nil {
		return id, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// applyUmask sets the process umask when configured.
func applyUmask(cfg *config.Config) error {
	if cfg.Umask == "" {
		return nil
	}
	m, err := config.ParseUmask(cfg.Umask)
	if err != nil {
		return fmt.Errorf("arbiter: umask %q: %w", cfg.Umask, err)
	}
	syscall.Umask(m)
	return nil
}

// chownSockets gives the workers' user the unix socket paths.
func (a *arbiter) chownSockets(cred *syscall.Credential) {
	a.chownSocketsOf(a.lns, cred)
}

func (a *arbiter) chownSocketsOf(lns []*listener, cred *syscall.Credential) {
	if cred == nil {
		return
	}
	for _, ln := range lns {
		if ln.unlink == "" {
			continue
		}
		if err := os.Lchown(ln.unlink, int(cred.Uid), int(cred.Gid)); err != nil {
			a.log.Warn("chown unix socket", "path", ln.unlink, "err", err)
		}
	}
}
