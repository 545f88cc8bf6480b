//go:build linux && !race

package loopengine_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/loopengine"
	"github.com/sluicehq/sluice/router/ratelimit"
)

// TestServeAllocations: a request the loops serve allocates nothing, on a
// route with a rate limit and a breaker, for a GET (with cookies, which
// the router looks the pin cookie up in) and a 16 KiB POST
// (counted process-wide: the loops, the router, the raw client and
// backend, which allocate nothing themselves). The race detector inflates
// allocation counts, so this file builds without it; make test runs it.
func TestServeAllocations(t *testing.T) {
	backend := fixedBackend(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breaker.New()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Update([]router.Route{{
		Name:           "bench",
		Match:          router.Match{PathPrefix: "/"},
		Upstream:       router.Upstream{Static: []string{backend}},
		RateLimit:      &router.RateLimit{RPS: 1e8, Burst: 1e8},
		CircuitBreaker: &router.CircuitBreaker{ConsecutiveFailures: 50, OpenFor: 5 * time.Second},
	}}); err != nil {
		t.Fatal(err)
	}
	e := loopengine.New(r, loopengine.Options{Loops: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ln) }()
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
		<-done
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"GET", []byte("GET /x HTTP/1.1\r\nHost: bench\r\nUser-Agent: t\r\n\r\n")},
		{"GET with cookies", []byte("GET /x HTTP/1.1\r\nHost: bench\r\nCookie: a=1; b=2\r\nCookie: c=3\r\n\r\n")},
		{"POST 16 KiB", append([]byte(fmt.Sprintf("POST /x HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n", 16<<10)), bytes.Repeat([]byte("p"), 16<<10)...)},
	} {
		want := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		got := make([]byte, len(want))
		send := func() {
			if _, err := c.Write(tc.req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %q, %v; want %q", tc.name, got, err, want)
			}
		}
		for range 100 {
			send() // warm the pools and buffers
		}
		n := testing.AllocsPerRun(2000, send)
		t.Logf("%s: %.2f allocations per request", tc.name, n)
		if n > 0.2 {
			t.Errorf("%s: %.2f allocations per request, want none", tc.name, n)
		}
	}
	if got := e.Counts(); got.HandedOff != 0 || got.Served < 6300 {
		t.Errorf("counts %+v: want every request served by the loop", got)
	}
}

// fixedBackend answers every request on its connections with answer,
// allocating nothing per request; it reads request heads and, by their
// Content-Length, bodies.
func fixedBackend(t *testing.T, answer string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveFixed(c, []byte(answer))
		}
	}()
	return ln.Addr().String()
}

func serveFixed(c net.Conn, answer []byte) {
	defer c.Close()
	buf := make([]byte, 0, 128<<10)
	for {
		end := bytes.Index(buf, []byte("\r\n\r\n"))
		if end >= 0 {
			need := end + 4
			if i := bytes.Index(buf[:end], []byte("Content-Length: ")); i >= 0 {
				n := 0
				for _, d := range buf[i+len("Content-Length: ") : end+2] {
					if d < '0' || d > '9' {
						break
					}
					n = n*10 + int(d-'0')
				}
				need += n
			}
			if len(buf) >= need {
				if _, err := c.Write(answer); err != nil {
					return
				}
				buf = buf[:copy(buf, buf[need:])]
				continue
			}
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		if err != nil {
			return
		}
		buf = buf[:len(buf)+n]
	}
}
