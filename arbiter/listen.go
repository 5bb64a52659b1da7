package arbiter

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// listener is one bound socket. The arbiter creates it with raw syscalls and
// keeps it in blocking mode, wrapped by os.NewFile, so Go's netpoller never
// registers it: an arbiter holding a net.Listen socket is woken on every
// incoming connection (measured in shared/notes/gnet-inherited-fd.md).
type listener struct {
	name    string   // the --bind entry
	network string   // "tcp" or "unix"
	addr    net.Addr // bound address, port 0 resolved
	file    *os.File // passed to workers in ExtraFiles
	unlink  string   // unix socket path to remove on exit ("" otherwise)
	adopted bool     // fd:// or socket activation: someone else holds it too
	gated   bool     // refusing new connections: a graceful stop's queue phase (drain.go)
	// reuse_port: a bound, non-listening port reservation; each worker
	// gets its own listening socket (reuseport.go)
	perWorker bool
}

// bindAll binds every entry, in order. Sockets from systemd socket
// activation replace the entries altogether (systemd.go); an entry a USR2
// parent handed over (EnvUpgradeFDs) is adopted instead of bound. On any
// failure it closes what it already bound, so a failed start leaves nothing
// behind. Inherited sockets no entry asks for any more are closed.
func bindAll(binds []string, backlog int) ([]*listener, error) {
	fds, err := takeInherited()
	if err != nil {
		return nil, err
	}
	if fds == nil {
		if fds, err = takeSystemd(); err != nil {
			return nil, err
		}
	}
	inh := map[string]int{}
	var sd []inheritedFD
	for _, f := range fds {
		if f.Systemd {
			sd = append(sd, f)
		} else {
			inh[f.Bind] = f.FD
		}
	}
	if len(sd) > 0 {
		return adoptSystemd(sd)
	}
	defer func() {
		for _, fd := range inh {
			unix.Close(fd)
		}
	}()
	var lns []*listener
	for _, b := range binds {
		ln, err := bindOrInherit(b, backlog, inh)
		if err != nil {
			closeAll(lns)
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func bindOrInherit(b string, backlog int, inh map[string]int) (*listener, error) {
	fd, ok := inh[b]
	if !ok {
		return bind(b, backlog)
	}
	delete(inh, b)
	ln, err := adoptFD("fd://" + strconv.Itoa(fd))
	if err != nil {
		return nil, err
	}
	ln.name, ln.adopted = b, false // handed over whole: this arbiter owns it now
	if ua, ok := ln.addr.(*net.UnixAddr); ok {
		ln.unlink = ua.Name
	}
	return ln, nil
}

func closeAll(lns []*listener) {
	for _, ln := range lns {
		ln.close()
	}
}

func (l *listener) close() {
	l.file.Close()
	if l.unlink != "" {
		os.Remove(l.unlink)
	}
}

func bind(b string, backlog int) (*listener, error) {
	switch {
	case strings.HasPrefix(b, "unix:"):
		return bindUnix(b, strings.TrimPrefix(b, "unix:"), backlog)
	case strings.HasPrefix(b, "fd://"):
		return adoptFD(b)
	default:
		return bindTCP(b, backlog)
	}
}

func bindTCP(name string, backlog int) (*listener, error) {
	sa, family, err := resolveTCP(name)
	if err != nil {
		return nil, fmt.Errorf("arbiter: bind %s: %w", name, err)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("arbiter: bind %s: socket: %w", name, err)
	}
	// SO_REUSEADDR lets a restarted server bind while old connections sit in
	// TIME_WAIT; it does not let two listeners share the port.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("arbiter: bind %s: SO_REUSEADDR: %w", name, err)
	}
	if err := setInheritedOptions(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("arbiter: bind %s: %w", name, err)
	}
	return listenFD(fd, name, "tcp", sa, backlog)
}

// inheritedOptions are set once on every TCP socket the arbiter binds.
// Linux copies them to each connection accepted from it, so no worker
// pays a setsockopt(2) per connection for them: TCP_NODELAY (a response
// often leaves in two writes, which Nagle plus the peer's delayed ACK
// would hold back), and keep-alive probing with Go's net defaults (idle
// 15 s, interval 15 s, 9 probes), so every class's connections notice a
// vanished peer as the goroutine class's always have.
var inheritedOptions = []struct{ level, opt, value int }{
	{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
	{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9},
}

func setInheritedOptions(fd int) error {
	for _, o := range inheritedOptions {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.value); err != nil {
			return fmt.Errorf("setsockopt %d/%d: %w", o.level, o.opt, err)
		}
	}
	return nil
}

// resolveTCP turns HOST:PORT into a sockaddr. An empty host means every IPv4
// address (gunicorn's ":8000"); a name is resolved and its first address used.
func resolveTCP(name string) (unix.Sockaddr, int, error) {
	host, portStr, err := net.SplitHostPort(name)
	if err != nil {
		return nil, 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, 0, fmt.Errorf("invalid port %q", portStr)
	}
	ip := net.IPv4zero
	if host != "" {
		if ip = net.ParseIP(host); ip == nil {
			ips, err := net.LookupIP(host)
			if err != nil || len(ips) == 0 {
				return nil, 0, fmt.Errorf("resolve %q: %w", host, err)
			}
			ip = ips[0]
		}
	}
	if ip4 := ip.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: port}
		copy(sa.Addr[:], ip4)
		return sa, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: port}
	copy(sa.Addr[:], ip.To16())
	return sa, unix.AF_INET6, nil
}

