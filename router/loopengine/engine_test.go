//go:build linux

package loopengine_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/loopengine"
)

// wait bounds every wait of these tests: far above what a passing test
// takes, so that a broken engine fails the test instead of hanging it.
const wait = 10 * time.Second

// proxy is a loop engine serving a router with one route ("/" to one
// backend) on a loopback listener.
type proxy struct {
	e    *loopengine.Engine
	addr string
	url  string

	once    sync.Once
	serve   chan error // Serve's result
	serveEr error
}

// mustProxy starts a proxy to backend; cleanup shuts it down (checking
// that Shutdown and Serve return nil) and closes its router.
func mustProxy(t *testing.T, opts loopengine.Options, backend string) *proxy {
	t.Helper()
	r, err := router.New(router.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("router Close: %v", err)
		}
	})
	route := router.Route{Name: "app", Match: router.Match{PathPrefix: "/"}, Upstream: router.Upstream{Static: []string{backend}}}
	if err := r.Update([]router.Route{route}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{e: loopengine.New(r, opts), addr: ln.Addr().String(), serve: make(chan error, 1)}
	p.url = "http://" + p.addr
	go func() { p.serve <- p.e.Serve(ln) }()
	t.Cleanup(func() {
		if err := p.shutdown(t, wait); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		t.Logf("loop engine: %+v", p.e.Counts())
	})
	return p
}

// shutdown shuts p down within timeout and checks that Serve returned
// nil; it returns Shutdown's error.
func (p *proxy) shutdown(t *testing.T, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := p.e.Shutdown(ctx)
	p.once.Do(func() {
		select {
		case p.serveEr = <-p.serve:
		case <-time.After(wait):
			p.serveEr = errors.New("Serve did not return after Shutdown")
		}
	})
	if p.serveEr != nil {
		t.Errorf("Serve: %v", p.serveEr)
	}
	return err
}

// eventuallyCounts waits until the engine's counts satisfy ok.
func (p *proxy) eventuallyCounts(t *testing.T, what string, ok func(loopengine.Counts) bool) {
	t.Helper()
	testkit.Eventually(t, wait, what, func() error {
		if c := p.e.Counts(); !ok(c) {
			return fmt.Errorf("counts %+v", c)
		}
		return nil
	})
}

// mustBackend starts an httptest server; cleanup closes it.
func mustBackend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// echo answers with the request's method, target and body.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
}

// rawBackend is an upstream on loopback written by hand, for answers
// net/http would not send.
type rawBackend struct {
	addr  string
	conns atomic.Int64 // connections accepted

	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

// mustRawBackend serves each connection with serve in a goroutine of its
// own; cleanup closes the listener and the connections and waits for the
// goroutines.
func mustRawBackend(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().String(), ln: ln, open: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			b.mu.Lock()
			b.open[c] = struct{}{}
			b.mu.Unlock()
			_ = c.SetDeadline(time.Now().Add(wait))
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer func() {
					b.mu.Lock()
					delete(b.open, c)
					b.mu.Unlock()
					c.Close()
				}()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for c := range b.open {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

// readRequest reads a request and its body from br.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

// newClient is an HTTP client of its own; cleanup closes its idle
// connections.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}
}

// get sends a GET and returns its status and body.
func get(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(body)
}

// dial opens a raw connection to addr, its deadline bounded; cleanup
// closes it.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	return c.(*net.TCPConn)
}

// write writes s to c.
func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readAll reads c to its end: the peer must close it (EOF) before the
// deadline.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading to EOF: %v (read %q)", err, b)
	}
	return b
}

// parseResponses parses b as responses and their bodies, all of b.
func parseResponses(t *testing.T, b []byte) []*http.Response {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	var out []*http.Response
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d of %q: %v", len(out)+1, b, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body of %q: %v", len(out)+1, b, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
}

