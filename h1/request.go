package h1

import (
	"context"
	"net/http"
	"net/textproto"
	"net/url"
	"unsafe"
)

// Request builds the *http.Request for the head the last Next returned
// (call it right after the Head event, before the bytes are discarded).
// All strings are copied out of the caller's buffer in one allocation.
// Body is http.NoBody when the request has none and nil otherwise: the
// caller supplies a streaming reader. RemoteAddr is set from remoteAddr.
func (p *Parser) Request(ctx context.Context, remoteAddr string) (*http.Request, error) {
	h := &p.h
	raw := string(headSpan(h))
	base := unsafe.StringData(raw)
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(base), spanOffset(h, b))), len(b))
	}
	target := str(h.target)
	u, err := parseTarget(h.method, target)
	if err != nil {
		return nil, errBadRequest("invalid request target")
	}
	r := &http.Request{
		Method:     internMethod(h.method, str),
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: h.minor,
		Header:     make(http.Header, len(h.fields)),
		RequestURI: target,
		RemoteAddr: remoteAddr,
		Close:      !p.KeepAlive(),
	}
	if h.minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	vals := make([]string, len(h.fields))
	for i, f := range h.fields {
		k := headerKey(f.name, str)
		if k == "Host" {
			continue // promoted to r.Host, as net/http does
		}
		vals[i] = str(f.value)
		if old, ok := r.Header[k]; ok {
			r.Header[k] = append(old, vals[i])
		} else {
			r.Header[k] = vals[i : i+1 : i+1]
		}
	}
	r.Host = u.Host
	if r.Host == "" {
		r.Host = str(h.host)
	}
	r.ContentLength = p.ContentLength()
	if h.chunked {
		r.TransferEncoding = []string{"chunked"}
	}
	if r.ContentLength == 0 {
		r.Body = http.NoBody
	}
	return r.WithContext(ctx), nil
}

// headSpan returns the slice of the caller's buffer from the method to the
// end of the last field value.
func headSpan(h *head) []byte {
	end := h.target
	if n := len(h.fields); n > 0 {
		end = h.fields[n-1].value
		if len(end) == 0 {
			end = h.fields[n-1].name
		}
	}
	off := spanOffset(h, end) + len(end)
	return unsafe.Slice(unsafe.SliceData(h.method), off)
}

// spanOffset is the distance from the start of the request line to b; both
// are slices of the same buffer.
func spanOffset(h *head, b []byte) int {
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(h.method))))
}

func parseTarget(method []byte, target string) (*url.URL, error) {
	if string(method) == "CONNECT" {
		return &url.URL{Host: target}, nil
	}
	if target == "*" {
		return &url.URL{Path: "*"}, nil
	}
	return url.ParseRequestURI(target)
}

var commonMethods = []string{"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

func internMethod(m []byte, str func([]byte) string) string {
	for _, c := range commonMethods {
		if string(m) == c {
			return c
		}
	}
	return str(m)
}

// commonKeys maps the spellings clients use (canonical and lower case) to
// the canonical key, so the usual headers cost no allocation.
var commonKeys = map[string]string{}

func init() {
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Dnt",
		"Expect", "Host", "If-Modified-Since", "If-None-Match", "Origin", "Pragma", "Priority",
		"Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Sec-Fetch-Dest",
		"Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Te", "Trailer", "Transfer-Encoding",
		"Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "X-Forwarded-For",
		"X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
	} {
		commonKeys[k] = k
		commonKeys[lower(k)] = k
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func headerKey(name []byte, str func([]byte) string) string {
	if k, ok := commonKeys[string(name)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(str(name))
}
