package h1

import (
	"bytes"
	"encoding/binary"
)

// field is one header (or trailer) field; name and value are slices into the
// caller's buffer, valid only until that buffer is reused.
type field struct {
	name, value []byte
}

// head is a parsed request head. Every []byte is a slice into the buffer the
// head was parsed from; nothing is copied, so parsing allocates nothing once
// the fields slice has grown to the connection's typical size.
type head struct {
	method, target []byte
	minor          int // HTTP/1.minor
	fields         []field

	// Derived by checkFraming.
	contentLength  int64 // -1: none
	chunked        bool
	connClose      bool // Connection: close
	connKeepAlive  bool // Connection: keep-alive
	expectContinue bool
	host           []byte
	hasHost        bool
	hostIdx        int // index of the Host field in fields, -1: none
}

func (h *head) reset() {
	h.method, h.target, h.host = nil, nil, nil
	h.minor = 0
	h.fields = h.fields[:0]
	h.contentLength, h.hostIdx = -1, -1
	h.chunked, h.connClose, h.connKeepAlive, h.expectContinue, h.hasHost = false, false, false, false, false
}

// limits are the resolved limit_request_* settings.
type limits struct {
	line      int   // max request-line bytes, CRLF excluded
	fields    int   // max header fields
	fieldSize int   // max bytes of one field line, CRLF excluded
	body      int64 // max body bytes; 0 = unlimited
	headerMap headerMap
}

type headerMap uint8

const (
	headerDrop headerMap = iota
	headerRefuse
	headerPass
)

const (
	maxLineCap   = 8190    // limit_request_line 0 means "unlimited up to 8190"
	maxFieldsCap = 32768   // limit_request_fields 0
	maxFieldCap  = 1 << 20 // limit_request_field_size may exceed 8190 (big cookies), not this
	maxChunkLine = 4096    // chunk-size line incl. extensions
)

// headScanner finds the end of a request head incrementally, line by line,
// enforcing the per-line limits as bytes arrive, so a client trickling bytes
// costs linear work and an over-long line is refused before it is complete.
type headScanner struct {
	pos   int     // start of the first line not yet seen complete
	lines int     // complete lines seen (request line included)
	ends  []int32 // offset just past each complete line's LF
}

func (s *headScanner) reset() {
	s.pos, s.lines, s.ends = 0, 0, s.ends[:0]
}

// scan looks for the empty line ending the head in b (which must start at
// the same byte as on previous calls). It returns the head length (through
// the final CRLF) or 0 when more bytes are needed.
func (s *headScanner) scan(b []byte, lim *limits) (int, error) {
	for {
		rest := b[s.pos:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return 0, s.checkOpenLine(len(rest), lim)
		}
		// Limits first, as checkOpenLine would have seen them had the line
		// arrived in pieces: the verdict must not depend on packet sizes.
		if err := s.checkLine(i-1, lim); err != nil {
			return 0, err
		}
		if i == 0 || rest[i-1] != '\r' {
			return 0, errBadRequest("bare LF")
		}
		lineLen := i - 1
		s.pos += i + 1
		if lineLen == 0 {
			if s.lines == 0 {
				return 0, errBadRequest("empty request line")
			}
			return s.pos, nil
		}
		s.ends = append(s.ends, int32(s.pos))
		s.lines++
	}
}

func (s *headScanner) checkOpenLine(n int, lim *limits) error {
	// n bytes of a line without its LF: at most limit + CR may be pending.
	if n > 0 {
		return s.checkLine(n-1, lim)
	}
	return nil
}

func (s *headScanner) checkLine(n int, lim *limits) error {
	if s.lines == 0 {
		if n > lim.line {
			return &Error{Status: 414, Msg: "request line too long"}
		}
		return nil
	}
	if n > lim.fieldSize {
		return &Error{Status: 431, Msg: "header field too large"}
	}
	if n > 0 && s.lines > lim.fields {
		return &Error{Status: 431, Msg: "too many header fields"}
	}
	return nil
}

// parseHead parses a complete head b into h; ends are the line ends the
// headScanner recorded, so lines are not searched for twice.
func parseHead(b []byte, ends []int32, h *head, lim *limits) error {
	h.reset()
	if err := parseRequestLine(b[:ends[0]-2], h); err != nil {
		return err
	}
	for i := 1; i < len(ends); i++ {
		line := b[ends[i-1] : ends[i]-2]
		name, value, under, err := parseFieldLine(line)
		if err != nil {
			return err
		}
		if under {
			switch lim.headerMap {
			case headerDrop:
				continue
			case headerRefuse:
				return errBadRequest("underscore in header name")
			}
		}
		h.fields = append(h.fields, field{name, value})
	}
	return checkFraming(h, lim)
}

