package loopengine

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/router"
)

// head builds a request or response head from its lines, each ended by
// CRLF, with the blank line after them.
func head(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n")
}

func TestParseRequestServes(t *testing.T) {
	tests := []struct {
		name   string
		head   []byte
		method string
		target string
		path   string
		host   string
		cl     int
		close  bool
	}{
		{"get with host", head("GET /a/b HTTP/1.1", "Host: example.com"),
			"GET", "/a/b", "/a/b", "example.com", 0, false},
		{"root", head("GET / HTTP/1.1", "host:  h:8080 "),
			"GET", "/", "/", "h:8080", 0, false},
		{"query string", head("GET /search?q=a%20b&next=../x//y HTTP/1.1", "Host: h"),
			"GET", "/search?q=a%20b&next=../x//y", "/search", "h", 0, false},
		{"empty query", head("GET /x? HTTP/1.1", "Host: h"),
			"GET", "/x?", "/x", "h", 0, false},
		{"post with body", head("POST /orders HTTP/1.1", "Host: h", "Content-Length: 11", "Content-Type: text/plain"),
			"POST", "/orders", "/orders", "h", 11, false},
		{"post at the body bound", head("PUT /o HTTP/1.1", "Host: h", "content-length: 65536"),
			"PUT", "/o", "/o", "h", router.MaxRetryBodyBytes, false},
		{"connection close", head("GET /c HTTP/1.1", "Host: h", "Connection: keep-alive, Close"),
			"GET", "/c", "/c", "h", 0, true},
		{"connection keep-alive", head("GET /c HTTP/1.1", "Host: h", "Connection: keep-alive"),
			"GET", "/c", "/c", "h", 0, false},
		{"other cookies", head("GET /c HTTP/1.1", "Host: h", "Cookie: session=1; theme=dark"),
			"GET", "/c", "/c", "h", 0, false},
		{"tab in value", head("GET /c HTTP/1.1", "Host: h", "X-A: a\tb"),
			"GET", "/c", "/c", "h", 0, false},
		{"dot inside a segment", head("GET /v1.2/file.txt HTTP/1.1", "Host: h"),
			"GET", "/v1.2/file.txt", "/v1.2/file.txt", "h", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rh, ok := parseRequest(tt.head, router.MaxRetryBodyBytes)
			if !ok {
				t.Fatalf("parseRequest(%q) handed it off; want it served", tt.head)
			}
			if string(rh.method) != tt.method || string(rh.target) != tt.target || string(rh.path()) != tt.path ||
				string(rh.host) != tt.host || rh.cl != tt.cl || rh.close != tt.close {
				t.Errorf("parseRequest = method %q target %q path %q host %q cl %d close %v; want %q %q %q %q %d %v",
					rh.method, rh.target, rh.path(), rh.host, rh.cl, rh.close,
					tt.method, tt.target, tt.path, tt.host, tt.cl, tt.close)
			}
			if !bytes.HasSuffix(rh.fields, []byte("\r\n")) || bytes.HasSuffix(rh.fields, []byte("\r\n\r\n")) {
				t.Errorf("fields %q: want the header lines without the blank line", rh.fields)
			}
		})
	}
}