// bodyOf reads a parsed response's body.
func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPlainGetsServedByLoops(t *testing.T) {
	p := mustProxy(t, loopengine.Options{Loops: 2}, mustBackend(t, echo).Listener.Addr().String())
	c := newClient(t)
	const sequential = 20
	for i := range sequential {
		target := fmt.Sprintf("/items/%d?n=%d", i, i)
		resp, body := get(t, c, p.url+target)
		if resp.StatusCode != http.StatusOK || body != "GET "+target+" " {
			t.Fatalf("GET %s = %d %q", target, resp.StatusCode, body)
		}
	}
	// Concurrent clients, each on connections of its own, over both loops.
	const workers, each = 4, 10
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				target := fmt.Sprintf("/w%d/%d", w, i)
				resp, err := c.Get(p.url + target)
				if err != nil {
					errs <- err
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(body) != "GET "+target+" " {
					errs <- fmt.Errorf("GET %s = %d %q %v", target, resp.StatusCode, body, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	const n = sequential + workers*each
	p.eventuallyCounts(t, "all requests served by the loops", func(c loopengine.Counts) bool { return c.Served >= n })
	if c := p.e.Counts(); c.HandedOff != 0 {
		t.Errorf("counts %+v: plain GETs handed off", c)
	}
}

// handOffBackend echoes requests and completes a WebSocket-style upgrade
// by hand: 101, then "pong" for the client's "ping".
func handOffBackend(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "websocket" {
		echo(w, r)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	_ = brw.Flush()
	ping := make([]byte, 4)
	if _, err := io.ReadFull(brw, ping); err == nil && string(ping) == "ping" {
		_, _ = conn.Write([]byte("pong"))
	}
}

func TestHandOffs(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, p *proxy)
	}{
		{"websocket upgrade", func(t *testing.T, p *proxy) {
			c := dial(t, p.addr)
			write(t, c, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("upgrade answer: %v", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade answered %d", resp.StatusCode)
			}
			write(t, c, "ping")
			pong := make([]byte, 4)
			if _, err := io.ReadFull(br, pong); err != nil || string(pong) != "pong" {
				t.Fatalf("through the tunnel: %q %v", pong, err)
			}
		}},
		{"http/1.0", func(t *testing.T, p *proxy) {
			c := dial(t, p.addr)
			write(t, c, "GET /old?v=1 HTTP/1.0\r\nHost: h\r\n\r\n")
			rs := parseResponses(t, readAll(t, c))
			if len(rs) != 1 || rs[0].StatusCode != http.StatusOK || bodyOf(rs[0]) != "GET /old?v=1 " {
				t.Fatalf("got %d responses: %+v", len(rs), rs)
			}
		}},
		{"chunked post", func(t *testing.T, p *proxy) {
			req, err := http.NewRequest(http.MethodPost, p.url+"/up", io.MultiReader(strings.NewReader("chunked "), strings.NewReader("body")))
			if err != nil {
				t.Fatal(err)
			}
			req.TransferEncoding = []string{"chunked"}
			resp, err := newClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "POST /up chunked body" {
				t.Fatalf("chunked POST = %d %q", resp.StatusCode, body)
			}
		}},
		{"pin header", func(t *testing.T, p *proxy) {
			// The router has no pin resolver: every pin is unknown, 403.
			resp, body := get(t, newClient(t), p.url+"/pinned", router.PinHeader, "some-token")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("pinned GET = %d %q; want 403", resp.StatusCode, body)
			}
		}},
		{"pin cookie", func(t *testing.T, p *proxy) {
			resp, body := get(t, newClient(t), p.url+"/pinned", "Cookie", router.PinCookie+"=some-token")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("pinned GET = %d %q; want 403", resp.StatusCode, body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustProxy(t, loopengine.Options{}, mustBackend(t, handOffBackend).Listener.Addr().String())
			tt.do(t, p)
			if c := p.e.Counts(); c.HandedOff != 1 || c.Served != 0 {
				t.Errorf("counts %+v; want the one connection handed off", c)
			}
		})
	}
}

func TestHandOffAfterServedRequest(t *testing.T) {
	// A connection the loops served first and then hands off mid-way: the
	// fast engine goes on from the request the loops did not serve.
	p := mustProxy(t, loopengine.Options{}, mustBackend(t, echo).Listener.Addr().String())
	c := dial(t, p.addr)
	write(t, c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n"+
		"POST /second HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	rs := parseResponses(t, readAll(t, c))
	if len(rs) != 2 || bodyOf(rs[0]) != "GET /first " || bodyOf(rs[1]) != "POST /second abc" {
		t.Fatalf("got %d responses: %+v", len(rs), rs)
	}
	if c := p.e.Counts(); c.Served != 1 || c.HandedOff != 1 {
		t.Errorf("counts %+v; want the first request served, then the connection handed off", c)
	}
}

func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	p := mustProxy(t, loopengine.Options{}, mustBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/one" {
			time.Sleep(50 * time.Millisecond) // the first answer comes last upstream
		}
		echo(w, r)
	}).Listener.Addr().String())
	c := dial(t, p.addr)
	write(t, c, "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"+
		"POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"+
		"GET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	rs := parseResponses(t, readAll(t, c))
	want := []string{"GET /one ", "POST /two hello", "GET /three "}
	if len(rs) != len(want) {
		t.Fatalf("%d responses; want %d", len(rs), len(want))
	}
	for i, resp := range rs {
		if body := bodyOf(resp); resp.StatusCode != http.StatusOK || body != want[i] {
			t.Errorf("response %d = %d %q; want 200 %q", i+1, resp.StatusCode, body, want[i])
		}
	}
	if c := p.e.Counts(); c.Served != 3 || c.HandedOff != 0 {
		t.Errorf("counts %+v; want 3 served by the loops", c)
	}
}

func TestHalfCloseGetsAnswerThenEOF(t *testing.T) {
	p := mustProxy(t, loopengine.Options{}, mustBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("slow") {
			time.Sleep(100 * time.Millisecond) // the client's EOF comes while upstream answers
		}
		echo(w, r)
	}).Listener.Addr().String())
	for _, target := range []string{"/half", "/half?slow"} {
		t.Run(target, func(t *testing.T) {
			c := dial(t, p.addr)
			write(t, c, "GET "+target+" HTTP/1.1\r\nHost: h\r\n\r\n")
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			rs := parseResponses(t, readAll(t, c))
			if len(rs) != 1 || rs[0].StatusCode != http.StatusOK || bodyOf(rs[0]) != "GET "+target+" " {
				t.Fatalf("got %d responses: %+v", len(rs), rs)
			}
		})
	}
}

