package router_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
)

// rawConn is a client connection to the proxy that writes bytes as given
// and reads answers with http.ReadResponse, so tests see the framing the
// proxy puts on the wire (which net/http's client would hide or refuse).
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		t.Fatal(err)
	}
}

// read reads one answer to a request with method and returns it with its
// whole body.
func (rc *rawConn) read(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read answer to %s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of answer to %s: %v", method, err)
	}
	return resp, string(b)
}

// closeDelimitedUpstream answers every request with an HTTP/1.1 response
// that has neither Content-Length nor chunked encoding: its body ends when
// the connection closes. It returns its address.
func closeDelimitedUpstream(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"+body)
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestHTTP10ClientGetsUnchunkedAnswer: an HTTP/1.0 client cannot read
// chunked encoding, so an upstream answer of unknown length (chunked, or
// delimited by the upstream closing) reaches it either with a
// Content-Length or delimited by the proxy closing the connection, and
// with the body bytes as the upstream sent them.
func TestHTTP10ClientGetsUnchunkedAnswer(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		const body = "first part|second part|third part"
		chunked := startBackend(t, "chunked", func(w http.ResponseWriter, r *http.Request) {
			for _, part := range strings.SplitAfter(body, "|") {
				_, _ = io.WriteString(w, part)
				w.(http.Flusher).Flush() // no Content-Length: chunked to an HTTP/1.1 proxy
			}
		})
		p := newProxy(t, router.Config{}, []router.Route{
			staticRoute("chunked", "/chunked", chunked.addr),
			staticRoute("closed", "/closed", closeDelimitedUpstream(t, body)),
		})
		for _, path := range []string{"/chunked", "/closed"} {
			t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
				c := dialRaw(t, p.addr)
				c.write(t, "GET "+path+" HTTP/1.0\r\nHost: h10.test\r\n\r\n")
				resp, got := c.read(t, http.MethodGet)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if len(resp.TransferEncoding) > 0 {
					t.Fatalf("Transfer-Encoding %v sent to an HTTP/1.0 client", resp.TransferEncoding)
				}
				if got != body {
					t.Fatalf("body %q, want %q", got, body)
				}
				if resp.ContentLength < 0 {
					// Close-delimited: the proxy must have closed after the body.
					if n, err := c.br.Read(make([]byte, 1)); n != 0 || err == nil {
						t.Fatalf("connection still open after a close-delimited body: %d %v", n, err)
					}
				}
			})
		}
	})
}

// TestUpgradeRequestWithBody: an Upgrade request that carries a body gets
// that body to the upstream, whether the upstream declines the upgrade
// (an ordinary answer, and the connection serves the next request) or
// accepts it (101, then both directions are tunnelled).
func TestUpgradeRequestWithBody(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "up", func(w http.ResponseWriter, r *http.Request) {
			got, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if r.URL.Path != "/accept" {
				_, _ = io.WriteString(w, "declined:"+string(got))
				return
			}
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\ngot:"+string(got)+"\n")
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = io.WriteString(conn, "echo:"+line)
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("up", "/", b.addr)})
		const req = "POST %s HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\nContent-Length: 5\r\n\r\nhello"

		t.Run("declined", func(t *testing.T) {
			c := dialRaw(t, p.addr)
			c.write(t, strings.Replace(req, "%s", "/decline", 1))
			resp, got := c.read(t, http.MethodPost)
			if resp.StatusCode != 200 || got != "declined:hello" {
				t.Fatalf("%d %q, want 200 %q", resp.StatusCode, got, "declined:hello")
			}
			c.write(t, "GET /after HTTP/1.1\r\nHost: up.test\r\n\r\n")
			if resp, got := c.read(t, http.MethodGet); resp.StatusCode != 200 || got != "declined:" {
				t.Fatalf("next request on the connection: %d %q", resp.StatusCode, got)
			}
		})
		t.Run("accepted", func(t *testing.T) {
			c := dialRaw(t, p.addr)
			c.write(t, strings.Replace(req, "%s", "/accept", 1))
			resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodPost})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", resp.StatusCode)
			}
			if line, err := c.br.ReadString('\n'); err != nil || line != "got:hello\n" {
				t.Fatalf("upstream saw %q (%v), want the request body %q", line, err, "hello")
			}
			c.write(t, "ping\n")
			if line, err := c.br.ReadString('\n'); err != nil || line != "echo:ping\n" {
				t.Fatalf("tunnel answered %q (%v), want %q", line, err, "echo:ping\n")
			}
		})
	})
}

