package h1

import "bytes"

type chunkState uint8

const (
	chunkSize     chunkState = iota // expecting a chunk-size line
	chunkData                       // inside chunk data
	chunkDataCRLF                   // expecting the CRLF after chunk data
	chunkTrailer                    // expecting the trailer section
)

// chunkedDecoder decodes a chunked body incrementally (RFC 9112 7.1). Like
// the head parser it only consumes complete syntactic units, so the caller
// keeps unconsumed bytes and offers them again with more appended.
type chunkedDecoder struct {
	state    chunkState
	left     int64 // data bytes left in the current chunk
	trailers []field
	sc       headScanner // trailer section lines
}

func (d *chunkedDecoder) reset() {
	d.state, d.left = chunkSize, 0
	d.trailers = d.trailers[:0]
	d.sc.reset()
}

// step consumes at most one unit from b: a size line, up to max data bytes
// (returned in data, a slice of b), a data CRLF, or the whole trailer
// section (then done is true and d.trailers holds its fields, slices of b).
// n == 0 with no error means more bytes are needed.
func (d *chunkedDecoder) step(b []byte, max int, lim *limits) (n int, data []byte, done bool, err error) {
	switch d.state {
	case chunkSize:
		return d.sizeLine(b)
	case chunkData:
		k := int64(len(b))
		if k > d.left {
			k = d.left
		}
		if max > 0 && k > int64(max) {
			k = int64(max)
		}
		d.left -= k
		if d.left == 0 {
			d.state = chunkDataCRLF
		}
		return int(k), b[:k], false, nil
	case chunkDataCRLF:
		if len(b) < 2 {
			if len(b) == 1 && b[0] != '\r' {
				return 0, nil, false, errBadRequest("missing CRLF after chunk data")
			}
			return 0, nil, false, nil
		}
		if b[0] != '\r' || b[1] != '\n' {
			return 0, nil, false, errBadRequest("missing CRLF after chunk data")
		}
		d.state = chunkSize
		return 2, nil, false, nil
	default:
		return d.trailerSection(b, lim)
	}
}

// sizeLine parses chunk-size [ BWS chunk-ext ] CRLF. Leading zeros and upper
// case hex are fine; signs, a bare "0 " with no extension, bare CR/LF and
// sizes beyond 2^60 are not.
func (d *chunkedDecoder) sizeLine(b []byte) (int, []byte, bool, error) {
	// The LF is looked for within the limit only, so a line is refused at
	// the same length whether it arrives in one read or in many.
	eol := bytes.IndexByte(b[:min(len(b), maxChunkLine+1)], '\n')
	if eol < 0 {
		if len(b) > maxChunkLine {
			return 0, nil, false, errBadRequest("chunk size line too long")
		}
		return 0, nil, false, nil
	}
	if eol == 0 || b[eol-1] != '\r' {
		return 0, nil, false, errBadRequest("bare LF in chunk size line")
	}
	line := b[:eol-1]
	var size int64
	i := 0
	for ; i < len(line) && isHex(line[i]); i++ {
		if size > 1<<56 {
			return 0, nil, false, errBadRequest("chunk size too large")
		}
		size = size<<4 | int64(unhex(line[i]))
	}
	if i == 0 {
		return 0, nil, false, errBadRequest("invalid chunk size")
	}
	if err := checkChunkExt(line[i:]); err != nil {
		return 0, nil, false, err
	}
	if size == 0 {
		d.state = chunkTrailer
	} else {
		d.state, d.left = chunkData, size
	}
	return eol + 1, nil, false, nil
}

// checkChunkExt accepts *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
// loosely: it must start with ";" after optional whitespace and contain no
// control characters (quoted strings are allowed through).
func checkChunkExt(ext []byte) error {
	if len(ext) == 0 {
		return nil
	}
	ext = trimOWS(ext)
	if len(ext) == 0 || ext[0] != ';' {
		return errBadRequest("invalid chunk extension")
	}
	for _, c := range ext {
		if !valueChar[c] {
			return errBadRequest("invalid character in chunk extension")
		}
	}
	return nil
}

func (d *chunkedDecoder) trailerSection(b []byte, lim *limits) (int, []byte, bool, error) {
	// The head's scanner, with the request line counted as seen: a
	// trailer section has none, so an immediately empty line ends it and
	// every line is held to the field limits.
	if d.sc.lines == 0 && d.sc.pos == 0 {
		d.sc.lines = 1
	}
	end, err := d.sc.scan(b, lim)
	if err != nil || end == 0 {
		return 0, nil, false, err
	}
	d.trailers = d.trailers[:0]
	rest := b[:end-2]
	for len(rest) > 0 {
		eol := bytes.IndexByte(rest, '\n')
		name, value, under, err := parseFieldLine(rest[:eol-1])
		if err != nil {
			return 0, nil, false, err
		}
		rest = rest[eol+1:]
		if forbiddenTrailer(name) || (lim.headerMap != headerPass && under) {
			continue // must not be merged into the request (RFC 9110 6.5.1); dropping is safe
		}
		d.trailers = append(d.trailers, field{name, value})
	}
	return end, nil, true, nil
}

var forbiddenTrailers = []string{
	"Content-Length", "Transfer-Encoding", "Host", "Connection", "Keep-Alive", "Upgrade",
	"Trailer", "TE", "Expect", "Authorization", "Cookie", "Set-Cookie", "Content-Type",
	"Content-Encoding", "Content-Range", "Cache-Control", "Proxy-Authorization",
}

func forbiddenTrailer(name []byte) bool {
	for _, f := range forbiddenTrailers {
		if asciiEqualFold(name, f) {
			return true
		}
	}
	return false
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