func TestUpstreamCloseDelimitedBody(t *testing.T) {
	b := mustRawBackend(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err == nil {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\nhello")
		}
	})
	p := mustProxy(t, loopengine.Options{}, b.addr)
	c := dial(t, p.addr)
	write(t, c, "GET /cd HTTP/1.1\r\nHost: h\r\n\r\n") // a keep-alive request
	raw := readAll(t, c)
	rs := parseResponses(t, raw)
	if len(rs) != 1 || rs[0].StatusCode != http.StatusOK || bodyOf(rs[0]) != "hello" || rs[0].Header.Get("X-Kind") != "close-delimited" {
		t.Fatalf("got %q", raw)
	}
	if !rs[0].Close || !bytes.Contains(raw, []byte("\r\nConnection: close\r\n")) {
		t.Errorf("%q: a close-delimited body must say Connection: close", raw)
	}
}

func TestUpstreamInterimResponsesNotPassedOn(t *testing.T) {
	tests := []struct {
		name    string
		interim string
		pause   bool // the final answer comes in a later packet
	}{
		{"100 continue", "HTTP/1.1 100 Continue\r\n\r\n", false},
		{"100 continue then later answer", "HTTP/1.1 100 Continue\r\n\r\n", true},
		{"103 early hints", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", true},
		{"two interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustRawBackend(t, func(c net.Conn, br *bufio.Reader) {
				for {
					if _, err := readRequest(br); err != nil {
						return
					}
					_, _ = io.WriteString(c, tt.interim)
					if tt.pause {
						time.Sleep(20 * time.Millisecond)
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			})
			p := mustProxy(t, loopengine.Options{}, b.addr)
			c := dial(t, p.addr)
			write(t, c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
			raw := readAll(t, c)
			if !bytes.HasPrefix(raw, []byte("HTTP/1.1 200 OK\r\n")) || bytes.Contains(raw, []byte(" 10")) {
				t.Fatalf("%q: want only the final answers", raw)
			}
			rs := parseResponses(t, raw)
			if len(rs) != 2 || bodyOf(rs[0]) != "ok" || bodyOf(rs[1]) != "ok" {
				t.Fatalf("%q: want two answers \"ok\"", raw)
			}
		})
	}
}

// TestFaultUpstreamClosesPooledConnection: an upstream that drops a
// connection the engine keeps in its pool costs no request: the engine
// dials again, once.
func TestFaultUpstreamClosesPooledConnection(t *testing.T) {
	const requests = 4
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

	t.Run("closed after each answer", func(t *testing.T) {
		b := mustRawBackend(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := readRequest(br); err == nil {
				_, _ = io.WriteString(c, ok) // keep-alive, by HTTP/1.1's default, then closed
			}
		})
		p := mustProxy(t, loopengine.Options{Loops: 1}, b.addr)
		cl := newClient(t)
		for i := range requests {
			if resp, body := get(t, cl, p.url+"/x"); resp.StatusCode != http.StatusOK || body != "ok" {
				t.Fatalf("request %d = %d %q", i+1, resp.StatusCode, body)
			}
		}
		if n := b.conns.Load(); n != requests {
			t.Errorf("backend accepted %d connections; want %d", n, requests)
		}
	})

	t.Run("closed when reused", func(t *testing.T) {
		// The backend answers a connection's first request and closes it
		// on the second without answering: a pooled connection the engine
		// finds dead only once it sent on it.
		var dropped atomic.Int64
		b := mustRawBackend(t, func(c net.Conn, br *bufio.Reader) {
			if _, err := readRequest(br); err != nil {
				return
			}
			_, _ = io.WriteString(c, ok)
			if _, err := readRequest(br); err == nil {
				dropped.Add(1)
			}
		})
		p := mustProxy(t, loopengine.Options{Loops: 1}, b.addr)
		cl := newClient(t)
		for i := range requests {
			if resp, body := get(t, cl, p.url+"/x"); resp.StatusCode != http.StatusOK || body != "ok" {
				t.Fatalf("request %d = %d %q", i+1, resp.StatusCode, body)
			}
		}
		// Each request after the first went on a pooled connection that
		// the backend dropped, then on a new one.
		if d, n := dropped.Load(), b.conns.Load(); d != requests-1 || n != requests {
			t.Errorf("backend dropped %d requests on %d connections; want %d on %d", d, n, requests-1, requests)
		}
	})

	t.Run("httptest closes client connections", func(t *testing.T) {
		srv := mustBackend(t, echo)
		p := mustProxy(t, loopengine.Options{Loops: 1}, srv.Listener.Addr().String())
		cl := newClient(t)
		for i := range requests {
			if resp, body := get(t, cl, p.url+"/x"); resp.StatusCode != http.StatusOK || body != "GET /x " {
				t.Fatalf("request %d = %d %q", i+1, resp.StatusCode, body)
			}
			srv.CloseClientConnections()
		}
	})

	t.Run("a fresh connection that fails is not redialed", func(t *testing.T) {
		// Only a pooled connection is redialed: a new one that breaks
		// before answering is the upstream's failure, 502.
		b := mustRawBackend(t, func(c net.Conn, br *bufio.Reader) { _, _ = readRequest(br) })
		p := mustProxy(t, loopengine.Options{Loops: 1}, b.addr)
		resp, body := get(t, newClient(t), p.url+"/x")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("got %d %q; want 502", resp.StatusCode, body)
		}
		if n := b.conns.Load(); n != 1 {
			t.Errorf("backend accepted %d connections; want 1", n)
		}
	})
}