func TestParseRequestHandsOff(t *testing.T) {
	tests := []struct {
		name string
		head []byte
	}{
		{"http/1.0", head("GET / HTTP/1.0", "Host: h")},
		{"http/2 preface", head("PRI * HTTP/2.0")},
		{"chunked", head("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked")},
		{"transfer-encoding and length", head("POST / HTTP/1.1", "Host: h", "Content-Length: 5", "Transfer-Encoding: chunked")},
		{"body past the bound", head("POST / HTTP/1.1", "Host: h", "Content-Length: 65537")},
		{"two lengths", head("POST / HTTP/1.1", "Host: h", "Content-Length: 5", "Content-Length: 5")},
		{"plus sign length", head("POST / HTTP/1.1", "Host: h", "Content-Length: +5")},
		{"negative length", head("POST / HTTP/1.1", "Host: h", "Content-Length: -1")},
		{"list length", head("POST / HTTP/1.1", "Host: h", "Content-Length: 5, 5")},
		{"empty length", head("POST / HTTP/1.1", "Host: h", "Content-Length: ")},
		{"expect", head("POST / HTTP/1.1", "Host: h", "Content-Length: 5", "Expect: 100-continue")},
		{"upgrade", head("GET /ws HTTP/1.1", "Host: h", "Upgrade: websocket")},
		{"connection upgrade", head("GET /ws HTTP/1.1", "Host: h", "Connection: keep-alive, Upgrade")},
		{"two connection fields", head("GET / HTTP/1.1", "Host: h", "Connection: keep-alive", "Connection: close")},
		{"pin header", head("GET / HTTP/1.1", "Host: h", "X-Sluice-Pin: tok")},
		{"pin header any case", head("GET / HTTP/1.1", "Host: h", "x-sluice-pin: tok")},
		{"pin cookie", head("GET / HTTP/1.1", "Host: h", "Cookie: a=1; sluice_pin=tok")},
		{"missing host", head("GET / HTTP/1.1", "Accept: */*")},
		{"empty host", head("GET / HTTP/1.1", "Host: ")},
		{"two hosts", head("GET / HTTP/1.1", "Host: a", "Host: b")},
		{"escaped slash", head("GET /a%2Fb HTTP/1.1", "Host: h")},
		{"escape", head("GET /%61 HTTP/1.1", "Host: h")},
		{"dot-dot segment", head("GET /a/../b HTTP/1.1", "Host: h")},
		{"trailing dot-dot", head("GET /a/.. HTTP/1.1", "Host: h")},
		{"empty segment", head("GET //x HTTP/1.1", "Host: h")},
		{"dot segment", head("GET /./ HTTP/1.1", "Host: h")},
		{"backslash", head("GET /a\\b HTTP/1.1", "Host: h")},
		{"fragment", head("GET /a#b HTTP/1.1", "Host: h")},
		{"absolute form", head("GET http://h/ HTTP/1.1", "Host: h")},
		{"asterisk", head("OPTIONS * HTTP/1.1", "Host: h")},
		{"empty target", head("GET  HTTP/1.1", "Host: h")},
		{"space in target", head("GET /a b HTTP/1.1", "Host: h")},
		{"non-ascii in path", head("GET /caf\xc3\xa9 HTTP/1.1", "Host: h")},
		{"obs-fold", head("GET / HTTP/1.1", "Host: h", "X-A: a", " folded")},
		{"obs-fold with colon", head("GET / HTTP/1.1", "Host: h", "X-A: a", "\tb: c")},
		{"bare LF lines", []byte("GET / HTTP/1.1\nHost: h\n\n")},
		{"bare LF in fields", []byte("GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n")},
		{"lowercase method", head("get / HTTP/1.1", "Host: h")},
		{"no method", head(" / HTTP/1.1", "Host: h")},
		{"control char in value", head("GET / HTTP/1.1", "Host: h", "X-A: a\x01b")},
		{"DEL in value", head("GET / HTTP/1.1", "Host: h", "X-A: a\x7fb")},
		{"space before colon", head("GET / HTTP/1.1", "Host : h")},
		{"no colon", head("GET / HTTP/1.1", "Host: h", "garbage")},
		{"empty name", head("GET / HTTP/1.1", "Host: h", ": v")},
		{"lowercase version", head("GET / http/1.1", "Host: h")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rh, ok := parseRequest(tt.head, router.MaxRetryBodyBytes); ok {
				t.Errorf("parseRequest(%q) = served (%q %q host %q cl %d); want handed off", tt.head, rh.method, rh.target, rh.host, rh.cl)
			}
		})
	}
}

