// Package proxyproto parses the PROXY protocol header (HAProxy's
// proxy-protocol.txt, versions 1 and 2) that a load balancer sends at the
// start of a connection to pass on the client's address.
//
// Parse is incremental in the sense the HTTP parser is: give it every
// byte received so far; it returns ErrNeedMore until the header is
// complete, and never reads past it. Validation is strict: v1 lines of at
// most 107 bytes, single spaces, canonical addresses of the declared family
// and decimal ports without leading zeros; v2 headers with the exact
// signature, version 2, a known command, and an address block long enough
// for the declared family, total length capped at MaxV2Len. Anything else
// is an error and the connection must be closed.
//
// Trust is the caller's job ([Policy]): a header is honoured only from a
// peer in proxy_allow_ips; from anyone else the connection is closed before
// a byte is read, so a client can never make up its own address.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

var (
	// ErrNeedMore: the bytes so far are a valid beginning; read more.
	ErrNeedMore = errors.New("proxyproto: need more bytes")
	// ErrNoHeader: the connection does not start with a PROXY header.
	ErrNoHeader = errors.New("proxyproto: no PROXY header")
)

// v2sig is the 12-byte signature of a version 2 header.
var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	v1Prefix = "PROXY "
	// v1MaxLen is the longest v1 line, CRLF included (spec §2.1).
	v1MaxLen = 107
	// MaxV2Len caps a v2 header (16-byte fixed part + addresses + TLVs).
	// The spec allows 64 KiB of TLVs; no load balancer sends more than a
	// few hundred bytes, and a bound keeps a hostile peer from making the
	// worker buffer 64 KiB per connection.
	MaxV2Len = 16 + 2048
)

// Header is a parsed PROXY header.
type Header struct {
	Version int
	// Local is true for v2 LOCAL, v2 UNSPEC/unix families and v1 UNKNOWN:
	// the connection carries no client address (health checks); keep the
	// real peer address.
	Local    bool
	Src, Dst netip.AddrPort
}

// Parse reads a PROXY header at the start of b. It returns the header and
// the number of bytes it used, ErrNeedMore, ErrNoHeader, or another error
// for a malformed header.
func Parse(b []byte) (Header, int, error) {
	switch {
	case hasPrefixPartial(b, v2sig):
		if len(b) < len(v2sig) {
			return Header{}, 0, ErrNeedMore
		}
		return parseV2(b)
	case hasPrefixPartial(b, []byte(v1Prefix)):
		if len(b) < len(v1Prefix) {
			return Header{}, 0, ErrNeedMore
		}
		return parseV1(b)
	}
	return Header{}, 0, ErrNoHeader
}

// hasPrefixPartial reports whether b and prefix agree on their common
// length (b may be shorter than prefix).
func hasPrefixPartial(b, prefix []byte) bool {
	n := min(len(b), len(prefix))
	return bytes.Equal(b[:n], prefix[:n])
}

func parseV1(b []byte) (Header, int, error) {
	end := bytes.IndexByte(b[:min(len(b), v1MaxLen)], '\n')
	if end < 0 {
		if len(b) >= v1MaxLen {
			return Header{}, 0, errors.New("proxyproto: v1 line longer than 107 bytes")
		}
		return Header{}, 0, ErrNeedMore
	}
	if end == 0 || b[end-1] != '\r' {
		return Header{}, 0, errors.New("proxyproto: v1 line not ended by CRLF")
	}
	line := string(b[len(v1Prefix) : end-1])
	h := Header{Version: 1}
	if line == "UNKNOWN" || (len(line) > 8 && line[:8] == "UNKNOWN ") {
		h.Local = true
		return h, end + 1, nil
	}
	parts := splitSpaces(line)
	if len(parts) != 5 {
		return Header{}, 0, fmt.Errorf("proxyproto: v1 line %q: want 5 fields", line)
	}
	var want4 bool
	switch parts[0] {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return Header{}, 0, fmt.Errorf("proxyproto: v1 protocol %q", parts[0])
	}
	src, err := v1Addr(parts[1], parts[3], want4)
	if err != nil {
		return Header{}, 0, err
	}
	dst, err := v1Addr(parts[2], parts[4], want4)
	if err != nil {
		return Header{}, 0, err
	}
	h.Src, h.Dst = src, dst
	return h, end + 1, nil
}

// splitSpaces splits on single spaces; an empty field (two spaces, a
// leading or trailing space) stays empty and fails validation later.
func splitSpaces(s string) []string {
	var out []string
	for {
		i := bytes.IndexByte([]byte(s), ' ')
		if i < 0 {
			return append(out, s)
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
}

func v1Addr(ip, port string, want4 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.Is4() != want4 {
		return netip.AddrPort{}, fmt.Errorf("proxyproto: v1 address %q", ip)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || port != strconv.FormatUint(p, 10) {
		return netip.AddrPort{}, fmt.Errorf("proxyproto: v1 port %q", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func parseV2(b []byte) (Header, int, error) {
	if len(b) < 16 {
		return Header{}, 0, ErrNeedMore
	}
	verCmd, fam := b[12], b[13]
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, 0, fmt.Errorf("proxyproto: v2 version %d", verCmd>>4)
	}
	if n > MaxV2Len {
		return Header{}, 0, fmt.Errorf("proxyproto: v2 header of %d bytes (max %d)", n, MaxV2Len)
	}
	if len(b) < n {
		return Header{}, 0, ErrNeedMore
	}
	h := Header{Version: 2}
	switch verCmd & 0xf {
	case 0: // LOCAL: the proxy's own connection (health check)
		h.Local = true
		return h, n, nil
	case 1: // PROXY
	default:
		return Header{}, 0, fmt.Errorf("proxyproto: v2 command %d", verCmd&0xf)
	}
	addrs := b[16:n]
	switch fam >> 4 {
	case 0, 3: // UNSPEC, AF_UNIX: no IP address to report
		h.Local = true
		return h, n, nil
	case 1: // AF_INET
		if len(addrs) < 12 {
			return Header{}, 0, errors.New("proxyproto: v2 IPv4 address block too short")
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[0:4])), binary.BigEndian.Uint16(addrs[8:10]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[4:8])), binary.BigEndian.Uint16(addrs[10:12]))
	case 2: // AF_INET6
		if len(addrs) < 36 {
			return Header{}, 0, errors.New("proxyproto: v2 IPv6 address block too short")
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[0:16])), binary.BigEndian.Uint16(addrs[32:34]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[16:32])), binary.BigEndian.Uint16(addrs[34:36]))
	default:
		return Header{}, 0, fmt.Errorf("proxyproto: v2 address family %d", fam>>4)
	}
	if p := fam & 0xf; p > 2 {
		return Header{}, 0, fmt.Errorf("proxyproto: v2 transport %d", p)
	}
	return h, n, nil
}
