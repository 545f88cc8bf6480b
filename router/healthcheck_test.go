package router_test

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
)

// TestFaultHealthCheckRecovery: an instance ejected for failing requests
// stays out past its ejection time while its health checks fail (passive
// checks alone never bring it back), and returns once they pass.
func TestFaultHealthCheckRecovery(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startFlaky(t, "a"), startFlaky(t, "b")
		b.broken.Store(true)
		b.hcBroken.Store(true)
		rt := staticRoute("hc", "/", a.addr, b.addr)
		rt.OutlierDetection = &router.OutlierDetection{Consecutive5xx: 2, BaseEjectionTime: 200 * time.Millisecond, PanicThreshold: pct(0)}
		// A high unhealthy_threshold: the active checks must not take b out
		// before the requests eject it.
		rt.HealthCheck = &router.HealthCheck{Path: "/healthz", Interval: 100 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 1000}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		testkit.EventuallyTrue(t, 5*time.Second, "b ejected", func() bool {
			p.get(t, "/")
			ejected, _, _ := instanceState(t, p.r, "hc", b.addr)
			return ejected
		})
		ejectedAt := time.Now()
		reqs := b.reqs.Load()
		for time.Since(ejectedAt) < 700*time.Millisecond { // 3.5 × the ejection time
			if res := p.get(t, "/"); res.status != 200 || res.body != "a" {
				t.Fatalf("while b is out: %d %q, want a's answer", res.status, res.body)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := b.reqs.Load() - reqs; got != 0 {
			t.Fatalf("b got %d requests after its ejection time while its health checks failed", got)
		}
		if ejected, _, _ := instanceState(t, p.r, "hc", b.addr); !ejected {
			t.Fatal("b is no longer ejected though its health checks fail")
		}
		if b.checks.Load() < 3 {
			t.Fatalf("b got %d health checks in 700ms at an interval of 100ms", b.checks.Load())
		}

		b.broken.Store(false)
		b.hcBroken.Store(false)
		fixed, checks := time.Now(), b.checks.Load()
		testkit.EventuallyTrue(t, 5*time.Second, "b back after its health checks passed", func() bool {
			p.get(t, "/")
			return b.reqs.Load() > reqs
		})
		if n := b.checks.Load() - checks; n < 2 {
			t.Errorf("b came back after %d passing checks, want healthy_threshold (2)", n)
		}
		t.Logf("b back %v after it was fixed", time.Since(fixed).Round(time.Millisecond))
		if ejected, health, _ := instanceState(t, p.r, "hc", b.addr); ejected || health != "healthy" {
			t.Errorf("b: ejected %t, health %q; want back and healthy", ejected, health)
		}
	})
}

// TestFaultHealthCheckGatesOpenBreaker: with health checks, an instance
// whose breaker tripped gets no half-open probe when open_for is over; it
// returns, with its breaker closed, when its health checks pass.
func TestFaultHealthCheckGatesOpenBreaker(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startFlaky(t, "a"), startFlaky(t, "b")
		b.broken.Store(true)
		b.hcBroken.Store(true)
		rt := staticRoute("gate", "/", a.addr, b.addr)
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 2, OpenFor: 150 * time.Millisecond}
		rt.HealthCheck = &router.HealthCheck{Path: "/healthz", Interval: 100 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 1000}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		testkit.EventuallyTrue(t, 5*time.Second, "b's breaker open", func() bool {
			p.get(t, "/")
			_, health, breaker := instanceState(t, p.r, "gate", b.addr)
			return breaker == "open" && health == "unhealthy"
		})
		reqs := b.reqs.Load()
		for start := time.Now(); time.Since(start) < 600*time.Millisecond; {
			p.get(t, "/")
			time.Sleep(10 * time.Millisecond)
		}
		if got := b.reqs.Load() - reqs; got != 0 {
			t.Fatalf("b got %d requests (half-open probes) while its health checks failed", got)
		}
		b.broken.Store(false)
		b.hcBroken.Store(false)
		testkit.EventuallyTrue(t, 5*time.Second, "b back", func() bool {
			p.get(t, "/")
			return b.reqs.Load() > reqs
		})
		if _, health, breaker := instanceState(t, p.r, "gate", b.addr); health != "healthy" || breaker != "closed" {
			t.Errorf("b: health %q, breaker %q; want healthy and closed", health, breaker)
		}
	})
}

// TestHealthCheckTakesFailingInstanceOut: an instance whose health checks
// fail leaves the balancer after unhealthy_threshold checks, though its
// requests would succeed, and the metrics say so.
func TestHealthCheckTakesFailingInstanceOut(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startFlaky(t, "a"), startFlaky(t, "b")
		b.hcBroken.Store(true)
		rt := staticRoute("active", "/", a.addr, b.addr)
		rt.HealthCheck = &router.HealthCheck{Path: "/healthz", Interval: 100 * time.Millisecond, UnhealthyThreshold: 2}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		testkit.EventuallyTrue(t, 5*time.Second, "b unhealthy", func() bool {
			_, health, _ := instanceState(t, p.r, "active", b.addr)
			return health == "unhealthy"
		})
		n := b.reqs.Load()
		statuses := p.hammer(t, 20, 1, func(int) *http.Request { return p.getReq("/") })
		if got := b.reqs.Load() - n; got != 0 || statuses[200] != 20 {
			t.Fatalf("b got %d requests while failing its health checks (statuses %v)", got, statuses)
		}
		if healthy, ok := p.metrics.last(p.metrics.healthy, "active/"+b.addr); healthy || !ok {
			t.Errorf("health metric of b: %t (set: %t), want false", healthy, ok)
		}
		b.hcBroken.Store(false)
		testkit.EventuallyTrue(t, 5*time.Second, "b back", func() bool {
			p.get(t, "/")
			return b.reqs.Load() > n
		})
	})
}

// TestAttackHealthCheckObeysUpstreamPolicy: health checks connect under
// the router's upstream policy like requests do, so a route cannot be used
// to probe an address the policy refuses.
func TestAttackHealthCheckObeysUpstreamPolicy(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startFlaky(t, "b")
		ap := netip.MustParseAddrPort(b.addr)
		rt := staticRoute("probe", "/", b.addr)
		rt.HealthCheck = &router.HealthCheck{Path: "/healthz", Interval: 100 * time.Millisecond, UnhealthyThreshold: 1}
		p := newProxy(t, router.Config{Upstream: router.UpstreamPolicy{Deny: []router.UpstreamRule{{Prefix: netip.PrefixFrom(ap.Addr(), 32), Port: ap.Port()}}}}, []router.Route{rt})
		testkit.EventuallyTrue(t, 5*time.Second, "b unhealthy", func() bool {
			_, health, _ := instanceState(t, p.r, "probe", b.addr)
			return health == "unhealthy"
		})
		if n := b.checks.Load(); n != 0 {
			t.Fatalf("the refused address got %d health checks", n)
		}
	})
}