func parseRequestLine(line []byte, h *head) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errBadRequest("malformed request line")
	}
	h.method = line[:sp1]
	if !isToken(h.method) {
		return errBadRequest("invalid method")
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return errBadRequest("malformed request line")
	}
	h.target = rest[:sp2]
	minor, err := parseVersion(rest[sp2+1:])
	if err != nil {
		return err
	}
	h.minor = minor
	return checkTarget(h.method, h.target)
}

// parseVersion accepts exactly HTTP/1.DIGIT; another major version is 505.
func parseVersion(v []byte) (int, error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, errBadRequest("invalid HTTP version")
	}
	if v[5] != '1' {
		return 0, &Error{Status: 505, Msg: "HTTP version not supported"}
	}
	return int(v[7] - '0'), nil
}

// checkTarget accepts origin-form for every method, absolute-form (http or
// https with a well-formed authority), authority-form only for CONNECT and
// asterisk-form only for OPTIONS (RFC 9112 3.2).
func checkTarget(method, t []byte) error {
	for _, c := range t {
		if !targetChar[c] {
			return errBadRequest("invalid character in request target")
		}
	}
	switch {
	case string(method) == "CONNECT":
		if !validAuthority(t, true) {
			return errBadRequest("invalid CONNECT target")
		}
	case t[0] == '/':
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return errBadRequest("asterisk-form target for non-OPTIONS")
		}
	default:
		auth, ok := absoluteAuthority(t)
		if !ok || !validAuthority(auth, false) {
			return errBadRequest("invalid request target")
		}
	}
	return nil
}

// absoluteAuthority returns the authority of an http(s) absolute-form target.
func absoluteAuthority(t []byte) ([]byte, bool) {
	var rest []byte
	switch {
	case len(t) > 7 && asciiEqualFold(t[:7], "http://"):
		rest = t[7:]
	case len(t) > 8 && asciiEqualFold(t[:8], "https://"):
		rest = t[8:]
	default:
		return nil, false
	}
	end := len(rest)
	if i := bytes.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	return rest[:end], true
}

// validAuthority checks host[:port] with a reg-name, IPv4 or bracketed IPv6
// host; userinfo is refused (RFC 9110 4.2.4). needPort is for CONNECT.
func validAuthority(a []byte, needPort bool) bool {
	if len(a) == 0 {
		return false
	}
	host, port := a, []byte(nil)
	if a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 {
			return false
		}
		for _, c := range a[1:end] {
			if !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
		host, port = a[:end+1], a[end+1:]
		if len(port) > 0 {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
		} else {
			port = nil
		}
		if end == 1 {
			return false
		}
	} else if i := bytes.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
		if len(host) == 0 {
			return false
		}
		for _, c := range host {
			if !regNameChar[c] {
				return false
			}
		}
	} else {
		for _, c := range host {
			if !regNameChar[c] {
				return false
			}
		}
	}
	if port == nil {
		return !needPort
	}
	for _, c := range port {
		if !isDigit(c) {
			return false
		}
	}
	return !needPort || len(port) > 0
}

// parseFieldLine splits "name: value" enforcing RFC 9112 5: token name, no
// whitespace before the colon, no leading whitespace (obs-fold), and a value
// of VCHAR / obs-text / SP / HTAB only (no NUL, bare CR or other CTLs).
// under reports an underscore in the name (header_map).
func parseFieldLine(line []byte) (name, value []byte, under bool, err error) {
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		if c == ':' {
			break
		}
		if !tokenChar[c] {
			if i == 0 && (c == ' ' || c == '\t') {
				return nil, nil, false, errBadRequest("obs-fold")
			}
			return nil, nil, false, errBadRequest("invalid header field name")
		}
		under = under || c == '_'
	}
	if i == 0 || i == len(line) {
		return nil, nil, false, errBadRequest("malformed header field")
	}
	v := line[i+1:]
	if !validValue(v) {
		return nil, nil, false, errBadRequest("invalid character in header field value")
	}
	return line[:i], trimOWS(v), under, nil
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// validValue checks field-value bytes eight at a time: a word with no byte
// below 0x20 and no DEL is fine (obs-text >= 0x80 is allowed); a suspect
// word is checked bytewise (HTAB is allowed).
func validValue(v []byte) bool {
	for len(v) >= 8 {
		x := binary.LittleEndian.Uint64(v)
		lt20 := (x - ones*0x20) & ^x & highs
		d := x ^ (ones * 0x7f)
		del := (d - ones) & ^d & highs
		if lt20|del != 0 {
			for _, c := range v[:8] {
				if !valueChar[c] {
					return false
				}
			}
		}
		v = v[8:]
	}
	for _, c := range v {
		if !valueChar[c] {
			return false
		}
	}
	return true
}