// chunkedBodies are valid chunked bodies: what feed must find the end of.
var chunkedBodies = []struct{ name, body string }{
	{"one chunk", "5\r\nhello\r\n0\r\n\r\n"},
	{"last chunk only", "0\r\n\r\n"},
	{"several chunks", "3\r\nabc\r\n1\r\nd\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"},
	{"uppercase hex", "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"},
	{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n"},
	{"extensions", "5;name=value\r\nhello\r\n3;a=\"b;c\"\r\nabc\r\n0;last\r\n\r\n"},
	{"trailers", "4\r\nwiki\r\n0\r\nX-Sum: 1234\r\nX-Other: a, b\r\n\r\n"},
	{"CRLF in data", "4\r\n\r\n\r\n\r\n0\r\n\r\n"},
	{"zeros in data", "3\r\n0\r\n\r\n0\r\n\r\n"},
}

// nextResponse is what follows a body on a kept-alive connection: not the
// body's.
const nextResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// feedAll feeds pieces to a new chunked reader in order; it returns the
// bytes that belonged to the body and the index of the piece where done
// was reported (-1: never), failing t on an error or bytes consumed after
// done.
func feedAll(t *testing.T, pieces [][]byte) (consumed, donePiece int) {
	t.Helper()
	var c chunked
	donePiece = -1
	for i, p := range pieces {
		n, done, err := c.feed(p)
		if err != nil {
			t.Fatalf("piece %d %q: %v", i, p, err)
		}
		if n < 0 || n > len(p) {
			t.Fatalf("piece %d %q: n = %d", i, p, n)
		}
		consumed += n
		if done {
			return consumed, i
		}
		if n != len(p) {
			t.Fatalf("piece %d %q: took %d of %d bytes without the end", i, p, n, len(p))
		}
	}
	return consumed, donePiece
}

func TestChunkedFeedEveryTwoPieceSplit(t *testing.T) {
	for _, b := range chunkedBodies {
		t.Run(b.name, func(t *testing.T) {
			stream := []byte(b.body + nextResponse)
			for split := 0; split <= len(stream); split++ {
				consumed, at := feedAll(t, [][]byte{stream[:split], stream[split:]})
				if at < 0 {
					t.Fatalf("split at %d: end never reported", split)
				}
				if consumed != len(b.body) {
					t.Fatalf("split at %d: consumed %d bytes; the body has %d", split, consumed, len(b.body))
				}
				wantPiece := 1 // the body ends in the second piece
				if split >= len(b.body) {
					wantPiece = 0
				}
				if at != wantPiece {
					t.Fatalf("split at %d: end reported in piece %d; want %d", split, at, wantPiece)
				}
			}
		})
	}
}

func TestChunkedFeedRandomPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, b := range chunkedBodies {
		t.Run(b.name, func(t *testing.T) {
			stream := []byte(b.body + nextResponse)
			for round := range 200 {
				var pieces [][]byte
				for rest := stream; len(rest) > 0; {
					k := min(1+rng.IntN(7), len(rest))
					pieces = append(pieces, rest[:k])
					rest = rest[k:]
				}
				consumed, at := feedAll(t, pieces)
				if at < 0 || consumed != len(b.body) {
					t.Fatalf("round %d: consumed %d (end in piece %d); the body has %d", round, consumed, at, len(b.body))
				}
			}
		})
	}
}

