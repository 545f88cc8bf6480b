package router_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/router"

	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/prommetrics"
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

// benchInbound is a fixed GET request, as an engine presents it.
type benchInbound struct{}

func (benchInbound) Method() string { return "GET" }
func (benchInbound) Host() string   { return "bench.local" }
func (benchInbound) Path() string   { return "/orders/1" }
func (benchInbound) Header(name string) string {
	if name == "X-Forwarded-For" {
		return "192.0.2.1"
	}
	return ""
}
func (benchInbound) HeaderValues(name string) []string { return nil }
func (benchInbound) Cookie(string) string              { return "" }
func (benchInbound) RemoteAddr() string                { return "127.0.0.1:5555" }
func (benchInbound) Context() context.Context          { return context.Background() }

// benchSender answers every try 200 at once.
type benchSender struct{}

func (benchSender) Replayable() (bool, error)               { return true, nil }
func (benchSender) Send(string, time.Duration) (int, error) { return 200, nil }
func (benchSender) Discard()                                {}
func (benchSender) ClientErr() (error, bool)                { return nil, false }

// BenchmarkExchange measures the router's own work per request, without
// an engine or I/O: Begin, Forward with a Sender that answers at once, End,
// on the route deploy/bench/proxy.sh uses (rate limit and breaker), with
// Prometheus metrics.
func BenchmarkExchange(b *testing.B) {
	m, err := prommetrics.New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breaker.New(), Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rt := staticRoute("bench", "/", "127.0.0.1:1")
	rt.RateLimit = &router.RateLimit{RPS: 1e8, Burst: 1e8}
	rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 50, OpenFor: 5 * time.Second}
	if err := r.Update([]router.Route{rt}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var in benchInbound
		var s benchSender
		for pb.Next() {
			x, a := r.Begin(in)
			if a != nil {
				b.Errorf("answer %d", a.Status)
				return
			}
			if status, err := x.Forward(s); status != 200 || err != nil {
				b.Errorf("%d %v", status, err)
				return
			}
			r.End(x, 0)
		}
	})
}