func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// checkFraming derives the body framing and connection options from the
// fields and refuses every ambiguity (RFC 9112 6.1, 6.3; docs/http-behaviour.md).
func checkFraming(h *head, lim *limits) error {
	var teSeen bool
	for i := range h.fields {
		f := &h.fields[i]
		switch {
		case asciiEqualFold(f.name, "Content-Length"):
			if h.contentLength >= 0 {
				return errBadRequest("several Content-Length fields")
			}
			n, ok := parseContentLength(f.value)
			if !ok {
				return errBadRequest("malformed Content-Length")
			}
			h.contentLength = n
		case asciiEqualFold(f.name, "Transfer-Encoding"):
			if err := addTransferCodings(h, f.value); err != nil {
				return err
			}
			teSeen = true
		case asciiEqualFold(f.name, "Host"):
			if h.hasHost {
				return errBadRequest("several Host fields")
			}
			if len(f.value) > 0 && !validAuthority(f.value, false) {
				return errBadRequest("invalid Host")
			}
			h.hasHost, h.host, h.hostIdx = true, f.value, i
		case asciiEqualFold(f.name, "Connection"):
			parseConnection(h, f.value)
		case asciiEqualFold(f.name, "Expect"):
			if !asciiEqualFold(f.value, "100-continue") {
				return &Error{Status: 417, Msg: "unsupported expectation"}
			}
			h.expectContinue = h.minor >= 1
		}
	}
	if teSeen {
		if h.minor == 0 {
			return errBadRequest("Transfer-Encoding in HTTP/1.0")
		}
		if !h.chunked {
			return errBadRequest("final transfer coding is not chunked")
		}
		if h.contentLength >= 0 {
			return errBadRequest("both Content-Length and Transfer-Encoding")
		}
	}
	if h.minor >= 1 && !h.hasHost {
		return errBadRequest("missing Host")
	}
	if lim.body > 0 && h.contentLength > lim.body {
		return &Error{Status: 413, Msg: "request body too large"}
	}
	return nil
}

// addTransferCodings accepts only a lone "chunked" coding across all
// Transfer-Encoding fields: chunked twice or after another coding is
// refused, and other codings are not implemented (no decoder for them).
func addTransferCodings(h *head, v []byte) error {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = trimOWS(v[:i]), v[i+1:]
		} else {
			item, v = trimOWS(v), nil
		}
		if len(item) == 0 {
			continue
		}
		if h.chunked {
			return errBadRequest("transfer coding after chunked")
		}
		if !asciiEqualFold(item, "chunked") {
			if !isToken(item) {
				return errBadRequest("malformed Transfer-Encoding")
			}
			return &Error{Status: 501, Msg: "unsupported transfer coding"}
		}
		h.chunked = true
	}
	return nil
}

// parseContentLength accepts 1*DIGIT only (no sign, no list, no spaces
// inside), bounded well below int64 overflow.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func parseConnection(h *head, v []byte) {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = trimOWS(v[:i]), v[i+1:]
		} else {
			item, v = trimOWS(v), nil
		}
		switch {
		case asciiEqualFold(item, "close"):
			h.connClose = true
		case asciiEqualFold(item, "keep-alive"):
			h.connKeepAlive = true
		}
	}
}

// asciiEqualFold compares b with the ASCII string s case-insensitively
// without allocating.
func asciiEqualFold[T ~string | ~[]byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar, valueChar, targetChar, regNameChar [256]bool

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || isDigit(b)
		tokenChar[c] = alnum || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0
		// field-value: VCHAR, obs-text, SP, HTAB; never NUL, CR, LF, other CTLs or DEL.
		valueChar[c] = (b >= 0x20 && b != 0x7f) || b == '\t'
		// request-target: visible ASCII except the characters that never
		// appear unescaped in a URI sent by a client ('#' starts a fragment).
		targetChar[c] = b > 0x20 && b < 0x7f && bytes.IndexByte([]byte(`"#<>`), b) < 0
		// reg-name / IPv4: unreserved, pct-encoded, sub-delims.
		regNameChar[c] = alnum || bytes.IndexByte([]byte("-._~%!$&'()*+,;="), b) >= 0
	}
}