func TestAttackSlowlorisGets408(t *testing.T) {
	const timeout = 200 * time.Millisecond
	p := mustProxy(t, loopengine.Options{ReadHeaderTimeout: timeout}, mustBackend(t, echo).Listener.Addr().String())

	t.Run("half a head", func(t *testing.T) {
		c := dial(t, p.addr)
		start := time.Now()
		write(t, c, "GET /slow HTTP/1.1\r\nHost: h\r\nX-A: ")
		raw := readAll(t, c)
		took := time.Since(start)
		rs := parseResponses(t, raw)
		if len(rs) != 1 || rs[0].StatusCode != http.StatusRequestTimeout || !rs[0].Close {
			t.Fatalf("%q: want 408 with Connection: close, then EOF", raw)
		}
		if took < timeout/2 || took > time.Second {
			t.Errorf("408 after %v; want it after about %v", took, timeout)
		}
	})

	t.Run("trickled head", func(t *testing.T) {
		// A byte every 50 ms does not push the header's deadline: it runs
		// from the connection's start.
		c := dial(t, p.addr)
		start := time.Now()
		head := "GET /slow HTTP/1.1\r\nHost: h\r\nX-Padding: " + strings.Repeat("a", 100)
		var raw []byte
		buf := make([]byte, 512)
	trickle:
		for i := 0; time.Since(start) < wait; i++ {
			if _, err := c.Write([]byte{head[i%len(head)]}); err != nil {
				break // closed after the 408
			}
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			for {
				n, err := c.Read(buf)
				raw = append(raw, buf[:n]...)
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
					continue trickle
				case err != nil:
					break trickle
				}
			}
		}
		took := time.Since(start)
		if !bytes.HasPrefix(raw, []byte("HTTP/1.1 408 ")) {
			t.Fatalf("%q: want 408", raw)
		}
		if took > time.Second {
			t.Errorf("408 after %v; want it after about %v", took, timeout)
		}
	})

	t.Run("no bytes", func(t *testing.T) {
		c := dial(t, p.addr)
		start := time.Now()
		if raw := readAll(t, c); len(raw) != 0 {
			t.Fatalf("an idle connection got %q; want it closed without a word", raw)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("closed after %v; want about %v", took, timeout)
		}
	})
}

func TestIdleKeepAliveConnectionClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	p := mustProxy(t, loopengine.Options{IdleTimeout: idle, ReadHeaderTimeout: wait},
		mustBackend(t, echo).Listener.Addr().String())
	c := dial(t, p.addr)
	write(t, c, "GET /once HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(body) != "GET /once " || resp.Close {
		t.Fatalf("got %d %q close %v", resp.StatusCode, body, resp.Close)
	}
	start := time.Now()
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after the answer: %q %v; want EOF", rest, err)
	}
	if took := time.Since(start); took < idle/2 || took > 5*idle {
		t.Errorf("idle connection closed after %v; want about %v", took, idle)
	}
}

// pattern is n bytes that are not all alike.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// slowReader reads at most 16 KiB at a time, pausing between reads.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	return s.r.Read(p[:min(len(p), 16<<10)])
}

func TestLargeResponseToSlowReader(t *testing.T) {
	big := pattern(8 << 20)
	p := mustProxy(t, loopengine.Options{}, mustBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		_, _ = w.Write(big)
	}).Listener.Addr().String())
	c := dial(t, p.addr)
	_ = c.SetReadBuffer(16 << 10) // a small window: the engine's writes block soon
	write(t, c, "GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	// Not a byte read for a while: the engine must hold the upstream back
	// rather than lose or reorder what the client cannot take yet.
	time.Sleep(200 * time.Millisecond)
	resp, err := http.ReadResponse(bufio.NewReaderSize(slowReader{c}, 16<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body after %d bytes: %v", len(got), err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, big) {
		t.Fatalf("got %d, %d bytes; want 200 and the %d bytes sent", resp.StatusCode, len(got), len(big))
	}
	if c := p.e.Counts(); c.HandedOff != 0 {
		t.Errorf("counts %+v: handed off", c)
	}
}

func TestChunkedStreamWithTrailers(t *testing.T) {
	const pieces, size = 256, 16 << 10
	data := pattern(pieces * size)
	sum := sha256.Sum256(data)
	p := mustProxy(t, loopengine.Options{}, mustBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		rc := http.NewResponseController(w)
		for i := range pieces {
			if _, err := w.Write(data[i*size : (i+1)*size]); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		w.Header().Set("X-Sum", hex.EncodeToString(sum[:]))
	}).Listener.Addr().String())
	cl := newClient(t)
	for round := range 2 { // the second on the pooled upstream connection
		resp, err := cl.Get(p.url + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(slowReader{resp.Body})
		resp.Body.Close()
		if err != nil {
			t.Fatalf("round %d: body after %d bytes: %v", round, len(got), err)
		}
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("round %d: Transfer-Encoding %v; want chunked passed through", round, resp.TransferEncoding)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round %d: %d bytes differ from the %d sent", round, len(got), len(data))
		}
		if want := hex.EncodeToString(sum[:]); resp.Trailer.Get("X-Sum") != want {
			t.Errorf("round %d: trailer X-Sum %q; want %q", round, resp.Trailer.Get("X-Sum"), want)
		}
	}
	// The count follows the answer's last byte: polled.
	p.eventuallyCounts(t, "2 served by the loops", func(c loopengine.Counts) bool { return c.Served == 2 && c.HandedOff == 0 })
}

