package accesslog

import (
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"strings"
)

// kind identifies one compiled piece of a format.
type kind uint8

const (
	kLiteral     kind = iota // arg is the text
	kRemoteHost              // h
	kDash                    // l
	kUser                    // u
	kTime                    // t
	kRequestLine             // r
	kMethod                  // m
	kPath                    // U
	kQuery                   // q
	kProto                   // H
	kStatus                  // s
	kBytes                   // B
	kBytesCLF                // b
	kReferer                 // f
	kUserAgent               // a
	kSeconds                 // T
	kMicros                  // D
	kMillis                  // M
	kDecimalSecs             // L
	kPID                     // p
	kReqHeader               // {Name}i, arg = canonical name
	kRespHeader              // {Name}o, arg = canonical name
	kRemotePort              // {REMOTE_PORT}e
	kRequestURI              // {RAW_URI}e, {REQUEST_URI}e
	kQueue                   // Q: queue time in microseconds (X-Request-Start), "-" without it
	kRequestID               // {X-Request-Id}i also works; rid is the short name
)

// item is one compiled piece: a literal or an atom.
type item struct {
	kind kind
	arg  string
}

var simpleAtoms = map[string]kind{
	"h": kRemoteHost, "l": kDash, "u": kUser, "t": kTime, "r": kRequestLine,
	"m": kMethod, "U": kPath, "q": kQuery, "H": kProto, "s": kStatus,
	"B": kBytes, "b": kBytesCLF, "f": kReferer, "a": kUserAgent, "T": kSeconds,
	"D": kMicros, "M": kMillis, "L": kDecimalSecs, "p": kPID,
	"Q": kQueue, "rid": kRequestID,
}

// cgiVars maps gunicorn's WSGI-environ names for {VAR}e to what a Go
// request has. Other names are read from the process environment once, at
// New: a worker's environment does not change while it serves.
var cgiVars = map[string]kind{
	"REMOTE_ADDR": kRemoteHost, "REMOTE_PORT": kRemotePort, "REQUEST_METHOD": kMethod,
	"PATH_INFO": kPath, "QUERY_STRING": kQuery, "SERVER_PROTOCOL": kProto,
	"RAW_URI": kRequestURI, "REQUEST_URI": kRequestURI,
}

// compile parses a gunicorn access_log_format (Python %-style atoms such
// as %(h)s, %({X-Real-IP}i)s; %% is a literal %) into items, merging
// adjacent literal text.
func compile(format string) ([]item, error) {
	var items []item
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			items = append(items, item{kind: kLiteral, arg: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(format); {
		c := format[i]
		switch {
		case c != '%' || i+1 == len(format):
			lit.WriteByte(c)
			i++
		case format[i+1] == '%':
			lit.WriteByte('%')
			i += 2
		case format[i+1] != '(':
			lit.WriteByte(c) // a lone % is text, as gunicorn users expect
			i++
		default:
			it, n, err := parseAtom(format[i:])
			if err != nil {
				return nil, fmt.Errorf("accesslog: %w (at byte %d of format %q)", err, i, format)
			}
			flush()
			items = append(items, it)
			i += n
		}
	}
	flush()
	return items, nil
}

// parseAtom parses "%(name)s" at the start of s, returning the item and
// the bytes consumed.
func parseAtom(s string) (item, int, error) {
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return item{}, 0, errors.New("unterminated atom " + s)
	}
	name := s[2:end]
	if end+1 >= len(s) || (s[end+1] != 's' && s[end+1] != 'd') {
		return item{}, 0, fmt.Errorf("atom %%(%s) must be followed by s, as in %%(%s)s", name, name)
	}
	it, err := atom(name)
	return it, end + 2, err
}

func atom(name string) (item, error) {
	if k, ok := simpleAtoms[name]; ok {
		return item{kind: k}, nil
	}
	if len(name) > 3 && name[0] == '{' && name[len(name)-2] == '}' {
		arg := name[1 : len(name)-2]
		switch name[len(name)-1] {
		case 'i':
			return item{kind: kReqHeader, arg: textproto.CanonicalMIMEHeaderKey(arg)}, nil
		case 'o':
			return item{kind: kRespHeader, arg: textproto.CanonicalMIMEHeaderKey(arg)}, nil
		case 'e':
			return envAtom(arg), nil
		}
	}
	return item{}, fmt.Errorf("unknown atom %%(%s)s (known: h l u t r m U q H s B b f a T D M L p Q rid {Header}i {Header}o {VAR}e)", name)
}

func envAtom(name string) item {
	if k, ok := cgiVars[name]; ok {
		return item{kind: k}
	}
	if h, ok := strings.CutPrefix(name, "HTTP_"); ok {
		return item{kind: kReqHeader, arg: textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(h, "_", "-"))}
	}
	v := os.Getenv(name)
	if v == "" {
		v = "-"
	}
	return item{kind: kLiteral, arg: string(appendEscaped(nil, v))}
}
