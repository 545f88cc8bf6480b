package fasthttpengine_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/fasthttpengine"
)

// deadlineConn counts the read deadlines set on a connection's socket.
type deadlineConn struct {
	net.Conn
	n *atomic.Int64
}

func (c deadlineConn) SetReadDeadline(t time.Time) error {
	c.n.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c deadlineConn) SetDeadline(t time.Time) error {
	c.n.Add(1)
	return c.Conn.SetDeadline(t)
}

type deadlineListener struct {
	net.Listener
	n *atomic.Int64
}

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return deadlineConn{c, l.n}, nil
}

// serveEngine serves routes with an engine with opts; wrap, when set,
// wraps the engine before it serves. It returns the proxy's address.
func serveEngine(t *testing.T, opts fasthttpengine.Options, routes []router.Route, ln net.Listener, wrap func(*fasthttpengine.Engine)) string {
	t.Helper()
	return serveRouter(t, router.Config{}, opts, routes, ln, wrap)
}

// serveRouter is serveEngine with the router's configuration.
func serveRouter(t *testing.T, cfg router.Config, opts fasthttpengine.Options, routes []router.Route, ln net.Listener, wrap func(*fasthttpengine.Engine)) string {
	t.Helper()
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Update(routes); err != nil {
		t.Fatal(err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	e := fasthttpengine.New(r, opts)
	if wrap != nil {
		wrap(e)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// backendServer serves h on loopback and returns its address and a count
// of the connections it accepted.
func backendServer(t *testing.T, h http.HandlerFunc) (string, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), &conns
}

// okEngine serves, with an engine with opts, one route to a backend
// answering "ok", and returns the proxy's address.
func okEngine(t *testing.T, opts fasthttpengine.Options) string {
	t.Helper()
	up, _ := backendServer(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	return serveEngine(t, opts, []router.Route{route("r", "/", up, 0)}, nil, nil)
}

func route(name, prefix, addr string, timeout time.Duration) router.Route {
	return router.Route{Name: name, Match: router.Match{PathPrefix: prefix}, Upstream: router.Upstream{Static: []string{addr}}, Timeout: timeout}
}

// keepAlive is one client connection sending requests one at a time.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{c, bufio.NewReader(c)}
}

// get sends GET path, its header in parts written pause apart, and
// returns the answer's status.
func (k *keepAlive) get(path string, pause time.Duration) (int, error) {
	parts := []string{"GET " + path + " HTTP/1.1\r\nHost: x\r\n", "X-Part: 2\r\n\r\n"}
	for i, p := range parts {
		if i > 0 {
			time.Sleep(pause)
		}
		if _, err := io.WriteString(k.c, p); err != nil {
			return 0, err
		}
	}
	return k.status()
}

// status reads an answer and returns its status.
func (k *keepAlive) status() (int, error) {
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// post sends a POST with a body of n bytes and returns the answer's status.
func (k *keepAlive) post(path string, n int) (int, error) {
	head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n"
	if _, err := io.WriteString(k.c, head+strings.Repeat("b", n)); err != nil {
		return 0, err
	}
	return k.status()
}

// want408 reads the answer to what was cut: a 408, timeout after start
// (and within a second more).
func (k *keepAlive) want408(t *testing.T, start time.Time, timeout time.Duration, what string) {
	t.Helper()
	resp, err := http.ReadResponse(k.br, nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s: after %s: %v, want a 408", what, took, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("%s: status %d, want 408", what, resp.StatusCode)
	}
	if took < timeout || took > timeout+time.Second {
		t.Errorf("%s was cut after %s, timeout %s", what, took, timeout)
	}
}

// TestKeepAliveRequestsArmNoSocketTimer: with the default timeouts, a
// keep-alive request without a body sets no read deadline on the client's
// socket nor on the upstream's (the engine's watchdog keeps them); one
// with a body sets its body's and lifts it (two). Before, a GET set three
// (the wait for it, its header, the upstream's answer), a POST four.
func TestKeepAliveRequestsArmNoSocketTimer(t *testing.T) {
	up, _ := backendServer(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	var client, upstream atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveEngine(t, fasthttpengine.Options{}, []router.Route{route("r", "/", up, 0)}, deadlineListener{ln, &client},
		func(e *fasthttpengine.Engine) {
			fasthttpengine.WrapUpstreamDial(e, func(c net.Conn) net.Conn { return deadlineConn{c, &upstream} })
		})
	k := dialKeepAlive(t, addr)
	const n = 200
	for i := range n {
		var status int
		var err error
		if i%2 == 0 {
			status, err = k.get("/x", 0)
		} else {
			status, err = k.post("/x", 16<<10)
		}
		if err != nil || status != 200 {
			t.Fatalf("request %d: %d %v", i, status, err)
		}
	}
	if got := client.Load(); got > n {
		t.Errorf("%d requests, half of them with a body, set %d read deadlines on the client's socket, want at most 2 per body", n, got)
	}
	if got := upstream.Load(); got > 0 {
		t.Errorf("%d requests set %d read deadlines on the upstream's socket, want none", n, got)
	}
}

// TestAttackSlowLorisOnTheWatchdog: a client trickling its header, or
// holding a keep-alive connection idle, is cut off by the watchdog (the
// timeouts are ten ticks or more) after its timeout and not before: a
// 408 for the header, a close for the idle connection.
func TestAttackSlowLorisOnTheWatchdog(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr := okEngine(t, fasthttpengine.Options{ReadHeaderTimeout: timeout, IdleTimeout: timeout, TimerTick: 10 * time.Millisecond})

	// The header, a line every 50 ms.
	k := dialKeepAlive(t, addr)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	loris := k.c
	go func() {
		io.WriteString(loris, "GET / HTTP/1.1\r\nHost: x\r\n")
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := io.WriteString(loris, "X-Slow: a\r\n"); err != nil {
					return
				}
			}
		}
	}()
	k.want408(t, start, timeout, "a trickled header")

	// An idle keep-alive connection.
	k = dialKeepAlive(t, addr)
	if status, err := k.get("/", 0); err != nil || status != 200 {
		t.Fatalf("%d %v", status, err)
	}
	start = time.Now()
	_ = k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := k.br.ReadByte(); !errors.Is(err, io.EOF) {
		rest, _ := k.br.Peek(k.br.Buffered())
		t.Fatalf("idle connection: %v (read %q%q), want the server to close it", err, b, rest)
	}
	if took := time.Since(start); took < timeout-20*time.Millisecond || took > timeout+time.Second {
		t.Errorf("an idle connection was closed after %s, idle timeout %s", took, timeout)
	}
}

// TestWatchdogSparesConnectionsThatKeepUp: a connection whose requests
// each come within the idle timeout, their header within the header
// timeout, is never cut, however many ticks pass.
func TestWatchdogSparesConnectionsThatKeepUp(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr := okEngine(t, fasthttpengine.Options{ReadHeaderTimeout: timeout, IdleTimeout: timeout, TimerTick: 10 * time.Millisecond})
	k := dialKeepAlive(t, addr)
	for i := range 8 {
		time.Sleep(timeout / 2)
		if status, err := k.get("/", timeout/3); err != nil || status != 200 {
			t.Fatalf("request %d: %d %v", i, status, err)
		}
	}
	for i := range 500 { // and many requests, each in less than a tick
		if status, err := k.get("/", 0); err != nil || status != 200 {
			t.Fatalf("quick request %d: %d %v", i, status, err)
		}
	}
}

// TestFaultUpstreamHangsOnTheWatchdog: an upstream that does not answer
// within the route's timeout (kept by the watchdog) gets a 504 after the
// timeout; its connection is not used again, and the next request is
// served on a new one.
func TestFaultUpstreamHangsOnTheWatchdog(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var calls atomic.Int64
	gone := make(chan struct{}, 1)
	up, conns := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select {
			case <-r.Context().Done(): // the proxy closed the connection
				gone <- struct{}{}
			case <-time.After(5 * time.Second):
			}
			return
		}
		io.WriteString(w, "ok")
	})
	addr := serveEngine(t, fasthttpengine.Options{TimerTick: 10 * time.Millisecond}, []router.Route{route("r", "/", up, timeout)}, nil, nil)
	k := dialKeepAlive(t, addr)
	start := time.Now()
	status, err := k.get("/", 0)
	took := time.Since(start)
	if err != nil || status != http.StatusGatewayTimeout {
		t.Fatalf("%d %v, want 504", status, err)
	}
	if took < timeout || took > timeout+time.Second {
		t.Errorf("504 after %s, route timeout %s", took, timeout)
	}
	select {
	case <-gone:
	case <-time.After(2 * time.Second):
		t.Error("the upstream connection that timed out was not closed")
	}
	if status, err := k.get("/", 0); err != nil || status != 200 {
		t.Fatalf("next request: %d %v", status, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d upstream connections, want 2 (the one that timed out is not reused)", n)
	}
}

// TestShortTimeoutLeavesNoDeadlineOnPooledConnection: a try with a
// timeout under ten ticks sets it on the socket; the next try on the same
// pooled connection, kept by the watchdog, must not inherit it (it would
// have passed, and the read would fail at once).
func TestShortTimeoutLeavesNoDeadlineOnPooledConnection(t *testing.T) {
	up, conns := backendServer(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	addr := serveEngine(t, fasthttpengine.Options{TimerTick: 10 * time.Millisecond},
		[]router.Route{route("short", "/short", up, 50*time.Millisecond), route("long", "/long", up, time.Second)}, nil, nil)
	k := dialKeepAlive(t, addr)
	if status, err := k.get("/short", 0); err != nil || status != 200 {
		t.Fatalf("short: %d %v", status, err)
	}
	time.Sleep(150 * time.Millisecond) // the short try's deadline is long past
	for _, path := range []string{"/long", "/short", "/long"} {
		if status, err := k.get(path, 0); err != nil || status != 200 {
			t.Fatalf("%s: %d %v", path, status, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections, want the pooled one reused", n)
	}
}

// TestAttackSlowBodyIsCutAfterTheBodyTimeout: a body that stops coming is
// cut after the body timeout with a 408, not the header's (fasthttp reads
// a short body before the request reaches the engine's handler, so its
// deadline is set with the header's end); an answer slower than the body
// timeout is passed on and the connection kept.
func TestAttackSlowBodyIsCutAfterTheBodyTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	up, _ := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			time.Sleep(2 * timeout)
		}
		io.WriteString(w, "ok")
	})
	addr := serveRouter(t, router.Config{BodyTimeout: timeout}, fasthttpengine.Options{TimerTick: 10 * time.Millisecond},
		[]router.Route{route("r", "/", up, 0)}, nil, nil)

	k := dialKeepAlive(t, addr)
	start := time.Now()
	if _, err := io.WriteString(k.c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf"); err != nil {
		t.Fatal(err)
	}
	k.want408(t, start, timeout, "a stalled body")

	k = dialKeepAlive(t, addr)
	for i := range 2 {
		if status, err := k.post("/slow", 1000); err != nil || status != 200 {
			t.Fatalf("POST %d with an answer slower than the body timeout: %d %v", i, status, err)
		}
	}
}

// TestBodyInMemoryArrivesWhole: a body read whole (up to
// router.MaxRetryBodyBytes) reaches the upstream byte for byte, whether
// it is copied behind the request head or written beside it (from 4 KiB).
func TestBodyInMemoryArrivesWhole(t *testing.T) {
	up, _ := backendServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	addr := serveEngine(t, fasthttpengine.Options{}, []router.Route{route("r", "/", up, 0)}, nil, nil)
	for _, n := range []int{1, 4<<10 - 1, 4 << 10, 20000, router.MaxRetryBodyBytes} {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte('a' + i%26)
		}
		resp, err := http.Post("http://"+addr+"/echo", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: status %d, %d bytes back (X-Length %s), equal %t, %v", n, resp.StatusCode, len(got), resp.Header.Get("X-Length"), bytes.Equal(got, body), err)
		}
	}
}
