package h1

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/multiserve/multiserve/config"
)

// parsed is what a byte stream decoded into.
type parsed struct {
	reqs   []*http.Request
	heads  []string
	bodies []string
	status int // status of the *Error that ended the stream, 0 if none
}

// decode runs raw through a Parser, offering at most step new bytes per
// round (0: everything at once), as a connection would.
func decode(t testing.TB, cfg *config.Config, raw string, step int) parsed {
	t.Helper()
	p := (&Server{Config: cfg}).NewParser()
	var out parsed
	var buf []byte
	in := []byte(raw)
	var body []byte
	for {
		if step == 0 || len(in) <= step {
			buf, in = append(buf, in...), nil
		} else {
			buf, in = append(buf, in[:step]...), in[step:]
		}
		for {
			ev, n, data, err := p.Next(buf, 0)
			if n > len(buf) {
				t.Fatalf("consumed %d of %d bytes", n, len(buf))
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v is not an *Error", err)
				}
				out.status = e.Status
				return out
			}
			switch ev {
			case Head:
				r, err := p.Request(context.Background(), "1.2.3.4:5")
				if err != nil {
					var e *Error
					errors.As(err, &e)
					out.status = e.Status
					return out
				}
				out.reqs = append(out.reqs, r)
				out.heads = append(out.heads, string(buf[:n]))
				body = nil
			case Body:
				body = append(body, data...)
			case BodyEnd:
				out.bodies = append(out.bodies, string(body))
				if tr := p.Trailer(); tr != nil {
					out.reqs[len(out.reqs)-1].Trailer = tr
				}
			}
			buf = buf[n:]
			if ev == NeedMore {
				break
			}
		}
		if len(in) == 0 {
			return out
		}
	}
}

func testConfig() *config.Config {
	c := config.Default()
	c.LimitRequestLine = 100
	c.LimitRequestFields = 6
	c.LimitRequestFieldSize = 50
	c.LimitRequestBody = 1000
	return c
}

const host = "Host: h\r\n"

