package h1

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSplitOriginFormMatchesNetURL: the fast path for origin-form targets
// gives exactly the URL url.ParseRequestURI gives, and declines every
// target it could not split the same way.
func TestSplitOriginFormMatchesNetURL(t *testing.T) {
	targets := []string{
		"/", "/a/b.html", "/a?", "/a??", "/a?b?", "/a?x=1&y=2", "/?", "//x", "/a//b/../c",
		"/%41", "/a%2Fb", "/a b", "/a+b", "/$&+,;=:@~_-.", "/a?q=%zz", "/a?q=a/b?c",
		"*", "http://h/x", "/a\x7f", "/a?\x7f", "/é", "/a?é",
	}
	for c := 0x21; c < 0x7f; c++ {
		targets = append(targets, "/a"+string(rune(c))+"b", "/a?x"+string(rune(c))+"y")
	}
	for _, tg := range targets {
		var got url.URL
		if !splitOriginForm(tg, &got) {
			continue
		}
		want, err := url.ParseRequestURI(tg)
		if err != nil {
			t.Errorf("%q: fast path accepted, ParseRequestURI: %v", tg, err)
			continue
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("%q: fast path %#v, ParseRequestURI %#v", tg, got, *want)
		}
	}
}

// TestRequestContext: the request carries the context it was built with,
// also when the context changes between requests on one parser.
func TestRequestContext(t *testing.T) {
	type key struct{}
	// a context whose type is not comparable must not be cached (== panics)
	type unhashable struct {
		context.Context
		s []int
	}
	odd := unhashable{context.Background(), nil}
	p := (&Server{}).NewParser()
	defer p.Release()
	buf := []byte("GET /x?y HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n")
	for i, ctx := range []context.Context{
		context.Background(),
		context.WithValue(context.Background(), key{}, 1),
		context.WithValue(context.Background(), key{}, 2),
		context.WithValue(context.Background(), key{}, 2),
		odd, odd,
	} {
		if ev, n, _, err := p.Next(buf, 0); ev != Head || n != len(buf) || err != nil {
			t.Fatalf("Next: %v %d %v", ev, n, err)
		}
		r, err := p.Request(ctx, "1.2.3.4:5")
		if err != nil {
			t.Fatal(err)
		}
		if r.Context().Value(key{}) != ctx.Value(key{}) || r.Context().Done() != ctx.Done() {
			t.Errorf("request %d: wrong context", i)
		}
		if r.URL.Path != "/x" || r.URL.RawQuery != "y" || r.Host != "h" || r.Header.Get("A") != "1" {
			t.Errorf("request %d: %+v", i, r)
		}
		p.Next(buf[len(buf):], 0) // BodyEnd
	}
}

// TestRequestsKept: Requests cut from the parser's slabs (newBlock) are
// each a block of their own: a handler that keeps every Request of a
// connection, past several slabs and a parser Reset, sees each unchanged.
func TestRequestsKept(t *testing.T) {
	p := (&Server{}).NewParser()
	defer p.Release()
	var kept []*http.Request
	for i := range 3*blockSlab + 1 {
		if i == blockSlab {
			p.Reset() // a new connection on this parser
		}
		buf := []byte(fmt.Sprintf("GET /r%d HTTP/1.1\r\nHost: h%d\r\nX-I: %d\r\n\r\n", i, i, i))
		if ev, n, _, err := p.Next(buf, 0); ev != Head || n != len(buf) || err != nil {
			t.Fatalf("Next: %v %d %v", ev, n, err)
		}
		r, err := p.Request(context.Background(), "1.2.3.4:5")
		if err != nil {
			t.Fatal(err)
		}
		p.Next(buf[len(buf):], 0) // BodyEnd
		clear(buf)                // the caller's buffer is reused
		kept = append(kept, r)
	}
	seen := map[*http.Request]bool{}
	for i, r := range kept {
		if seen[r] || r.URL.Path != fmt.Sprintf("/r%d", i) || r.Host != fmt.Sprintf("h%d", i) ||
			r.Header.Get("X-I") != fmt.Sprint(i) || r.Method != "GET" {
			t.Fatalf("request %d changed or shared: %p %s %s %v", i, r, r.URL.Path, r.Host, r.Header)
		}
		seen[r] = true
	}
}

// TestAppendHeaderMapSanitises: CR, LF and NUL in a handler's header value
// become spaces (no response splitting), wherever they are.
func TestAppendHeaderMapSanitises(t *testing.T) {
	h := http.Header{"X-A": {"ok", "a\r\nEvil: 1", "\nb\x00"}}
	b, _ := appendHeaderMap(nil, h)
	got := string(b)
	want := "X-A: ok\r\nX-A: a  Evil: 1\r\nX-A:  b \r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestDateLine: the cached Date line is the current second's.
func TestDateLine(t *testing.T) {
	for range 3 {
		before := time.Now().UTC().Truncate(time.Second)
		line := string(appendDate(nil))
		after := time.Now().UTC()
		d, err := http.ParseTime(strings.TrimSuffix(strings.TrimPrefix(line, "Date: "), "\r\n"))
		if err != nil || d.Before(before) || d.After(after) {
			t.Fatalf("Date line %q outside [%v, %v]: %v", line, before, after, err)
		}
	}
}
