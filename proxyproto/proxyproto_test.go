package proxyproto

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func v2(cmd, fam byte, addrs []byte) []byte {
	b := append([]byte{}, v2sig...)
	b = append(b, 0x20|cmd, fam, 0, 0)
	binary.BigEndian.PutUint16(b[14:], uint16(len(addrs)))
	return append(b, addrs...)
}

func TestParse(t *testing.T) {
	ip4 := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0x1f, 0x90, 0, 80}
	ip6 := make([]byte, 36)
	ip6[0], ip6[15], ip6[16], ip6[32], ip6[33] = 0x20, 1, 0xfe, 0, 99
	for _, tc := range []struct {
		name string
		in   string
		src  string // "" for an error; "local" for Local
		used int
	}{
		{"v1 tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET", "192.0.2.1:56324", 45},
		{"v1 tcp6", "PROXY TCP6 2001:db8::1 ::1 1 2\r\n", "[2001:db8::1]:1", 32},
		{"v1 unknown", "PROXY UNKNOWN\r\n", "local", 15},
		{"v1 unknown with addrs", "PROXY UNKNOWN ffff::1 ::1 1 2\r\n", "local", 31},
		{"v1 family mismatch", "PROXY TCP4 ::1 ::1 1 2\r\n", "", 0},
		{"v1 double space", "PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", "", 0},
		{"v1 leading zero port", "PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "", 0},
		{"v1 port too big", "PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "", 0},
		{"v1 leading zero ip", "PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n", "", 0},
		{"v1 bare LF", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "", 0},
		{"v1 zone", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "", 0},
		{"v1 bad proto", "PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n", "", 0},
		{"v1 too long", "PROXY UNKNOWN " + string(make([]byte, 120)), "", 0},
		{"v2 tcp4", string(v2(1, 0x11, ip4)) + "GET", "1.2.3.4:8080", 28},
		{"v2 tcp6", string(v2(1, 0x21, ip6)), "[2000::1]:99", 52},
		{"v2 tlvs", string(v2(1, 0x11, append(append([]byte{}, ip4...), 4, 0, 1, 'x'))), "1.2.3.4:8080", 32},
		{"v2 local", string(v2(0, 0, nil)), "local", 16},
		{"v2 unix", string(v2(1, 0x31, make([]byte, 216))), "local", 232},
		{"v2 short block", string(v2(1, 0x11, ip4[:8])), "", 0},
		{"v2 bad command", string(v2(2, 0x11, ip4)), "", 0},
		{"v2 bad family", string(v2(1, 0x41, ip4)), "", 0},
		{"v2 bad transport", string(v2(1, 0x13, ip4)), "", 0},
		{"v2 bad version", string(append(append([]byte{}, v2sig...), 0x11, 0x11, 0, 12)) + string(ip4), "", 0},
		{"v2 too long", string(append(append([]byte{}, v2sig...), 0x21, 0x11, 0xff, 0xff)), "", 0},
		{"not proxy", "GET / HTTP/1.1\r\n", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := Parse([]byte(tc.in))
			switch {
			case tc.src == "":
				if err == nil || errors.Is(err, ErrNeedMore) {
					t.Fatalf("accepted (%v, %d, %v)", h, n, err)
				}
			case err != nil:
				t.Fatalf("error %v", err)
			case tc.src == "local" && !h.Local, tc.src != "local" && h.Src.String() != tc.src, n != tc.used:
				t.Fatalf("got %+v used %d, want %s used %d", h, n, tc.src, tc.used)
			}
			if tc.src != "" {
				// Every strict prefix of a valid header is "need more".
				for i := range tc.used {
					if _, _, err := Parse([]byte(tc.in[:i])); !errors.Is(err, ErrNeedMore) {
						t.Fatalf("prefix %d: %v", i, err)
					}
				}
			}
		})
	}
	if _, _, err := Parse([]byte("GET")); !errors.Is(err, ErrNoHeader) {
		t.Errorf("GET: %v", err)
	}
}

func TestRemote(t *testing.T) {
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	if got := Remote(Header{Local: true}, peer); got != "127.0.0.1:9" {
		t.Errorf("local: %s", got)
	}
	h := Header{Src: netip.MustParseAddrPort("192.0.2.1:5")}
	if got := Remote(h, peer); got != "192.0.2.1:5" {
		t.Errorf("proxied: %s", got)
	}
}

// FuzzParse: never panics, never uses more bytes than given, and is
// consistent under truncation (a prefix of accepted input needs more).
func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2(1, 0x11, []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}))
	f.Add(v2(1, 0x21, make([]byte, 40)))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("used %d of %d", n, len(b))
		}
		if !h.Local && !h.Src.IsValid() {
			t.Fatalf("accepted without a source: %+v", h)
		}
		if _, _, err := Parse(b[:n-1]); !errors.Is(err, ErrNeedMore) {
			t.Fatalf("prefix of accepted header: %v", err)
		}
	})
}
