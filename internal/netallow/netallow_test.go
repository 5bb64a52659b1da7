package netallow

import (
	"net"
	"testing"
)

func TestList(t *testing.T) {
	l, err := Parse([]string{"127.0.0.1", "10.0.0.0/8", "2001:db8::/32", "::ffff:192.0.2.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote      string
		allowed, ok bool
	}{
		{"127.0.0.1:80", true, true},
		{"127.0.0.2:80", false, true},
		{"10.9.8.7:1", true, true},
		{"[::ffff:10.1.1.1]:1", true, true},
		{"[2001:db8::5]:443", true, true},
		{"[2001:db9::5]:443", false, true},
		{"192.0.2.9:1", true, true},
		{"127.0.0.1", true, true},
		{"@", false, false},
		{"", false, false},
	} {
		allowed, ok := l.ContainsString(tc.remote)
		if allowed != tc.allowed || ok != tc.ok {
			t.Errorf("%q: allowed %v ok %v, want %v %v", tc.remote, allowed, ok, tc.allowed, tc.ok)
		}
	}
	if a, ok := l.ContainsNetAddr(&net.TCPAddr{IP: net.ParseIP("10.0.0.1")}); !a || !ok {
		t.Error("TCPAddr 10.0.0.1 not allowed")
	}
	if _, ok := l.ContainsNetAddr(&net.UnixAddr{Name: "/x", Net: "unix"}); ok {
		t.Error("unix addr reported as IP")
	}
	star, _ := Parse([]string{"*"})
	if a, _ := star.ContainsString("8.8.8.8:1"); !a || !star.All() {
		t.Error("* does not allow everyone")
	}
	if _, err := Parse([]string{"nope"}); err == nil {
		t.Error("bad entry accepted")
	}
	var none List
	if a, _ := none.ContainsString("127.0.0.1:1"); a {
		t.Error("zero List allows")
	}
}
