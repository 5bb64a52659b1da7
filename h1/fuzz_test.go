package h1

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
		"GET http://[::1]:80/x HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
}

// ambiguous reports whether an accepted head carries framing a proxy in
// front could read differently: both CL and TE, several CL, bare CR/LF.
func ambiguous(head string) string {
	lower := strings.ToLower(head)
	switch {
	case strings.Contains(lower, "\ncontent-length:") && strings.Contains(lower, "\ntransfer-encoding:"):
		return "CL and TE"
	case strings.Count(lower, "\ncontent-length:") > 1:
		return "several CL"
	case strings.Count(head, "\n") != strings.Count(head, "\r\n"):
		return "bare LF"
	case strings.Count(head, "\r") != strings.Count(head, "\r\n"):
		return "bare CR"
	case strings.Contains(head, "\n ") || strings.Contains(head, "\n\t"):
		return "obs-fold"
	case strings.ContainsRune(head, 0):
		return "NUL"
	}
	return ""
}

// FuzzParseRequest: the parser never panics, decodes a stream the same way
// however the bytes are split, and never accepts an ambiguous head.
func FuzzParseRequest(f *testing.F) {
	fuzzSeeds(f)
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := decode(t, cfg, string(data), 0)
		for _, step := range []int{1, 5} {
			split := decode(t, cfg, string(data), step)
			if (split.status == 0) != (whole.status == 0) || len(split.reqs) != len(whole.reqs) || !slices.Equal(split.bodies, whole.bodies) {
				t.Fatalf("step %d: status %d reqs %d bodies %q; whole: status %d reqs %d bodies %q",
					step, split.status, len(split.reqs), split.bodies, whole.status, len(whole.reqs), whole.bodies)
			}
		}
		for _, h := range whole.heads {
			if why := ambiguous(h); why != "" {
				t.Fatalf("accepted an ambiguous head (%s): %q", why, h)
			}
		}
	})
}

// FuzzChunked: the chunked decoder never panics, is split-independent, and
// an accepted body is exactly the concatenated chunk data.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"000a;ext=\"q\"\r\n0123456789\r\n0\r\nX-T: v\r\n\r\n",
		"5\r\nhello\r\n0 \r\n\r\n",
		"ffffffffffffffffff\r\n",
		"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	cfg := testConfig()
	cfg.LimitRequestBody = 0
	const head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := decode(t, cfg, head+string(data), 0)
		split := decode(t, cfg, head+string(data), 1)
		if (split.status == 0) != (whole.status == 0) || !slices.Equal(split.bodies, whole.bodies) {
			t.Fatalf("split-dependent: %d %q vs %d %q", split.status, split.bodies, whole.status, whole.bodies)
		}
		if len(whole.bodies) == 0 {
			return
		}
		if got, want := whole.bodies[0], refChunked(data); want == nil || got != string(want) {
			t.Fatalf("accepted body %q, reference decoder: %q", got, want)
		}
	})
}

// refChunked is a deliberately simple, non-incremental reading of the
// chunk sizes (extensions and trailers skipped) for cross-checking.
func refChunked(b []byte) []byte {
	var out []byte
	for {
		eol := bytes.Index(b, []byte("\r\n"))
		if eol < 0 {
			return nil
		}
		line := b[:eol]
		if i := bytes.IndexAny(line, "; \t"); i >= 0 {
			line = line[:i]
		}
		var n int
		for _, c := range line {
			n = n<<4 | int(unhex(c))
		}
		b = b[eol+2:]
		if n == 0 {
			if out == nil {
				out = []byte{}
			}
			return out
		}
		if len(b) < n+2 {
			return nil
		}
		out = append(out, b[:n]...)
		b = b[n+2:]
	}
}