// TestParserRules is the accept/reject table of docs/http-behaviour.md; every case runs with
// the bytes arriving at once, in 7-byte pieces and one byte at a time.
func TestParserRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		raw    string
		status int      // 0: accepted
		bodies []string // for accepted streams
		check  func(t *testing.T, p parsed)
	}{
		// accepted
		{"simple GET", "GET / HTTP/1.1\r\n" + host + "\r\n", 0, []string{""}, nil},
		{"content-length body", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", 0, []string{"hello"}, nil},
		{"content-length zero", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n", 0, []string{""}, nil},
		{"chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0, []string{"hello world"}, nil},
		{"chunked case-insensitive", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 0, []string{"x"}, nil},
		{"chunk leading zeros and upper hex", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n0\r\n\r\n", 0, []string{"0123456789"}, nil},
		{"chunk line at limit", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1;x=" + strings.Repeat("a", maxChunkLine-5) + "\r\nx\r\n0\r\n\r\n", 0, []string{"x"}, nil},
		{"chunk extensions", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;a=b;c=\"d;e\"\r\nabc\r\n0 ;x\r\n\r\n", 0, []string{"abc"}, nil},
		{"chunked trailers", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Sum: 42\r\nContent-Length: 9\r\n\r\n", 0, []string{"x"}, func(t *testing.T, p parsed) {
			tr := p.reqs[0].Trailer
			if tr.Get("X-Sum") != "42" || tr.Get("Content-Length") != "" {
				t.Errorf("trailer %v: want X-Sum kept, Content-Length dropped", tr)
			}
		}},
		{"pipelined", "GET /1 HTTP/1.1\r\n" + host + "\r\nPOST /2 HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\n" + host + "\r\n", 0, []string{"", "hi", ""}, func(t *testing.T, p parsed) {
			for i, want := range []string{"/1", "/2", "/3"} {
				if p.reqs[i].RequestURI != want {
					t.Errorf("request %d: %q", i, p.reqs[i].RequestURI)
				}
			}
		}},
		{"leading CRLF ignored", "\r\nGET / HTTP/1.1\r\n" + host + "\r\n", 0, []string{""}, nil},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0, []string{""}, func(t *testing.T, p parsed) {
			if !p.reqs[0].Close || p.reqs[0].ProtoMinor != 0 {
				t.Errorf("HTTP/1.0 request: Close=%v minor=%d", p.reqs[0].Close, p.reqs[0].ProtoMinor)
			}
		}},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, []string{""}, func(t *testing.T, p parsed) {
			if p.reqs[0].Close {
				t.Errorf("keep-alive requested but Close")
			}
		}},
		{"request fields", "GET /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nuser-agent: x\r\nX-Multi: a\r\nx-multi: b\r\nName: \t v a l \t\r\nX-Obs: caf\xc3\xa9\r\n\r\n", 0, []string{""}, func(t *testing.T, p parsed) {
			r := p.reqs[0]
			if r.Method != "GET" || r.URL.Path != "/p" || r.URL.RawQuery != "q=1" || r.Host != "example.com:8080" ||
				r.RemoteAddr != "1.2.3.4:5" || r.Proto != "HTTP/1.1" || r.RequestURI != "/p?q=1" {
				t.Errorf("request %+v", r)
			}
			if r.Header.Get("User-Agent") != "x" || len(r.Header["X-Multi"]) != 2 || r.Header.Get("Name") != "v a l" ||
				r.Header.Get("X-Obs") != "caf\xc3\xa9" {
				t.Errorf("header %v", r.Header)
			}
		}},
		{"absolute-form", "GET http://Example.com:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n", 0, []string{""}, func(t *testing.T, p parsed) {
			if r := p.reqs[0]; r.Host != "Example.com:81" || r.URL.Path != "/x" {
				t.Errorf("absolute-form: host %q path %q", r.Host, r.URL.Path)
			}
		}},
		{"absolute-form ipv6", "GET https://[::1]:8080/ HTTP/1.1\r\n" + host + "\r\n", 0, []string{""}, nil},
		{"OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", 0, []string{""}, nil},
		{"CONNECT authority", "CONNECT example.com:443 HTTP/1.1\r\n" + host + "\r\n", 0, []string{""}, nil},
		{"odd but legal method", "-BLARGH / HTTP/1.1\r\n" + host + "\r\n", 0, []string{""}, nil},
		{"expect 100-continue", "POST / HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 1\r\n\r\nx", 0, []string{"x"}, nil},
		{"underscore header dropped", "GET / HTTP/1.1\r\n" + host + "Content_Length: 5\r\nX_A: 1\r\n\r\n", 0, []string{""}, func(t *testing.T, p parsed) {
			if len(p.reqs[0].Header) != 0 || p.reqs[0].ContentLength != 0 {
				t.Errorf("underscore fields not dropped: %v", p.reqs[0].Header)
			}
		}},
		{"HTTP/1.2 is 1.x", "GET / HTTP/1.2\r\n" + host + "\r\n", 0, []string{""}, nil},

		// rejected: framing ambiguities
		{"CL and TE", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, nil, nil},
		{"TE and CL", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, nil, nil},
		{"two CL same", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, nil, nil},
		{"two CL different", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400, nil, nil},
		{"CL list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\nhello", 400, nil, nil},
		{"CL plus sign", "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello", 400, nil, nil},
		{"CL negative", "POST / HTTP/1.1\r\n" + host + "Content-Length: -5\r\n\r\n", 400, nil, nil},
		{"CL empty", "POST / HTTP/1.1\r\n" + host + "Content-Length: \r\n\r\n", 400, nil, nil},
		{"CL hex", "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x5\r\n\r\n", 400, nil, nil},
		{"CL overflow", "POST / HTTP/1.1\r\n" + host + "Content-Length: 99999999999999999999999\r\n\r\n", 400, nil, nil},
		{"TE chunked not last", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, nil, nil},
		{"TE chunked twice", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, nil, nil},
		{"TE identity", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\n", 501, nil, nil},
		{"TE gzip,chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, nil, nil},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, nil, nil},
		{"TE garbage", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: \"chunked\"\r\n\r\n", 400, nil, nil},
		{"body over limit (CL)", "POST / HTTP/1.1\r\n" + host + "Content-Length: 1001\r\n\r\n", 413, nil, nil},
		{"body over limit (chunked)", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3e9\r\n" + strings.Repeat("x", 1001) + "\r\n0\r\n\r\n", 413, nil, nil},

		// rejected: field syntax
		{"obs-fold", "GET / HTTP/1.1\r\n" + host + "X-A: 1\r\n 2\r\n\r\n", 400, nil, nil},
		{"obs-fold tab", "GET / HTTP/1.1\r\n" + host + "X-A: 1\r\n\t2\r\n\r\n", 400, nil, nil},
		{"first field folded", "GET / HTTP/1.1\r\n " + host + "\r\n", 400, nil, nil},
		{"bare CR in value", "GET / HTTP/1.1\r\n" + host + "X-A: 1\r2\r\n\r\n", 400, nil, nil},
		{"bare LF line end", "GET / HTTP/1.1\r\n" + host + "X-A: 1\n\r\n", 400, nil, nil},
		{"bare LF request line", "GET / HTTP/1.1\n" + host + "\r\n", 400, nil, nil},
		{"NUL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n", 400, nil, nil},
		{"BEL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x07b\r\n\r\n", 400, nil, nil},
		{"DEL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x7fb\r\n\r\n", 400, nil, nil},
		{"space before colon", "GET / HTTP/1.1\r\n" + host + "X-A : 1\r\n\r\n", 400, nil, nil},
		{"tab before colon", "GET / HTTP/1.1\r\n" + host + "Content-Length\t: 1\r\n\r\nx", 400, nil, nil},
		{"no colon", "GET / HTTP/1.1\r\n" + host + "X-A\r\n\r\n", 400, nil, nil},
		{"empty name", "GET / HTTP/1.1\r\n" + host + ": 1\r\n\r\n", 400, nil, nil},
		{"bad name char", "GET / HTTP/1.1\r\n" + host + "X(A): 1\r\n\r\n", 400, nil, nil},
		{"non-ASCII name", "GET / HTTP/1.1\r\n" + host + "X-\xc3\xa9: 1\r\n\r\n", 400, nil, nil},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400, nil, nil},
		{"two Hosts", "GET / HTTP/1.1\r\n" + host + host + "\r\n", 400, nil, nil},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, nil, nil},
		{"unsupported expectation", "POST / HTTP/1.1\r\n" + host + "Expect: teapot\r\n\r\n", 417, nil, nil},

		// rejected: request line
		{"bad method token", "GE(T / HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"method with colon", "bla:rgh / HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"double space", "GET  / HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"trailing space", "GET / HTTP/1.1 \r\n" + host + "\r\n", 400, nil, nil},
		{"no version", "GET /\r\n" + host + "\r\n", 400, nil, nil},
		{"lower-case version", "GET / http/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"version 111", "GET / HTTP/111\r\n" + host + "\r\n", 400, nil, nil},
		{"version 1.1x", "GET / HTTP/1.1x\r\n" + host + "\r\n", 400, nil, nil},
		{"FTP version", "GET / FTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"HTTP/2.0", "GET / HTTP/2.0\r\n" + host + "\r\n", 505, nil, nil},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n" + host + "\r\n", 505, nil, nil},
		{"relative target", "GET foo/bar HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"asterisk non-OPTIONS", "GET * HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"authority non-CONNECT", "GET example.com:443 HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"CONNECT origin-form", "CONNECT /x HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"bad authority", "PUT s://]ufd/: HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"absolute bad host", "GET http://]x/ HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"absolute userinfo", "GET http://u:p@h/ HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"absolute other scheme", "GET ftp://h/ HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"fragment", "GET /a#b HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"quote in target", "GET /a\"b HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"CTL in target", "GET /a\x01 HTTP/1.1\r\n" + host + "\r\n", 400, nil, nil},
		{"empty line only", "\r\n\r\n", 400, nil, nil},

		// rejected: chunked framing
		{"chunk size not hex", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, nil, nil},
		{"chunk size minus", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400, nil, nil},
		{"chunk size plus", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400, nil, nil},
		{"chunk size 0x", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400, nil, nil},
		{"chunk size empty", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n\r\n", 400, nil, nil},
		{"chunk line over limit", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1;x=" + strings.Repeat("a", maxChunkLine) + "\r\nx\r\n0\r\n\r\n", 400, nil, nil},
		{"chunk size overflow", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", 400, nil, nil},
		{"chunk size OWS no ext", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0 \r\n\r\n", 400, nil, nil},
		{"chunk data too long", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400, nil, nil},
		{"chunk missing CRLF", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n", 400, nil, nil},
		{"chunk bare LF", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400, nil, nil},
		{"chunk data bare CR", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n", 400, nil, nil},
		{"chunk ext ctl", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n", 400, nil, nil},
		{"trailer obs-fold", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n 2\r\n\r\n", 400, nil, nil},
		{"trailer bare LF", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n", 400, nil, nil},

		// limits (line 100, 6 fields, field 50 bytes)
		{"request line at limit", "GET /" + strings.Repeat("a", 100-len("GET / HTTP/1.1")) + " HTTP/1.1\r\n" + host + "\r\n", 0, []string{""}, nil},
		{"request line over limit", "GET /" + strings.Repeat("a", 101-len("GET / HTTP/1.1")) + " HTTP/1.1\r\n" + host + "\r\n", 414, nil, nil},
		{"request line unterminated", "GET /" + strings.Repeat("a", 200), 414, nil, nil},
		{"field at limit", "GET / HTTP/1.1\r\n" + host + "X: " + strings.Repeat("v", 47) + "\r\n\r\n", 0, []string{""}, nil},
		{"field over limit", "GET / HTTP/1.1\r\n" + host + "X: " + strings.Repeat("v", 48) + "\r\n\r\n", 431, nil, nil},
		{"field unterminated", "GET / HTTP/1.1\r\n" + host + "X: " + strings.Repeat("v", 200), 431, nil, nil},
		{"fields at limit", "GET / HTTP/1.1\r\n" + host + strings.Repeat("X: 1\r\n", 5) + "\r\n", 0, []string{""}, nil},
		{"too many fields", "GET / HTTP/1.1\r\n" + host + strings.Repeat("X: 1\r\n", 6) + "\r\n", 431, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{0, 7, 1} {
				p := decode(t, testConfig(), tc.raw, step)
				if p.status != tc.status {
					t.Fatalf("step %d: status %d, want %d", step, p.status, tc.status)
				}
				if tc.status != 0 {
					continue
				}
				if strings.Join(p.bodies, "|") != strings.Join(tc.bodies, "|") {
					t.Fatalf("step %d: bodies %q, want %q", step, p.bodies, tc.bodies)
				}
				if tc.check != nil {
					tc.check(t, p)
				}
			}
		})
	}
}

func TestHeaderMap(t *testing.T) {
	raw := "GET / HTTP/1.1\r\n" + host + "X_Under: 1\r\n\r\n"
	for _, tc := range []struct {
		mode   string
		status int
		kept   bool
	}{{"drop", 0, false}, {"refuse", 400, false}, {"dangerous", 0, true}} {
		cfg := testConfig()
		cfg.HeaderMap = tc.mode
		p := decode(t, cfg, raw, 0)
		if p.status != tc.status {
			t.Fatalf("%s: status %d", tc.mode, p.status)
		}
		if tc.status == 0 && (p.reqs[0].Header.Get("X_under") != "") != tc.kept {
			t.Fatalf("%s: header %v", tc.mode, p.reqs[0].Header)
		}
	}
}

// TestParserLimitsDefault: limit 0 means 8190 for the line and the field.
func TestParserLimitsDefault(t *testing.T) {
	cfg := config.Default()
	cfg.LimitRequestLine, cfg.LimitRequestFieldSize = 0, 0
	ok := "GET /" + strings.Repeat("a", 8190-len("GET / HTTP/1.1")) + " HTTP/1.1\r\n" + host + "\r\n"
	if p := decode(t, cfg, ok, 0); p.status != 0 {
		t.Fatalf("8190-byte line refused: %d", p.status)
	}
	long := "GET /" + strings.Repeat("a", 8191-len("GET / HTTP/1.1")) + " HTTP/1.1\r\n" + host + "\r\n"
	if p := decode(t, cfg, long, 0); p.status != 414 {
		t.Fatalf("8191-byte line: %d, want 414", p.status)
	}
}

// TestFieldSizeAboveDefault: limit_request_field_size may be raised past
// 8190 (large cookies), unlike limit_request_line.
func TestFieldSizeAboveDefault(t *testing.T) {
	cfg := config.Default()
	cfg.LimitRequestFieldSize = 20000
	big := "GET / HTTP/1.1\r\n" + host + "Cookie: " + strings.Repeat("c", 15000) + "\r\n\r\n"
	if p := decode(t, cfg, big, 0); p.status != 0 {
		t.Fatalf("15000-byte field with limit 20000: %d", p.status)
	}
	cfg.LimitRequestFieldSize = 0
	if p := decode(t, cfg, big, 0); p.status != 431 {
		t.Fatalf("limit 0 (8190): %d, want 431", p.status)
	}
}