func TestChunkedFeedRejectsMalformed(t *testing.T) {
	tests := []struct{ name, body string }{
		{"non-hex size", "zz\r\nhello\r\n0\r\n\r\n"},
		{"hex prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
		{"negative size", "-5\r\nhello\r\n0\r\n\r\n"},
		{"missing CRLF after data", "5\r\nhelloXX0\r\n\r\n"},
		{"LF only after data", "5\r\nhello\n0\r\n\r\n"},
		{"empty size line", "\n5\r\nhello\r\n0\r\n\r\n"},
		{"empty size line with CR", "5\r\nhello\r\n\r\n\r\n"},
		{"extension without size", "5\r\nhello\r\n;ext\r\n\r\n"},
		{"size line too long", "5;" + strings.Repeat("a", 5000) + "\r\nhello\r\n0\r\n\r\n"},
		{"size too big", "fffffffffffffffffff\r\n"},
		{"CR inside the size", "1\r0\r\n" + strings.Repeat("a", 16) + "\r\n0\r\n\r\n"},
		{"CR inside an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n"},
		{"bare LF ending a size line", "5\nhello\r\n0\r\n\r\n"},
		{"bare LF ending the last chunk", "0\n\r\n"},
		{"bare LF ending a trailer", "0\r\nX: y\n\r\n"},
		{"CR inside a trailer", "0\r\nX: y\rz\r\n\r\n"},
		{"trailer without a colon", "0\r\n0\r\n\r\n"},
		{"trailer with an empty name", "0\r\n: y\r\n\r\n"},
		{"folded trailer", "0\r\nX: y\r\n z\r\n\r\n"},
		{"digits after whitespace", "0 0\r\n\r\n"},
		{"whitespace before an extension", "0 ;x\r\n\r\n"},
		{"control byte in a trailer", "0\r\nX: \x7f\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, then byte by byte: the error must come either way.
			var c chunked
			if _, done, err := c.feed([]byte(tt.body)); err == nil {
				t.Errorf("feed(%q) = done %v, no error; want an error", tt.body, done)
			}
			c = chunked{}
			var err error
			for i := 0; i < len(tt.body) && err == nil; i++ {
				var done bool
				if _, done, err = c.feed([]byte{tt.body[i]}); done {
					t.Fatalf("byte by byte: done at %d without an error", i)
				}
			}
			if err == nil {
				t.Errorf("byte by byte: no error")
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name    string
		head    []byte
		status  int
		cl      int64
		chunked bool
		keep    bool
	}{
		{"length", head("HTTP/1.1 200 OK", "Content-Length: 5"), 200, 5, false, true},
		{"no reason", head("HTTP/1.1 204"), 204, -1, false, true},
		{"empty reason", head("HTTP/1.1 404 "), 404, -1, false, true},
		{"close-delimited", head("HTTP/1.1 200 OK"), 200, -1, false, true},
		{"chunked", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), 200, -1, true, true},
		{"gzip then chunked", head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, Chunked"), 200, -1, true, true},
		{"chunked overrides length", head("HTTP/1.1 200 OK", "Content-Length: 10", "Transfer-Encoding: chunked"), 200, -1, true, true},
		{"te without chunked", head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"), 200, -1, false, false},
		{"chunked not last", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip"), 200, -1, false, false},
		{"connection close", head("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 0"), 200, 0, false, false},
		{"connection close in list", head("HTTP/1.1 200 OK", "connection: Foo, CLOSE", "Content-Length: 0"), 200, 0, false, false},
		{"http/1.0 closes", head("HTTP/1.0 200 OK", "Content-Length: 2"), 200, 2, false, false},
		{"http/1.0 keep-alive", head("HTTP/1.0 200 OK", "Connection: Keep-Alive", "Content-Length: 2"), 200, 2, false, true},
		{"http/1.1 keep-alive token", head("HTTP/1.1 200 OK", "Connection: keep-alive", "Content-Length: 2"), 200, 2, false, true},
		{"same length twice", head("HTTP/1.1 200 OK", "Content-Length: 3", "Content-Length: 3"), 200, 3, false, true},
		{"continue", head("HTTP/1.1 100 Continue"), 100, -1, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := parseResponse(tt.head)
			if err != nil {
				t.Fatalf("parseResponse(%q): %v", tt.head, err)
			}
			want := respHead{status: tt.status, cl: tt.cl, chunked: tt.chunked, keep: tt.keep}
			if rs != want {
				t.Errorf("parseResponse(%q) = %+v; want %+v", tt.head, rs, want)
			}
		})
	}
}

func TestParseResponseRejectsMalformed(t *testing.T) {
	for name, h := range map[string][]byte{
		"http/2":               head("HTTP/2 200 OK"),
		"not http":             head("ICY 200 OK"),
		"letters in status":    head("HTTP/1.1 2OO OK"),
		"status below 100":     head("HTTP/1.1 099 Odd"),
		"four-digit status":    head("HTTP/1.1 2000 OK"),
		"short status":         head("HTTP/1.1 20"),
		"no space":             head("HTTP/1.1-200 OK"),
		"field without colon":  head("HTTP/1.1 200 OK", "garbage"),
		"two lengths differ":   head("HTTP/1.1 200 OK", "Content-Length: 3", "Content-Length: 4"),
		"negative length":      head("HTTP/1.1 200 OK", "Content-Length: -1"),
		"length not a number":  head("HTTP/1.1 200 OK", "Content-Length: 1e3"),
		"empty":                []byte("\r\n\r\n"),
		"http/1.1 status only": []byte("HTTP/1.1\r\n\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			if rs, err := parseResponse(h); err == nil {
				t.Errorf("parseResponse(%q) = %+v; want an error", h, rs)
			}
		})
	}
}

// readResponseHead parses a response head as net/http reads it.
func readResponseHead(t *testing.T, h []byte) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(h)), nil)
	if err != nil {
		t.Fatalf("net/http cannot read %q: %v", h, err)
	}
	return resp
}