// bindUnix binds a unix socket at path. A socket file already there is
// removed only if nothing answers on it (a previous run that was killed);
// a live server's socket is never stolen.
func bindUnix(name, path string, backlog int) (*listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, fmt.Errorf("arbiter: bind %s: %w", name, err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("arbiter: bind %s: socket: %w", name, err)
	}
	ln, err := listenFD(fd, name, "unix", &unix.SockaddrUnix{Name: path}, backlog)
	if err != nil {
		return nil, err
	}
	ln.unlink = path
	return ln, nil
}

func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return unix.EADDRINUSE
	}
	if !errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("probe existing socket: %w", err)
	}
	return os.Remove(path)
}

// listenFD binds and listens on fd (closing it on failure) and wraps it.
func listenFD(fd int, name, network string, sa unix.Sockaddr, backlog int) (*listener, error) {
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("arbiter: bind %s: %w", name, err)
	}
	if backlog <= 0 {
		backlog = unix.SOMAXCONN
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("arbiter: listen %s: %w", name, err)
	}
	return wrapFD(fd, name, network)
}

// adoptFD takes over an already listening socket the arbiter inherited
// (systemd socket activation, a supervisor).
func adoptFD(name string) (*listener, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "fd://"))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("arbiter: bind %s: invalid fd number", name)
	}
	typ, err := unix.GetsockoptInt(n, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("arbiter: bind %s: not a stream socket (%v)", name, err)
	}
	sa, err := unix.Getsockname(n)
	if err != nil {
		return nil, fmt.Errorf("arbiter: bind %s: getsockname: %w", name, err)
	}
	network := "tcp"
	if _, ok := sa.(*unix.SockaddrUnix); ok {
		network = "unix"
	}
	unix.CloseOnExec(n)
	// os.NewFile registers a non-blocking fd with the netpoller (which would
	// wake this arbiter on every connection, see listener), so the file is
	// made while the fd is blocking. O_NONBLOCK lives on the open file
	// description, shared with the workers already serving it (an old
	// arbiter's during a USR2 upgrade): the original mode is put back at
	// once, since their accept loops rely on EAGAIN.
	flags, err := unix.FcntlInt(uintptr(n), unix.F_GETFL, 0)
	if err != nil {
		return nil, fmt.Errorf("arbiter: bind %s: %w", name, err)
	}
	nonblock := flags&unix.O_NONBLOCK != 0
	if err := unix.SetNonblock(n, false); err != nil {
		return nil, fmt.Errorf("arbiter: bind %s: %w", name, err)
	}
	ln, err := wrapFD(n, name, network)
	if nonblock {
		if rerr := unix.SetNonblock(n, true); rerr != nil && err == nil {
			err = fmt.Errorf("arbiter: bind %s: restore O_NONBLOCK: %w", name, rerr)
		}
	}
	if ln != nil {
		ln.adopted = true
	}
	return ln, err
}

func wrapFD(fd int, name, network string) (*listener, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("arbiter: bind %s: getsockname: %w", name, err)
	}
	return &listener{name: name, network: network, addr: toNetAddr(sa), file: os.NewFile(uintptr(fd), name)}, nil
}

func toNetAddr(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	return nil
}

// workerName is the name a worker sees for a listener: the bind entry, with
// port 0 replaced by the real port so logs and Env.Listeners are useful.
func (l *listener) workerName() string {
	if ta, ok := l.addr.(*net.TCPAddr); ok && strings.HasSuffix(l.name, ":0") {
		return net.JoinHostPort(ta.IP.String(), strconv.Itoa(ta.Port))
	}
	return l.name
}
