package h1

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"testing"
)

// browserRequest is what Chrome sends for a page over HTTP/1.1.
const browserRequest = "GET /articles/2024/index.html?utm_source=news&id=42 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"Cache-Control: max-age=0\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n" +
	"sec-ch-ua-mobile: ?0\r\n" +
	"sec-ch-ua-platform: \"Linux\"\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n" +
	"Sec-Fetch-Site: none\r\n" +
	"Sec-Fetch-Mode: navigate\r\n" +
	"Sec-Fetch-User: ?1\r\n" +
	"Sec-Fetch-Dest: document\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n" +
	"Cookie: session=abc123def456; theme=dark; _ga=GA1.2.1234567890.1700000000\r\n" +
	"\r\n"

// BenchmarkParseBrowserRequest: the head parse itself (request line,
// fields, framing checks), as a keep-alive connection repeats it.
func BenchmarkParseBrowserRequest(b *testing.B) {
	p := (&Server{}).NewParser()
	buf := []byte(browserRequest)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		ev, n, _, err := p.Next(buf, 0)
		if ev != Head || n != len(buf) || err != nil {
			b.Fatalf("ev %v n %d err %v", ev, n, err)
		}
		if ev, _, _, _ = p.Next(buf[n:], 0); ev != BodyEnd {
			b.Fatalf("ev %v", ev)
		}
	}
}

// BenchmarkBuildRequest: the head parse plus the *http.Request handed to
// the handler (strings copied out of the buffer in one allocation).
func BenchmarkBuildRequest(b *testing.B) {
	p := (&Server{}).NewParser()
	buf := []byte(browserRequest)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, n, _, _ := p.Next(buf, 0)
		if _, err := p.Request(ctx, "127.0.0.1:1234"); err != nil {
			b.Fatal(err)
		}
		p.Next(buf[n:], 0)
	}
}

// BenchmarkNetHTTPReadRequest is the baseline: net/http's parser on the
// same bytes (it builds the *http.Request as part of parsing).
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	r := bytes.NewReader(nil)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset([]byte(browserRequest))
		br.Reset(r)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

// discardSink is a Sink that drops everything (the event loop's buffer
// without the socket).
type discardSink struct{ n int64 }

func (d *discardSink) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }
func (d *discardSink) Flush() error                { return nil }

// BenchmarkEventLoopHello is evloop's inline hot path for wrk's request:
// Next, Request, NewResponse, Handle (apps.Hello's handler), Release.
func BenchmarkEventLoopHello(b *testing.B) {
	body := []byte("Hello, World!")
	ctype, clen := []string{"text/plain; charset=utf-8"}, []string{"13"}
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = ctype // as apps.Hello does
		w.Header()["Content-Length"] = clen
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})}
	p := srv.NewParser()
	buf := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
	ctx := context.Background()
	sink := &discardSink{}
	b.ReportAllocs()
	for b.Loop() {
		_, n, _, _ := p.Next(buf, 0)
		req, err := p.Request(ctx, "127.0.0.1:1234")
		if err != nil {
			b.Fatal(err)
		}
		p.Next(buf[n:], 0)
		w := NewResponse(req, sink, p.KeepAlive(), false)
		srv.Handle(w, req)
		w.Release()
	}
}