func TestAppendResponseDropsHopByHop(t *testing.T) {
	in := head("HTTP/1.0 201 Created",
		"Connection: close, X-Secret",
		"Keep-Alive: timeout=5",
		"Proxy-Connection: keep-alive",
		"Upgrade: h2c",
		"Te: trailers",
		"X-Secret: 1",
		"Transfer-Encoding: chunked",
		"Trailer: X-Sum",
		"Content-Type: text/plain",
		"X-Multi: a",
		"X-Multi: b")
	for _, close := range []bool{false, true} {
		out := appendResponse([]byte("prefix:"), in, close)
		if !bytes.HasPrefix(out, []byte("prefix:HTTP/1.1 201 Created\r\n")) {
			t.Fatalf("close %v: %q: want the dst kept and the status line as HTTP/1.1", close, out)
		}
		out = out[len("prefix:"):]
		if !bytes.HasSuffix(out, []byte("\r\n\r\n")) || bytes.Count(out, []byte("\r\n\r\n")) != 1 {
			t.Fatalf("close %v: %q: want one blank line, at the end", close, out)
		}
		resp := readResponseHead(t, out)
		for _, name := range []string{"Keep-Alive", "Proxy-Connection", "Upgrade", "Te", "X-Secret"} {
			if v, ok := resp.Header[name]; ok {
				t.Errorf("close %v: %s: %q passed on", close, name, v)
			}
		}
		if _, trailer := resp.Trailer["X-Sum"]; !bytes.Contains(out, []byte("\r\nTransfer-Encoding: chunked\r\n")) || !trailer {
			t.Errorf("close %v: %q: Transfer-Encoding and Trailer must stay", close, out)
		}
		if got := resp.Header.Values("X-Multi"); len(got) != 2 || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("close %v: end-to-end fields %v: want them all", close, resp.Header)
		}
		if got, want := bytes.Count(out, []byte("Connection:")), map[bool]int{false: 0, true: 1}[close]; got != want {
			t.Errorf("close %v: %q: %d Connection fields; want %d", close, out, got, want)
		}
		if close && !bytes.Contains(out, []byte("\r\nConnection: close\r\n")) {
			t.Errorf("close: %q: want Connection: close", out)
		}
	}
}

func TestAppendResponseKeepsTransferEncodingNamedInConnection(t *testing.T) {
	in := head("HTTP/1.1 200 OK", "Connection: Transfer-Encoding, x-a", "X-A: 1", "X-B: 2", "Transfer-Encoding: chunked")
	resp := readResponseHead(t, appendResponse(nil, in, false))
	if len(resp.TransferEncoding) != 1 || resp.Header.Get("X-A") != "" || resp.Header.Get("X-B") != "2" {
		t.Errorf("got TE %v, header %v; want chunked kept, X-A dropped, X-B kept", resp.TransferEncoding, resp.Header)
	}
}

