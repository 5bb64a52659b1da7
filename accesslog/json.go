package accesslog

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends one JSON object describing the request. Keys are
// fixed; string values are escaped by appendJSONString; time is RFC 3339
// with milliseconds.
func appendJSON(b []byte, r *http.Request, e *entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.start.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, '"')
	b = appendJSONField(b, "remote_addr", remoteHost(r.RemoteAddr))
	b = appendJSONField(b, "method", r.Method)
	b = appendJSONField(b, "uri", requestURI(r))
	b = appendJSONField(b, "path", r.URL.Path)
	b = appendJSONField(b, "query", r.URL.RawQuery)
	b = appendJSONField(b, "proto", r.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration_us":`...)
	b = strconv.AppendInt(b, int64(e.dur/time.Microsecond), 10)
	b = appendJSONField(b, "referer", first(r.Header["Referer"]))
	b = appendJSONField(b, "user_agent", first(r.Header["User-Agent"]))
	b = appendJSONField(b, "request_id", e.rid)
	if e.queue >= 0 {
		b = append(b, `,"queue_us":`...)
		b = strconv.AppendInt(b, int64(e.queue/time.Microsecond), 10)
	}
	b = append(b, `,"pid":`...)
	b = append(b, pidAtom[1:len(pidAtom)-1]...)
	return append(b, '}')
}

func appendJSONField(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD (so every
// line is valid JSON whatever bytes a client sent), and U+2028/U+2029
// escaped for readers that treat them as line ends.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
