package fasthttpengine_test

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/router"
	breakers "github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/fasthttpengine"
	"github.com/sluicehq/sluice/router/ratelimit"
)

// BenchmarkForward measures a request through the fasthttp engine on
// loopback, with the route deploy/bench/proxy.sh uses (rate limit and
// breaker). The client and the upstream are fasthttp too, so that the
// allocations reported are nearly all the engine's and the router's.
func BenchmarkForward(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 64 << 10} {
		b.Run(byteSize(size), func(b *testing.B) { benchForward(b, size) })
	}
}

// BenchmarkBareForward is BenchmarkForward's peer: the same client and
// upstream, with a bare fasthttp forwarder in between (fasthttp's server
// and HostClient, no route logic, no header rewriting), the calibration
// issue 16 measured against nginx. The ratio of the two is what the
// router and the engine cost beyond fasthttp itself.
func BenchmarkBareForward(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 64 << 10} {
		b.Run(byteSize(size), func(b *testing.B) { benchClient(b, bareProxy(b, size), size) })
	}
}

// bareProxy serves a bare fasthttp forwarder to a fasthttp upstream
// answering size bytes and returns its address.
func bareProxy(tb testing.TB, size int) string {
	hc := &fasthttp.HostClient{
		Addr:     benchUpstream(tb, size),
		MaxConns: 4096,
		// Neither fasthttp's default dialer nor a long idle time: both
		// leave goroutines running after the test (goleak).
		Dial:                func(addr string) (net.Conn, error) { return net.Dial("tcp", addr) },
		MaxIdleConnDuration: 100 * time.Millisecond,
	}
	tb.Cleanup(hc.CloseIdleConnections)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	serveConns(tb, ln, srv)
	return ln.Addr().String()
}

// benchUpstream serves a fasthttp upstream answering size bytes and
// returns its address.
func benchUpstream(tb testing.TB, size int) string {
	body := make([]byte, size)
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) }}
	serveConns(tb, upLn, up)
	return upLn.Addr().String()
}

// cpuTime returns the CPU time the process used so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return string(fasthttp.AppendUint(nil, n>>10)) + "KiB"
	}
	return string(fasthttp.AppendUint(nil, n)) + "B"
}

// rawClient sends one fixed request at a time on one keep-alive
// connection, allocating nothing.
type rawClient struct {
	c    net.Conn
	br   *bufio.Reader
	resp fasthttp.Response
	req  []byte // rawRequest unless set
}

var rawRequest = []byte("GET /orders/1 HTTP/1.1\r\nHost: bench.local\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n")

func dialRaw(tb testing.TB, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &rawClient{c: c, br: bufio.NewReaderSize(c, 128<<10), req: rawRequest}
}

// rawPost is a POST with a body of n bytes.
func rawPost(n int) []byte {
	head := "POST /orders HTTP/1.1\r\nHost: bench.local\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n"
	return append([]byte(head), bytes.Repeat([]byte("x"), n)...)
}

// do sends the request and returns the answer's status and body length.
func (rc *rawClient) do() (int, int, error) {
	if _, err := rc.c.Write(rc.req); err != nil {
		return 0, 0, err
	}
	if err := rc.resp.Read(rc.br); err != nil {
		return 0, 0, err
	}
	return rc.resp.StatusCode(), len(rc.resp.Body()), nil
}

// benchProxy serves, with the engine, a route like the benchmark's to a
// fasthttp upstream answering size bytes; breaker adds the circuit
// breaker. It returns the proxy's address.
func benchProxy(tb testing.TB, size int, breaker bool) string {
	upAddr := benchUpstream(tb, size)
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breakers.New()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	rt := router.Route{Name: "bench", Match: router.Match{PathPrefix: "/"}, Upstream: router.Upstream{Static: []string{upAddr}}}
	rt.RateLimit = &router.RateLimit{RPS: 1e8, Burst: 1e8}
	if breaker {
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 50, OpenFor: 5 * time.Second}
	}
	if err := r.Update([]router.Route{rt}); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e := fasthttpengine.New(r, fasthttpengine.Options{})
	go e.Serve(ln)
	tb.Cleanup(func() { _ = e.Close() })
	return ln.Addr().String()
}

// TestForwardAllocations: forwarding a request allocates nothing in the
// engine or the router, with or without a circuit breaker (router/breaker
// runs the try inside gobreaker's Execute with a closure that stays on the
// stack), with or without a body. Counted process-wide, fasthttp client
// and upstream included (they allocate nothing once warm); fasthttp's
// server allocates one io.LimitReader per request with a body (it drains
// what is left of a streamed body with io.CopyN), hence the POSTs' bound
// of one. The engine allocated one more per POST before: the body's
// Content-Length written through a scratch buffer it never kept.
func TestForwardAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under -race; make test runs this test again without it")
	}
	for _, tc := range []struct {
		breaker bool
		post    int // a POST body of this many bytes (0: GET)
		max     float64
	}{{false, 0, 0.2}, {true, 0, 0.2}, {true, 1 << 10, 1.2}, {true, 16 << 10, 1.2}} {
		c := dialRaw(t, benchProxy(t, 64, tc.breaker))
		if tc.post > 0 {
			c.req = rawPost(tc.post)
		}
		send := func() {
			if status, _, err := c.do(); err != nil || status != 200 {
				t.Fatalf("%v %d", err, status)
			}
		}
		for range 100 {
			send() // warm the pools
		}
		n := testing.AllocsPerRun(2000, send)
		if n > tc.max {
			t.Errorf("breaker %t, POST body %d: %.2f allocations per request, want at most %.1f", tc.breaker, tc.post, n, tc.max)
		}
		t.Logf("breaker %t, POST body %d: %.2f allocations per request", tc.breaker, tc.post, n)
	}
}

// serveConns serves ln's connections with srv, one goroutine each (no
// worker pool, whose sweeper outlives Shutdown), until the test ends.
func serveConns(tb testing.TB, ln net.Listener, srv *fasthttp.Server) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() { _ = srv.ServeConn(c) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

func benchForward(b *testing.B, size int) { benchClient(b, benchProxy(b, size, true), size) }

// benchClient sends requests to addr in parallel, one connection per
// goroutine, and checks that each answer has size bytes. Besides ns/op it
// reports cpu-ns/op, the process's CPU time (user and system) per request:
// client, proxy and upstream together, so that the difference between two
// proxies is their own cost, less swayed than wall time by other work on
// the machine.
func benchClient(b *testing.B, addr string, size int) {
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	defer func() { b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := dialRaw(b, addr)
		for pb.Next() {
			if status, n, err := c.do(); err != nil || status != 200 || n != size {
				b.Errorf("%v %d %d", err, status, n)
				return
			}
		}
	})
}
