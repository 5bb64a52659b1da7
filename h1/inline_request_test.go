package h1

import (
	"fmt"
	"strings"
	"testing"
)

// inlineNext parses one bodiless request from raw and returns InlineRequest's
// result for it.
func inlineNext(t *testing.T, p *Parser, raw string) (path, host, agent string, hdr map[string][]string, ptr any) {
	t.Helper()
	buf := []byte(raw)
	ev, n, _, err := p.Next(buf, 0)
	if ev != Head || err != nil || n != len(buf) {
		t.Fatalf("Next: %v %d %v", ev, n, err)
	}
	r, err := p.InlineRequest("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if ev, _, _, _ := p.Next(nil, 0); ev != BodyEnd {
		t.Fatalf("want BodyEnd, got %v", ev)
	}
	for i := range buf {
		buf[i] = 'X' // the caller's buffer is reused too
	}
	return r.URL.Path, r.Host, r.Header.Get("User-Agent"), r.Header, r
}

// TestInlineRequestKeepsStrings: InlineRequest reuses the Request and its
// Header map, but the strings and header value slices a handler got stay
// as they were after later requests, across chunk boundaries of its
// buffers.
func TestInlineRequestKeepsStrings(t *testing.T) {
	p := (&Server{}).NewParser()
	type kept struct {
		path, host, agent string
		vals              map[string][]string // copy of the map: its value slices
	}
	var all []kept
	var first any
	long := strings.Repeat("a", 3000) // three of these overflow a 4 KiB chunk
	for i := range 40 {
		path := fmt.Sprintf("/p%d", i)
		if i%7 == 3 {
			path += "/" + long
		}
		var extra strings.Builder
		for j := range i % 5 * 20 { // up to 80 fields: overflows a 64-value chunk
			fmt.Fprintf(&extra, "X-F%d: v%d-%d\r\n", j, i, j)
		}
		raw := "GET " + path + " HTTP/1.1\r\nHost: h" + fmt.Sprint(i) + "\r\nUser-Agent: ua" + fmt.Sprint(i) + "\r\n" + extra.String() + "\r\n"
		gotPath, host, agent, hdr, ptr := inlineNext(t, p, raw)
		if i == 0 {
			first = ptr
		} else if ptr != first {
			t.Fatalf("request %d: InlineRequest did not reuse the Request", i)
		}
		if gotPath != path || host != "h"+fmt.Sprint(i) || agent != "ua"+fmt.Sprint(i) {
			t.Fatalf("request %d: got %q %q %q", i, gotPath, host, agent)
		}
		vals := make(map[string][]string, len(hdr))
		for k, v := range hdr {
			vals[k] = v
		}
		all = append(all, kept{path, host, agent, vals})
	}
	for i, k := range all {
		if !strings.HasPrefix(k.path, fmt.Sprintf("/p%d", i)) || k.host != "h"+fmt.Sprint(i) {
			t.Errorf("request %d: kept strings changed: %q %q", i, k.path[:min(len(k.path), 10)], k.host)
		}
		if got := k.vals["User-Agent"]; len(got) != 1 || got[0] != "ua"+fmt.Sprint(i) {
			t.Errorf("request %d: kept value slice changed: User-Agent %q", i, got)
		}
		for j := range i % 5 * 20 {
			if got := k.vals[fmt.Sprintf("X-F%d", j)]; len(got) != 1 || got[0] != fmt.Sprintf("v%d-%d", i, j) {
				t.Fatalf("request %d: kept field X-F%d = %q", i, j, got)
			}
		}
	}
}
