package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ListenAddr is one --bind entry, parsed.
type ListenAddr struct {
	Bind    string // as the user wrote it: "unix:/run/app.sock"
	Network string // "tcp", "unix" or "fd"
	Addr    string // "127.0.0.1:8000", "[::1]:8000", "/run/app.sock" or the fd number "3"
}

// ListenAddrs parses every bind entry of c, in order.
func (c *Config) ListenAddrs() ([]ListenAddr, error) {
	out := make([]ListenAddr, 0, len(c.Bind))
	for _, b := range c.Bind {
		network, addr, err := ParseBind(b)
		if err != nil {
			return nil, &UsageError{Setting: "bind", Value: b, Reason: err.Error()}
		}
		out = append(out, ListenAddr{Bind: b, Network: network, Addr: addr})
	}
	return out, nil
}

// ParseBind splits a bind entry into a network and an address:
//
//	"127.0.0.1:8000", "tcp://host:8000", ":8000" → "tcp", "127.0.0.1:8000" (host may be a name; empty = all interfaces)
//	"[::1]:8000"                                → "tcp", "[::1]:8000"
//	"unix:/run/app.sock"                        → "unix", "/run/app.sock"
//	"fd://3"                                    → "fd", "3"
//
// The address is checked for syntax only; nothing is resolved or bound.
func ParseBind(s string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(s, "unix:"):
		path := strings.TrimPrefix(s, "unix:")
		if path == "" || strings.ContainsRune(path, 0) {
			return "", "", errors.New("unix: needs a socket path, as in unix:/run/app.sock")
		}
		return "unix", path, nil
	case strings.HasPrefix(s, "fd://"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "fd://"))
		if err != nil || n < 0 {
			return "", "", errors.New("fd:// needs a file descriptor number, as in fd://3")
		}
		return "fd", strconv.Itoa(n), nil
	}
	hostport := strings.TrimPrefix(s, "tcp://")
	if err := checkHostPort(hostport); err != nil {
		return "", "", err
	}
	return "tcp", hostport, nil
}

const bindSyntax = "use HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N"

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 && !strings.HasPrefix(s, "[") {
			return fmt.Errorf("IPv6 addresses need brackets, as in [::1]:8000; %s", bindSyntax)
		}
		if !strings.Contains(s, ":") {
			return fmt.Errorf("missing port; %s", bindSyntax)
		}
		return errors.New(bindSyntax)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q must be a number from 0 to 65535", port)
	}
	if strings.HasPrefix(s, "[") {
		ip, _, _ := strings.Cut(host, "%") // a zone, as in [fe80::1%eth0]:8000
		if !strings.Contains(ip, ":") || net.ParseIP(ip) == nil {
			return fmt.Errorf("%q is not an IPv6 address", host)
		}
		return nil
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("%q is not an IP address or host name; %s", host, bindSyntax)
	}
	return nil
}

// validHostname accepts letters, digits, '-' and '.' in non-empty labels.
func validHostname(h string) bool {
	for label := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
