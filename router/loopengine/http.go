package loopengine

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"unsafe"

	"github.com/sluicehq/sluice/router"
)

// This file is the engine's HTTP/1.1: the request heads it serves itself
// (and the ones it hands to the fast engine), the request it writes to an
// upstream, the response head it passes on and the framing of response
// bodies. It does no I/O.

// b2s returns b as a string without copying: valid while b is.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// reqHead is a request head the loop serves, parsed: slices into the
// client connection's buffer, valid until the request ends.
type reqHead struct {
	method, target []byte
	fields         []byte // the header lines, each ending in CRLF
	host           []byte
	conn           []byte // the Connection header's value
	cl             int    // Content-Length, 0 when absent
	close          bool   // Connection: close
}

// headEnd returns the length of the head at the start of b, through the
// blank line that ends it, or -1 when b does not hold a whole head yet.
func headEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

// parseRequest parses a request head (through its blank line). ok is
// false for a request the loop leaves to the fast engine: not HTTP/1.1, a
// target that is not a plain origin-form path (escapes, dot segments,
// empty segments, asterisk or absolute form), a body that is chunked,
// longer than maxBody or announced twice, Expect, Upgrade, a pin (whose
// lookup may wait on the store), no Host, folded or malformed lines.
// What the loop serves, the fast engine would serve the same way; what it
// does not, the fast engine serves or refuses as it always does.
func parseRequest(h []byte, maxBody int) (rh reqHead, ok bool) {
	line, rest, found := bytes.Cut(h, []byte("\r\n"))
	if !found {
		return rh, false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp+1 > len(line)-len(" HTTP/1.1") || !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return rh, false // "0 HTTP/1.1": the only space is the version's
	}
	rh.method, rh.target = line[:sp], line[sp+1:len(line)-len(" HTTP/1.1")]
	for _, c := range rh.method {
		if c < 'A' || c > 'Z' {
			return rh, false
		}
	}
	if !plainTarget(rh.target) {
		return rh, false
	}
	rh.fields = rest[:len(rest)-2] // without the blank line
	hosts, lengths := 0, 0
	for f := rh.fields; len(f) > 0; {
		i := bytes.IndexByte(f, '\n')
		if i < 1 || f[i-1] != '\r' {
			return rh, false
		}
		fl := f[:i-1]
		f = f[i+1:]
		colon := bytes.IndexByte(fl, ':')
		if colon <= 0 {
			return rh, false
		}
		name, value := fl[:colon], trimOWS(fl[colon+1:])
		for _, c := range name {
			if !isTokenChar(c) {
				return rh, false
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return rh, false
			}
		}
		switch {
		case equalFold(name, "Host"):
			hosts++
			rh.host = value
		case equalFold(name, "Content-Length"):
			lengths++
			n, err := strconv.Atoi(b2s(value))
			if err != nil || n < 0 || n > maxBody || value[0] == '+' {
				return rh, false
			}
			rh.cl = n
		case equalFold(name, "Connection"):
			if rh.conn != nil || router.HeaderHasToken(value, "upgrade") {
				return rh, false
			}
			rh.conn = value
			rh.close = router.HeaderHasToken(value, "close")
		case equalFold(name, "Transfer-Encoding"), equalFold(name, "Expect"), equalFold(name, "Upgrade"),
			equalFold(name, router.PinHeader):
			return rh, false
		case equalFold(name, "Cookie"):
			if bytes.Contains(value, []byte(router.PinCookie)) {
				return rh, false
			}
		}
	}
	if hosts != 1 || lengths > 1 || len(rh.host) == 0 {
		return rh, false
	}
	return rh, true
}