// readRequest parses a request as net/http reads it, with its body.
func readRequest(t *testing.T, b []byte) (*http.Request, string) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("net/http cannot read %q: %v", b, err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("body of %q: %v", b, err)
	}
	if br.Buffered() != 0 {
		t.Fatalf("%q: %d bytes after the request", b, br.Buffered())
	}
	return req, string(body)
}

// mustParse is parseRequest of a head that must be served.
func mustParse(t *testing.T, h []byte) reqHead {
	t.Helper()
	rh, ok := parseRequest(h, router.MaxRetryBodyBytes)
	if !ok {
		t.Fatalf("parseRequest(%q) handed it off", h)
	}
	return rh
}

func TestAppendRequestStripsPrefix(t *testing.T) {
	tests := []struct {
		target string
		strip  int
		want   string
	}{
		{"/api/users?x=1", 4, "/users?x=1"},
		{"/api", 4, "/"},
		{"/api?x=1", 4, "/?x=1"},
		{"/api/", 4, "/"},
		{"/api/users", 0, "/api/users"},
		{"/prefix/", 8, "/"},
	}
	for _, tt := range tests {
		rh := mustParse(t, head("GET "+tt.target+" HTTP/1.1", "Host: h"))
		req, _ := readRequest(t, appendRequest(nil, &rh, tt.strip, false, []byte("10.0.0.1"), nil))
		if req.RequestURI != tt.want {
			t.Errorf("%s strip %d: sent %q; want %q", tt.target, tt.strip, req.RequestURI, tt.want)
		}
	}
}

func TestAppendRequestDropsHopByHop(t *testing.T) {
	rh := mustParse(t, head("GET /x HTTP/1.1", "Host: h",
		"Connection: keep-alive, X-Hop",
		"Keep-Alive: timeout=5",
		"Proxy-Connection: keep-alive",
		"Proxy-Authorization: Basic Zm9vOmJhcg==",
		"Te: trailers",
		"Trailer: X-Sum",
		"X-Hop: secret",
		"Accept: */*",
		"X-Multi: a",
		"X-Multi: b"))
	out := appendRequest(nil, &rh, 0, false, []byte("10.0.0.1"), nil)
	req, _ := readRequest(t, out)
	for _, name := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "X-Hop"} {
		if v, ok := req.Header[name]; ok {
			t.Errorf("%s: %q sent upstream", name, v)
		}
	}
	if req.Host != "h" || req.Header.Get("Accept") != "*/*" || len(req.Header.Values("X-Multi")) != 2 {
		t.Errorf("end-to-end fields lost: host %q, %v", req.Host, req.Header)
	}
	if req.ContentLength != 0 || bytes.Contains(out, []byte("Content-Length")) {
		t.Errorf("%q: a GET without a body must not get a Content-Length", out)
	}
}

func TestAppendRequestForwardedFromUntrustedPeer(t *testing.T) {
	rh := mustParse(t, head("GET /x HTTP/1.1", "Host: shop.example",
		"X-Forwarded-For: 1.2.3.4",
		"X-Forwarded-Host: evil.example",
		"X-Forwarded-Proto: https",
		"X-Real-Ip: 1.2.3.4"))
	out := appendRequest(nil, &rh, 0, false, []byte("10.0.0.1"), nil)
	req, _ := readRequest(t, out)
	if got := req.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "10.0.0.1" {
		t.Errorf("X-Forwarded-For %q; want only the peer", got)
	}
	if got := req.Header.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != "shop.example" {
		t.Errorf("X-Forwarded-Host %q; want the request's host", got)
	}
	if got := req.Header.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "http" {
		t.Errorf("X-Forwarded-Proto %q; want http", got)
	}
	if got := req.Header.Values("X-Real-Ip"); len(got) != 0 {
		t.Errorf("X-Real-Ip %q from an untrusted peer passed on", got)
	}
}

