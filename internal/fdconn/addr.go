package fdconn

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket addresses are read into a raw sockaddr and decoded here rather
// than through x/sys/unix's Accept4, Getsockname and Getpeername: those
// ask the kernel for the socket's protocol (getsockopt SO_PROTOCOL) on
// every IPv4 or IPv6 address they decode, to tell L2TP sockets apart,
// which a stream socket never is. That was a system call per connection
// for nothing.

// sockaddr calls getsockname(2) or getpeername(2) (trap) on fd. Neither
// waits, so the runtime need not be told (RawSyscall).
func sockaddr(trap uintptr, fd int) (*unix.RawSockaddrAny, uint32, error) {
	rsa := new(unix.RawSockaddrAny)
	n := uint32(unix.SizeofSockaddrAny)
	_, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&n)))
	if e != 0 {
		return nil, 0, e
	}
	return rsa, n, nil
}

// tcpAddrBuf is a TCP address with room for its IP, so that decoding one
// takes no allocation of its own: a Conn holds its peer's.
type tcpAddrBuf struct {
	addr net.TCPAddr
	ip   [net.IPv6len]byte
}

// set makes t the address ip:port and returns it.
func (t *tcpAddrBuf) set(ip []byte, port int) *net.TCPAddr {
	n := copy(t.ip[:], ip)
	t.addr = net.TCPAddr{IP: t.ip[:n:n], Port: port}
	return &t.addr
}

// rawToAddr decodes the first n bytes of rsa, as the kernel filled them.
// An IP address is decoded into buf (nil: a new one).
func rawToAddr(rsa *unix.RawSockaddrAny, n uint32, network string, buf *tcpAddrBuf) net.Addr {
	if buf == nil && (rsa.Addr.Family == unix.AF_INET || rsa.Addr.Family == unix.AF_INET6) {
		buf = new(tcpAddrBuf)
	}
	switch rsa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return buf.set(in.Addr[:], port(in.Port))
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		ta := buf.set(in.Addr[:], port(in.Port))
		if in.Scope_id != 0 {
			if ifi, err := net.InterfaceByIndex(int(in.Scope_id)); err == nil {
				ta.Zone = ifi.Name
			}
		}
		return ta
	case unix.AF_UNIX:
		return &net.UnixAddr{Name: unixPath(rsa, n), Net: "unix"}
	}
	return nilAddr(network)
}

// port decodes a port in network byte order as the raw struct holds it.
func port(p uint16) int {
	var b [2]byte
	*(*uint16)(unsafe.Pointer(&b[0])) = p
	return int(binary.BigEndian.Uint16(b[:]))
}

// unixPath is the path of a unix-domain sockaddr n bytes long: empty for
// an unnamed socket, "@name" for an abstract one (as net and x/sys/unix
// render it).
func unixPath(rsa *unix.RawSockaddrAny, n uint32) string {
	su := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
	const off = uint32(unsafe.Offsetof(su.Path))
	if n <= off {
		return ""
	}
	path := unsafe.Slice((*byte)(unsafe.Pointer(&su.Path[0])), min(int(n-off), len(su.Path)))
	if path[0] == 0 {
		return "@" + string(path[1:])
	}
	for i, b := range path {
		if b == 0 {
			return string(path[:i])
		}
	}
	return string(path)
}

func nilAddr(network string) net.Addr {
	if network == "unix" {
		return &net.UnixAddr{Net: "unix"}
	}
	return &net.TCPAddr{}
}
