package config

import "testing"

func TestParseBind(t *testing.T) {
	tests := []struct {
		in, network, addr string
		ok                bool
	}{
		{"127.0.0.1:8000", "tcp", "127.0.0.1:8000", true},
		{"0.0.0.0:0", "tcp", "0.0.0.0:0", true},
		{":8000", "tcp", ":8000", true},
		{"localhost:8000", "tcp", "localhost:8000", true},
		{"tcp://example.com:80", "tcp", "example.com:80", true},
		{"[::1]:8000", "tcp", "[::1]:8000", true},
		{"[::]:0", "tcp", "[::]:0", true},
		{"[fe80::1%eth0]:8000", "tcp", "[fe80::1%eth0]:8000", true},
		{"unix:/run/app.sock", "unix", "/run/app.sock", true},
		{"unix:rel.sock", "unix", "rel.sock", true},
		{"fd://3", "fd", "3", true},
		{"", "", "", false},
		{"localhost", "", "", false},
		{"127.0.0.1", "", "", false},
		{"::1:8000", "", "", false},
		{"[127.0.0.1]:80", "", "", false},
		{"[nope]:80", "", "", false},
		{"127.0.0.1:http", "", "", false},
		{"127.0.0.1:65536", "", "", false},
		{"127.0.0.1:-1", "", "", false},
		{"bad host:80", "", "", false},
		{"unix:", "", "", false},
		{"fd://", "", "", false},
		{"fd://x", "", "", false},
		{"fd://-1", "", "", false},
	}
	for _, tt := range tests {
		network, addr, err := ParseBind(tt.in)
		if (err == nil) != tt.ok || network != tt.network || addr != tt.addr {
			t.Errorf("ParseBind(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, network, addr, err, tt.network, tt.addr, tt.ok)
		}
	}
}

func TestListenAddrs(t *testing.T) {
	c := Default()
	c.Bind = []string{"127.0.0.1:0", "unix:/tmp/x.sock", "fd://4"}
	got, err := c.ListenAddrs()
	if err != nil || len(got) != 3 || got[1] != (ListenAddr{Bind: "unix:/tmp/x.sock", Network: "unix", Addr: "/tmp/x.sock"}) ||
		got[2].Network != "fd" || got[0].Addr != "127.0.0.1:0" {
		t.Fatalf("ListenAddrs = %+v, %v", got, err)
	}
	c.Bind = append(c.Bind, "nope")
	if _, err := c.ListenAddrs(); !IsUsage(err) {
		t.Fatalf("bad bind: %v", err)
	}
}