// plainTarget reports whether a request target is an origin-form path
// that needs no decoding or normalizing: it starts with '/', has no
// escapes, dot or empty segments, fragment or byte outside printable
// ASCII. Such a path is the same decoded as sent.
func plainTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	path := t
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		path = t[:i]
	}
	for i, c := range path {
		switch {
		case c <= ' ' || c >= 0x7f, c == '%', c == '#', c == '\\':
			return false
		case c == '/' && i > 0 && path[i-1] == '/':
			return false
		case c == '.' && path[i-1] == '/':
			return false
		}
	}
	for _, c := range t[len(path):] {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// path is the request's path, without the query.
func (rh *reqHead) path() []byte {
	if i := bytes.IndexByte(rh.target, '?'); i >= 0 {
		return rh.target[:i]
	}
	return rh.target
}

// field returns the value of the first header field name (any case) in
// fields, and the lines after it; ok false when there is none.
func field(fields []byte, name string) (value, rest []byte, ok bool) {
	for len(fields) > 0 {
		i := bytes.IndexByte(fields, '\n')
		if i < 0 {
			i = len(fields) - 1
		}
		fl := bytes.TrimSuffix(fields[:i+1], []byte("\r\n"))
		fields = fields[i+1:]
		if k, v, found := bytes.Cut(fl, []byte(":")); found && equalFold(k, name) {
			return trimOWS(v), fields, true
		}
	}
	return nil, nil, false
}

// appendRequest appends the request sent upstream: the request line (the
// target without the route's strip_prefix, n bytes), the client's header
// fields but the hop-by-hop ones (and those its Connection names) and the
// framing ones, X-Forwarded-For, -Host and -Proto as the other engines set
// them (the client's values only from a trusted peer, which also keeps its
// X-Real-IP), Content-Length, and the body.
func appendRequest(dst []byte, rh *reqHead, strip int, trusted bool, clientIP, body []byte) []byte {
	dst = append(dst, rh.method...)
	dst = append(dst, ' ')
	t := rh.target
	if strip > 0 {
		t = t[min(strip, len(rh.path())):]
		if len(t) == 0 || t[0] != '/' {
			dst = append(dst, '/')
		}
	}
	dst = append(dst, t...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	var xff, xfh, xfp []byte
	nxff := 0
	for f := rh.fields; len(f) > 0; {
		i := bytes.IndexByte(f, '\n')
		line := f[:i+1]
		f = f[i+1:]
		colon := bytes.IndexByte(line, ':')
		name, value := line[:colon], trimOWS(line[colon+1:len(line)-2])
		switch {
		case equalFold(name, "Content-Length"):
			continue
		case equalFold(name, "X-Forwarded-For"):
			if trusted {
				nxff++
				if nxff == 1 {
					xff = value
				} else {
					xff = append(append(append([]byte(nil), xff...), ", "...), value...)
				}
			}
			continue
		case equalFold(name, "X-Forwarded-Host"):
			if trusted && xfh == nil {
				xfh = value
			}
			continue
		case equalFold(name, "X-Forwarded-Proto"):
			if trusted && xfp == nil {
				xfp = value
			}
			continue
		case equalFold(name, "X-Real-Ip"):
			if !trusted {
				continue
			}
		}
		if router.IsHopHeaderFold(name) || len(rh.conn) > 0 && router.HeaderHasToken(rh.conn, b2s(name)) {
			continue
		}
		dst = append(dst, line...)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	if len(xff) > 0 {
		dst = append(dst, xff...)
		dst = append(dst, ", "...)
	}
	dst = append(dst, clientIP...)
	dst = append(dst, "\r\nX-Forwarded-Host: "...)
	if xfh != nil {
		dst = append(dst, xfh...)
	} else {
		dst = append(dst, rh.host...)
	}
	dst = append(dst, "\r\nX-Forwarded-Proto: "...)
	if xfp != nil {
		dst = append(dst, xfp...)
	} else {
		dst = append(dst, "http"...)
	}
	dst = append(dst, "\r\n"...)
	if len(body) > 0 || methodHasBody(rh.method) {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// methodHasBody reports whether a request without a body still says so
// (Content-Length: 0), as the other engines do for these methods.
func methodHasBody(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// respHead is an upstream's response head, parsed.
type respHead struct {
	status  int
	cl      int64 // Content-Length, -1 when absent
	chunked bool  // Transfer-Encoding ends in chunked
	keep    bool  // the upstream keeps the connection open after it
}

// errMalformed is an upstream response the engine cannot read.
var errMalformed = errors.New("malformed response head")

// parseResponse parses a response head (through its blank line).
func parseResponse(h []byte) (rs respHead, err error) {
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return rs, errMalformed
	}
	http10 := line[7] == '0'
	rs.status, err = strconv.Atoi(b2s(line[9:12]))
	if err != nil || rs.status < 100 || len(line) > 12 && line[12] != ' ' {
		return rs, errMalformed
	}
	rs.cl = -1
	rs.keep = !http10
	te := false
	for f := rest; len(f) > 2; {
		i := bytes.IndexByte(f, '\n')
		if i < 0 {
			return rs, errMalformed
		}
		fl := bytes.TrimSuffix(f[:i], []byte("\r"))
		f = f[i+1:]
		k, v, found := bytes.Cut(fl, []byte(":"))
		if !found {
			return rs, errMalformed
		}
		v = trimOWS(v)
		switch {
		case equalFold(k, "Content-Length"):
			n, err := strconv.ParseInt(b2s(v), 10, 64)
			if err != nil || n < 0 || rs.cl >= 0 && rs.cl != n {
				return rs, errMalformed
			}
			rs.cl = n
		case equalFold(k, "Transfer-Encoding"):
			te = true
			rs.chunked = lastToken(v, "chunked")
		case equalFold(k, "Connection"):
			if router.HeaderHasToken(v, "close") {
				rs.keep = false
			} else if http10 && router.HeaderHasToken(v, "keep-alive") {
				rs.keep = true
			}
		}
	}
	if te {
		rs.cl = -1 // Transfer-Encoding overrides Content-Length (RFC 9112 6.3)
		if !rs.chunked {
			rs.keep = false // delimited by the close
		}
	}
	return rs, nil
}

// bodyless reports whether a response to method has no body whatever its
// head says.
func (rs *respHead) bodyless(method []byte) bool {
	return string(method) == "HEAD" || rs.status < 200 || rs.status == 204 || rs.status == 304
}

// appendResponse appends the head passed to the client: the upstream's
// status line as HTTP/1.1, its fields but the hop-by-hop ones (and those
// its Connection names; Transfer-Encoding and Trailer stay, the body being
// passed through as framed), Connection: close when close.
func appendResponse(dst, h []byte, close bool) []byte {
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	dst = append(dst, "HTTP/1.1"...)
	dst = append(dst, line[8:]...)
	dst = append(dst, "\r\n"...)
	conn, _, _ := field(rest, "Connection")
	for f := rest; len(f) > 2; {
		i := bytes.IndexByte(f, '\n')
		l := f[:i+1]
		f = f[i+1:]
		k, _, _ := bytes.Cut(l, []byte(":"))
		switch {
		case equalFold(k, "Connection"), equalFold(k, "Keep-Alive"), equalFold(k, "Proxy-Connection"),
			equalFold(k, "Proxy-Authenticate"), equalFold(k, "Upgrade"), equalFold(k, "Te"):
			continue
		case len(conn) > 0 && router.HeaderHasToken(conn, b2s(k)) && !equalFold(k, "Transfer-Encoding"):
			continue
		}
		dst = append(dst, bytes.TrimSuffix(l, []byte("\r\n"))...)
		dst = append(dst, "\r\n"...)
	}
	if close {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// appendAnswer appends an answer of the router's, with Connection: close
// when close.
func appendAnswer(dst []byte, a *router.Answer, close bool) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(a.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(a.Status)...)
	dst = append(dst, "\r\n"...)
	for _, f := range a.Header {
		dst = append(dst, f.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(a.Body)), 10)
	dst = append(dst, "\r\n"...)
	if close {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, a.Body...)
}

// chunked follows a chunked body passed through as it is (trailers
// included) to find where it ends.
type chunked struct {
	state int   // one of the chunk* states
	left  int64 // data bytes left in the chunk (chunkData)
	size  int64 // the size line's value so far
	ext   bool  // past the size line's digits (an extension)
	hex   bool  // the size line has a digit
	cr    bool  // the line so far ends in a CR: a LF must follow
	colon bool  // the trailer line has its colon
	ws    bool  // whitespace after the size's digits: the line ends
	empty bool  // the trailer line so far is empty
	lines int   // size line bytes, bounded
}

const (
	chunkSize    = iota // in a size line
	chunkData           // in a chunk's data
	chunkDataEnd        // in the CRLF after a chunk's data
	chunkTrailer        // in the trailer section, after the last chunk
	chunkDone
)

var errChunk = errors.New("malformed chunked body")

// feed reads p, the body's next bytes: it returns how many belong to the
// body (all of p unless it ends in p) and whether it ended.
func (c *chunked) feed(p []byte) (n int, done bool, err error) {
	for n < len(p) {
		switch c.state {
		case chunkData:
			k := int(min(c.left, int64(len(p)-n)))
			n += k
			if c.left -= int64(k); c.left == 0 {
				c.state, c.left = chunkDataEnd, 2
			}
			continue
		case chunkDataEnd:
			if p[n] != "\r\n"[2-c.left] {
				return n, false, errChunk
			}
			if c.left--; c.left == 0 {
				c.state = chunkSize
			}
		case chunkSize:
			b := p[n]
			c.lines++
			switch {
			case c.lines > 4096, c.cr && b != '\n', b == '\n' && !c.cr:
				// A CR inside a size line ("1\r0\r\n"), or a line ending
				// in a bare LF: where it ends is read two ways (Go's
				// client refuses a bare LF); refused rather than passed on.
				return n, false, errChunk
			case b == '\n':
				if !c.hex { // an empty size line, or an extension alone: not a last chunk
					return n, false, errChunk
				}
				c.lines = 0
				if c.size == 0 {
					c.state, c.empty = chunkTrailer, true
				} else {
					c.state, c.left = chunkData, c.size
				}
				c.size, c.ext, c.hex, c.cr, c.ws = 0, false, false, false, false
			case b == '\r':
				c.cr = true
			case c.ext:
			case b == ';' && !c.ws:
				c.ext = true
			case b == ' ' || b == '\t':
				c.ws = true // trailing: only more of it may follow (Go's client reads no more)
			default:
				d := unhex(b)
				if d < 0 || c.ws || c.size > 1<<50 {
					return n, false, errChunk
				}
				c.size, c.hex = c.size<<4|int64(d), true
			}
		case chunkTrailer:
			// Trailer lines are header fields ending in CRLF (a name of
			// token characters, a colon, a value), the last one empty.
			switch b := p[n]; {
			case c.cr != (b == '\n'):
				return n, false, errChunk
			case b == '\n':
				if !c.empty && !c.colon {
					return n, false, errChunk
				}
				c.cr, c.colon = false, false
				if c.empty {
					c.state = chunkDone
					return n + 1, true, nil
				}
				c.empty = true
			case b == '\r':
				c.cr = true
			case c.colon:
				if b < ' ' && b != '\t' || b == 0x7f {
					return n, false, errChunk // a control byte in a trailer's value
				}
				c.empty = false
			case b == ':' && !c.empty:
				c.colon = true
			case isTokenChar(b):
				c.empty = false
			default:
				return n, false, errChunk
			}
		}
		n++
	}
	return n, false, nil
}

func unhex(b byte) int {
	switch {
	case '0' <= b && b <= '9':
		return int(b - '0')
	case 'a' <= b && b <= 'f':
		return int(b-'a') + 10
	case 'A' <= b && b <= 'F':
		return int(b-'A') + 10
	}
	return -1
}

// trimOWS trims spaces and tabs around v.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// equalFold reports whether b is s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}

// lastToken reports whether the comma-separated list v ends in token.
func lastToken(v []byte, token string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return equalFold(trimOWS(v), token)
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}