func TestAppendRequestForwardedFromTrustedPeer(t *testing.T) {
	rh := mustParse(t, head("GET /x HTTP/1.1", "Host: internal",
		"X-Forwarded-For: 1.1.1.1",
		"X-Real-Ip: 1.1.1.1",
		"x-forwarded-for: 2.2.2.2, 3.3.3.3",
		"X-Forwarded-Host: shop.example",
		"X-Forwarded-Proto: https"))
	out := appendRequest(nil, &rh, 0, true, []byte("10.0.0.1"), nil)
	req, _ := readRequest(t, out)
	if got := req.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1" {
		t.Errorf("X-Forwarded-For %q; want the chain joined, the peer last", got)
	}
	if got := req.Header.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != "shop.example" {
		t.Errorf("X-Forwarded-Host %q; want the trusted peer's", got)
	}
	if got := req.Header.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "https" {
		t.Errorf("X-Forwarded-Proto %q; want the trusted peer's", got)
	}
	if got := req.Header.Get("X-Real-Ip"); got != "1.1.1.1" {
		t.Errorf("X-Real-Ip %q; want the trusted peer's kept", got)
	}
}

func TestAppendRequestBody(t *testing.T) {
	t.Run("post without body says length 0", func(t *testing.T) {
		for _, m := range []string{"POST", "PUT", "PATCH"} {
			rh := mustParse(t, head(m+" /x HTTP/1.1", "Host: h"))
			out := appendRequest(nil, &rh, 0, false, []byte("10.0.0.1"), nil)
			if !bytes.Contains(out, []byte("\r\nContent-Length: 0\r\n")) {
				t.Errorf("%s: %q: want Content-Length: 0", m, out)
			}
			readRequest(t, out)
		}
	})
	t.Run("body with its length once", func(t *testing.T) {
		rh := mustParse(t, head("POST /x HTTP/1.1", "Host: h", "Content-Length: 11"))
		out := appendRequest(nil, &rh, 0, false, []byte("10.0.0.1"), []byte("hello world"))
		if n := bytes.Count(bytes.ToLower(out), []byte("content-length")); n != 1 {
			t.Errorf("%q: %d Content-Length fields; want 1", out, n)
		}
		req, body := readRequest(t, out)
		if req.Method != "POST" || req.ContentLength != 11 || body != "hello world" {
			t.Errorf("got %s length %d body %q", req.Method, req.ContentLength, body)
		}
	})
	t.Run("appends to dst", func(t *testing.T) {
		rh := mustParse(t, head("GET /x HTTP/1.1", "Host: h"))
		out := appendRequest([]byte("keep"), &rh, 0, false, []byte("::1"), nil)
		if !bytes.HasPrefix(out, []byte("keepGET /x HTTP/1.1\r\n")) {
			t.Errorf("%q: want dst kept, the request after it", out)
		}
		req, _ := readRequest(t, out[4:])
		if got := req.Header.Get("X-Forwarded-For"); got != "::1" {
			t.Errorf("X-Forwarded-For %q; want ::1", got)
		}
	})
}

// TestAttackRequestLineWithoutTarget: a request line whose only space is
// the one before its version ("0 HTTP/1.1", found by FuzzParseRequest)
// made the parser slice out of range, a panic on the loop's thread that
// took the whole proxy down. It is handed off (the fast engine answers
// 400).
func TestAttackRequestLineWithoutTarget(t *testing.T) {
	for _, h := range []string{"0 HTTP/1.1\r\n\r\n", "GET HTTP/1.1\r\nHost: a\r\n\r\n", "G HTTP/1.1\r\n\r\n"} {
		if _, ok := parseRequest([]byte(h), router.MaxRetryBodyBytes); ok {
			t.Errorf("parseRequest(%q) serves it", h)
		}
	}
}
