package loopengine

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/router"
)

// FuzzParseRequest holds the loop's request parser to net/http's: a head
// the loop serves itself must be one net/http reads the same way (method,
// target, Host, body length), so that the loop and the upstream behind it
// never frame a request differently (request smuggling); and the request
// the loop writes upstream from it must read back with the same method,
// target and length.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a:80\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: x-a\r\nX-A: 1\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost:a\r\nContent-Length:\t03 \r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		end := headEnd(h)
		if end < 0 {
			return
		}
		h = h[:end]
		rh, ok := parseRequest(h, router.MaxRetryBodyBytes)
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(h)))
		if err != nil {
			t.Fatalf("the loop serves %q, net/http refuses it: %v", h, err)
		}
		if req.Method != string(rh.method) || req.RequestURI != string(rh.target) || req.Host != string(rh.host) {
			t.Fatalf("%q: loop %q %q host %q, net/http %q %q host %q", h, rh.method, rh.target, rh.host, req.Method, req.RequestURI, req.Host)
		}
		if req.ContentLength != int64(rh.cl) && !(rh.cl == 0 && req.ContentLength <= 0) || len(req.TransferEncoding) > 0 {
			t.Fatalf("%q: loop reads a body of %d, net/http %d (%v)", h, rh.cl, req.ContentLength, req.TransferEncoding)
		}
		body := bytes.Repeat([]byte("b"), rh.cl)
		out := appendRequest(nil, &rh, 0, false, []byte("127.0.0.1"), body)
		up, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("%q: the request sent upstream does not read: %v\n%q", h, err, out)
		}
		if up.Method != req.Method || up.RequestURI != req.RequestURI || up.Host != req.Host || up.ContentLength != int64(len(body)) && !(len(body) == 0 && up.ContentLength <= 0) {
			t.Fatalf("%q: sent upstream as %q %q host %q length %d", h, up.Method, up.RequestURI, up.Host, up.ContentLength)
		}
		if got := up.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Fatalf("%q: X-Forwarded-For %q from an untrusted peer", h, got)
		}
	})
}

// FuzzChunkedFeed: where a chunked body ends, or that it is malformed, does
// not depend on how its bytes are split into reads; and what the loop
// takes as a whole body reads as one with net/http's chunked reader.
func FuzzChunkedFeed(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1 200",
		"1\r0\r\n",
		"\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint16(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		var whole chunked
		n, done, err := whole.feed(body)
		var parts chunked
		at := int(split) % (len(body) + 1)
		n1, done1, err1 := parts.feed(body[:at])
		n2, done2, err2 := 0, false, error(nil)
		if err1 == nil && !done1 {
			n2, done2, err2 = parts.feed(body[at:])
		}
		if (err == nil) != (err1 == nil && err2 == nil) || done != (done1 || done2) || err == nil && done && n != n1+n2 {
			t.Fatalf("%q split at %d: whole (%d, %t, %v), in two (%d+%d, %t/%t, %v/%v)", body, at, n, done, err, n1, n2, done1, done2, err1, err2)
		}
		if err != nil || !done {
			return
		}
		resp := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + string(body[:n])
		r, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader([]byte(resp))), nil)
		if rerr != nil {
			t.Fatalf("%q: net/http reads no response: %v", body[:n], rerr)
		}
		if _, rerr = io.Copy(io.Discard, r.Body); rerr != nil {
			t.Fatalf("%q: the loop takes it as a whole chunked body, net/http fails reading it: %v", body[:n], rerr)
		}
	})
}