// TestHeadWithContentLengthOnOneConnection: the answer to HEAD keeps the
// upstream's Content-Length but carries no body, so the next answer on the
// same client connection is framed right (a proxy that sent or waited for
// the announced bytes would garble or stall it).
func TestHeadWithContentLengthOnOneConnection(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		const length = 1234
		b := startBackend(t, "head", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(length))
			if r.Method == http.MethodHead {
				return
			}
			_, _ = io.WriteString(w, strings.Repeat("x", length))
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("head", "/", b.addr)})
		c := dialRaw(t, p.addr)
		for i := range 2 {
			c.write(t, "HEAD /h HTTP/1.1\r\nHost: head.test\r\n\r\n")
			resp, got := c.read(t, http.MethodHead)
			if resp.StatusCode != 200 || resp.ContentLength != length || got != "" {
				t.Fatalf("HEAD %d: %d length %d body %q, want 200 length %d and no body", i, resp.StatusCode, resp.ContentLength, got, length)
			}
			c.write(t, "GET /g HTTP/1.1\r\nHost: head.test\r\n\r\n")
			if resp, got := c.read(t, http.MethodGet); resp.StatusCode != 200 || len(got) != length || resp.Header.Get("X-Got-Path") != "/g" {
				t.Fatalf("GET after HEAD %d: %d, %d bytes, path %q", i, resp.StatusCode, len(got), resp.Header.Get("X-Got-Path"))
			}
		}
	})
}

// TestPipelinedRequests: requests a client sends back to back on one
// connection, before reading any answer, are answered in order, bodies
// included.
func TestPipelinedRequests(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "pipe", func(w http.ResponseWriter, r *http.Request) {
			got, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(got))
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("pipe", "/", b.addr)})
		c := dialRaw(t, p.addr)
		c.write(t, "GET /one HTTP/1.1\r\nHost: pipe.test\r\n\r\n"+
			"POST /two HTTP/1.1\r\nHost: pipe.test\r\nContent-Length: 4\r\n\r\nbody"+
			"HEAD /three HTTP/1.1\r\nHost: pipe.test\r\n\r\n"+
			"POST /four HTTP/1.1\r\nHost: pipe.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
			"GET /five HTTP/1.1\r\nHost: pipe.test\r\n\r\n")
		for _, want := range []struct{ method, body string }{
			{"GET", "GET /one "},
			{"POST", "POST /two body"},
			{"HEAD", ""},
			{"POST", "POST /four abc"},
			{"GET", "GET /five "},
		} {
			resp, got := c.read(t, want.method)
			if resp.StatusCode != 200 || got != want.body {
				t.Fatalf("answer to %s: %d %q, want 200 %q", want.method, resp.StatusCode, got, want.body)
			}
		}
		if got := b.hits.Load(); got != 5 {
			t.Fatalf("upstream saw %d requests, want 5", got)
		}
	})
}

// TestHTTP10ClientStreamIsNotBuffered: a streamed answer of unknown
// length reaches an HTTP/1.0 client as it comes (server-sent events), not
// once the upstream has finished.
func TestHTTP10ClientStreamIsNotBuffered(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		next := make(chan struct{})
		b := startBackend(t, "events", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "data: second\n\n")
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("events", "/", b.addr)})
		c := dialRaw(t, p.addr)
		c.write(t, "GET /events HTTP/1.0\r\nHost: h10.test\r\n\r\n")
		resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
		if err != nil {
			close(next)
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if len(resp.TransferEncoding) > 0 {
			close(next)
			t.Fatalf("Transfer-Encoding %v sent to an HTTP/1.0 client", resp.TransferEncoding)
		}
		br := bufio.NewReader(resp.Body)
		got := make(chan string, 1)
		go func() { line, _ := br.ReadString('\n'); got <- line }()
		select {
		case line := <-got:
			if line != "data: first\n" {
				close(next)
				t.Fatalf("first event %q", line)
			}
		case <-time.After(3 * time.Second):
			close(next)
			t.Fatal("first event held back by the proxy")
		}
		close(next)
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "\ndata: second\n\n" {
			t.Fatalf("rest %q (%v), want %q", rest, err, "\ndata: second\n\n")
		}
	})
}
