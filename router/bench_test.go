package router_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/ratelimit"
)

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkServeHTTP measures the proxy's own cost per request (match,
// rate limit, breaker, ReverseProxy, upstream round trip on loopback) with
// the route deploy/bench/proxy.sh uses.
func BenchmarkServeHTTP(b *testing.B) {
	body := []byte("0123456789012345678901234567890123456789012345678901234567890123")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))
	defer up.Close()
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breaker.New()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rt := staticRoute("bench", "/", up.Listener.Addr().String())
	rt.RateLimit = &router.RateLimit{RPS: 1e8, Burst: 1e8}
	rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 50, OpenFor: 5 * time.Second}
	if err := r.Update([]router.Route{rt}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "http://bench.local/orders/1", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			r.ServeHTTP(w, req)
		}
	})
}

// BenchmarkState measures the live-table snapshot a proxy publishes every
// 5 s: 20 routes of 10 instances each, with rate limits and breakers.
func BenchmarkState(b *testing.B) {
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breaker.New()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var routes []router.Route
	for i := range 20 {
		addrs := make([]string, 10)
		for j := range addrs {
			addrs[j] = "127.0.0.1:" + strconv.Itoa(10000+100*i+j)
		}
		rt := staticRoute("route-"+strconv.Itoa(i), "/r"+strconv.Itoa(i), addrs...)
		rt.RateLimit = &router.RateLimit{RPS: 100}
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 5}
		routes = append(routes, rt)
	}
	if err := r.Update(routes); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.State()
	}
}