func TestShutdownWaitsForRequestInFlight(t *testing.T) {
	arrived := make(chan struct{}, 1)
	p := mustProxy(t, loopengine.Options{}, mustBackend(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	}).Listener.Addr().String())
	type result struct {
		resp *http.Response
		body string
		err  error
	}
	res := make(chan result, 1)
	cl := newClient(t)
	go func() {
		resp, err := cl.Get(p.url + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp, string(body), err}
	}()
	select {
	case <-arrived:
	case <-time.After(wait):
		t.Fatal("the request did not reach the backend")
	}
	start := time.Now()
	if err := p.shutdown(t, wait); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > wait/2 {
		t.Errorf("Shutdown took %v", took)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(wait):
		t.Fatal("no answer")
	}
	if r.err != nil || r.resp.StatusCode != http.StatusOK || r.body != "done" {
		t.Fatalf("request in flight at Shutdown: %v %q", r.err, r.body)
	}
	if !r.resp.Close {
		t.Errorf("the answer finished during Shutdown does not say Connection: close")
	}
	if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the listener still accepts after Shutdown")
	}
}

// boomLimiters make limiters that panic on the key "boom": a bug in an
// adapter the router runs on the loop.
type boomLimiters struct{}

func (boomLimiters) NewLimiter(string, router.RateLimit, func()) router.Limiter { return boomLimiter{} }

type boomLimiter struct{}

func (boomLimiter) Allow(key string, _ time.Time) router.Decision {
	if key == "boom" {
		panic("limiter bug")
	}
	return router.Decision{OK: true, Remaining: 1}
}

// TestFaultPanicWhileRoutingClosesOnlyThatConnection: a panic on a loop
// (here in a limiter, which the router runs there) closes the connection
// whose request caused it; the loop, the process and the other
// connections go on. Before, it took the whole proxy down.
func TestFaultPanicWhileRoutingClosesOnlyThatConnection(t *testing.T) {
	backend := mustBackend(t, echo)
	r, err := router.New(router.Config{Limiters: boomLimiters{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	route := router.Route{Name: "app", Match: router.Match{PathPrefix: "/"}, Upstream: router.Upstream{Static: []string{backend.Listener.Addr().String()}},
		RateLimit: &router.RateLimit{RPS: 1000, Burst: 1000, Key: "header:X-K"}}
	if err := r.Update([]router.Route{route}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := loopengine.New(r, loopengine.Options{Loops: 1}) // one loop: the bad request and the good ones share it
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	client := newClient(t)
	url := "http://" + ln.Addr().String()
	if resp, body := get(t, client, url+"/before", "X-K", "a"); resp.StatusCode != 200 || !strings.Contains(body, "/before") {
		t.Fatalf("before: %d %q", resp.StatusCode, body)
	}
	c := dial(t, ln.Addr().String())
	write(t, c, "GET /boom HTTP/1.1\r\nHost: x\r\nX-K: boom\r\n\r\n")
	if got := readAll(t, c); len(got) != 0 {
		t.Fatalf("the connection whose request panicked got %q; want it closed with nothing", got)
	}
	for i := range 5 {
		if resp, body := get(t, client, fmt.Sprintf("%s/after%d", url, i), "X-K", "a"); resp.StatusCode != 200 || !strings.Contains(body, fmt.Sprintf("/after%d", i)) {
			t.Fatalf("after the panic: %d %q", resp.StatusCode, body)
		}
	}
}
