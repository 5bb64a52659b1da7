package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/multiserve/multiserve/config"
)

// framing is how one parser split a byte stream into requests: the end
// offset and body of every request it accepted whole, and how it stopped.
type framing struct {
	ends     []int    // stream offset just past each complete request
	bodies   []string // decoded body of each complete request
	rejected bool     // stopped on an error (a server answers 4xx and closes)
	err      error    // that error, for the failure message
}

// h1Framing runs data through h1's Parser in one piece, as evloop would.
func h1Framing(cfg *config.Config, data []byte) framing {
	p := (&Server{Config: cfg}).NewParser()
	defer p.Release()
	var f framing
	var body []byte
	off := 0
	for {
		ev, n, chunk, err := p.Next(data[off:], 0)
		off += n
		if err != nil {
			f.rejected, f.err = true, err
			return f
		}
		switch ev {
		case NeedMore:
			return f
		case Head:
			if _, err := p.Request(context.Background(), "192.0.2.1:1"); err != nil {
				f.rejected, f.err = true, err
				return f
			}
			body = body[:0]
		case Body:
			body = append(body, chunk...)
		case BodyEnd:
			f.ends = append(f.ends, off)
			f.bodies = append(f.bodies, string(body))
		}
	}
}

// countingReader counts the bytes bufio pulled from the stream, so the
// offset of a request boundary is count - Buffered().
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// stdFraming runs data through net/http's server-side reading: ReadRequest
// on a bufio.Reader, then the whole body, request after request.
func stdFraming(data []byte) framing {
	cr := &countingReader{r: bytes.NewReader(data)}
	br := bufio.NewReader(cr)
	var f framing
	for {
		if _, err := br.Peek(1); err != nil {
			return f // clean end of stream
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			f.rejected, f.err = !isTruncation(err), err
			return f
		}
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			f.rejected, f.err = !isTruncation(err), err
			return f
		}
		f.ends = append(f.ends, cr.n-br.Buffered())
		f.bodies = append(f.bodies, string(body))
	}
}

// isTruncation reports an error that only means "the stream ended inside
// a message": net/http would wait for more bytes, like h1's NeedMore.
func isTruncation(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// FuzzDifferential runs h1's parser and net/http's request reader on the
// same bytes and fails on the disagreements that enable request
// smuggling, i.e. when the two would put a message boundary in different
// places:
//
//   - both accept request i but it ends at different offsets or carries a
//     different body (a length/framing disagreement);
//   - h1 accepts a complete request i that net/http reads as still
//     incomplete (net/http would take the following bytes as body), or
//     net/http accepts a complete request i that h1 is still waiting on
//     (h1 would take the following request as body);
//   - h1 accepts a complete request i that net/http rejects: a front end
//     built like net/http would not have forwarded it, but one that
//     repairs it might frame it differently, so h1 must not be more
//     lenient than net/http about any message it frames.
//
// Benign, not failures: h1 rejecting (400/413/414/431/501/505 and close)
// a message net/http accepts — h1 is stricter (CL+TE, obs-fold, bare LF,
// underscores under header_map=refuse, limits, absolute-form checks...)
// and the connection closes, so no later byte is read as a request; and
// both stopping inside the same incomplete message.
//
// Known leniencies of h1 that are not framing: an empty line before a
// request line is skipped (RFC 9112 §2.2) where net/http rejects the
// request line; these are filtered by lenientOK.
func FuzzDifferential(f *testing.F) {
	fuzzSeeds(f)
	for _, s := range []string{
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nX: y\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	cfg := config.Default()
	cfg.LimitRequestBody = 0
	f.Fuzz(func(t *testing.T, data []byte) {
		h, s := h1Framing(cfg, data), stdFraming(data)
		common := min(len(h.ends), len(s.ends))
		for i := range common {
			if h.ends[i] != s.ends[i] || h.bodies[i] != s.bodies[i] {
				t.Fatalf("request %d framed differently: h1 ends at %d body %q, net/http at %d body %q\ninput %q",
					i, h.ends[i], h.bodies[i], s.ends[i], s.bodies[i], data)
			}
		}
		switch {
		case len(h.ends) > common && !s.rejected:
			t.Fatalf("request %d: h1 complete at %d, net/http still reading it\ninput %q", common, h.ends[common], data)
		case len(h.ends) > common && !lenientOK(data, s.ends, common):
			t.Fatalf("request %d: h1 accepts (ends at %d), net/http rejects: %v\ninput %q", common, h.ends[common], s.err, data)
		case len(s.ends) > common && !h.rejected:
			t.Fatalf("request %d: net/http complete at %d, h1 still reading it\ninput %q", common, s.ends[common], data)
		}
	})
}

// lenientOK reports that net/http rejected request i only because an
// empty line precedes its request line, which h1 skips (RFC 9112 §2.2).
func lenientOK(data []byte, stdEnds []int, i int) bool {
	start := 0
	if i > 0 {
		start = stdEnds[i-1]
	}
	return bytes.HasPrefix(data[start:], []byte("\r\n"))
}
