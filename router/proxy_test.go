package router_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
)

func staticRoute(name, prefix string, addrs ...string) router.Route {
	return router.Route{Name: name, Match: router.Match{PathPrefix: prefix}, Upstream: router.Upstream{Static: addrs}}
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b, c := startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("rr", "/", a.addr, b.addr, c.addr)})
		counts := map[string]int{}
		for i := 0; i < 300; i++ {
			res := p.get(t, "/x")
			if res.status != http.StatusOK {
				t.Fatalf("request %d: status %d %s", i, res.status, res.body)
			}
			counts[res.body]++
		}
		for _, n := range []string{"a", "b", "c"} {
			if counts[n] != 100 {
				t.Errorf("backend %s got %d of 300 requests, want 100 (round robin): %v", n, counts[n], counts)
			}
		}
	})
}

func TestLeastRequestsAvoidsSlowInstance(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		slow := startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(150 * time.Millisecond)
			_, _ = w.Write([]byte("slow"))
		})
		fast := startBackend(t, "fast", nil)
		rt := staticRoute("lr", "/", slow.addr, fast.addr)
		rt.Upstream.Balancer = router.BalancerLeastRequests
		p := newProxy(t, router.Config{}, []router.Route{rt})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 40; i++ {
					resp, err := p.client.Get(p.url + "/")
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d requests failed", failed.Load())
		}
		s, f := slow.hits.Load(), fast.hits.Load()
		if s+f != 240 || s*5 > s+f {
			t.Errorf("slow instance got %d of %d requests; least_requests should send it under 20%%", s, s+f)
		}
	})
}

func TestWeightedFollowsWeights(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
		rt := staticRoute("w", "/", a.addr, b.addr)
		rt.Upstream.Balancer = router.BalancerWeighted
		rt.Upstream.Weights = map[string]int{a.addr: 3, b.addr: 1}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		for i := 0; i < 400; i++ {
			p.get(t, "/")
		}
		if got := a.hits.Load(); got < 260 || got > 340 {
			t.Errorf("weight 3:1 sent %d of 400 to a, want about 300", got)
		}
	})
}

func TestMatching(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		names := []string{"orders", "orders-canary", "orders-host", "items", "wild", "catchall", "legacy"}
		backends := map[string]*backend{}
		for _, n := range names {
			backends[n] = startBackend(t, n, nil)
		}
		routes := []router.Route{
			{Name: "orders", Match: router.Match{PathPrefix: "/orders"}, Upstream: router.Upstream{Static: []string{backends["orders"].addr}}},
			{Name: "orders-canary", Match: router.Match{PathPrefix: "/orders", Methods: []string{"GET"}, Headers: map[string]string{"X-Env": "canary"}}, Upstream: router.Upstream{Static: []string{backends["orders-canary"].addr}}},
			{Name: "orders-host", Match: router.Match{Hosts: []string{"api.local"}, PathPrefix: "/orders"}, Upstream: router.Upstream{Static: []string{backends["orders-host"].addr}}},
			{Name: "items", Match: router.Match{PathPrefix: "/orders/items"}, Upstream: router.Upstream{Static: []string{backends["items"].addr}}},
			{Name: "wild", Match: router.Match{Hosts: []string{"*.example.com"}}, Upstream: router.Upstream{Static: []string{backends["wild"].addr}}},
			{Name: "legacy", Match: router.Match{PathPrefix: "/legacy/", Methods: []string{"DELETE"}}, Upstream: router.Upstream{Static: []string{backends["legacy"].addr}}},
		}
		p := newProxy(t, router.Config{}, routes)
		tests := []struct {
			name, method, path string
			hdr                map[string]string
			want               string // backend, or "404"
		}{
			{"prefix", "GET", "/orders/7", nil, "orders"},
			{"prefix exact", "GET", "/orders", nil, "orders"},
			{"prefix is a path segment", "GET", "/ordersx", nil, "404"},
			{"longest prefix", "GET", "/orders/items/3", nil, "items"},
			{"header and method", "GET", "/orders/7", map[string]string{"X-Env": "canary"}, "orders-canary"},
			{"header but other method", "POST", "/orders/7", map[string]string{"X-Env": "canary"}, "orders"},
			{"other header value", "GET", "/orders/7", map[string]string{"X-Env": "prod"}, "orders"},
			{"host beats longer prefix", "GET", "/orders/items/3", map[string]string{"Host": "API.local:8080"}, "orders-host"},
			{"wildcard host", "GET", "/anything", map[string]string{"Host": "shop.example.com"}, "wild"},
			{"wildcard needs a subdomain", "GET", "/anything", map[string]string{"Host": "example.com"}, "404"},
			{"method only", "DELETE", "/legacy/x", nil, "legacy"},
			{"method mismatch", "GET", "/legacy/x", nil, "404"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				res := p.do(t, tc.method, tc.path, tc.hdr)
				if tc.want == "404" {
					if res.status != http.StatusNotFound {
						t.Fatalf("status %d body %q, want 404", res.status, res.body)
					}
					if code, _, _ := errorOf(t, res); code != "not_found" {
						t.Errorf("error code %q, want not_found", code)
					}
					return
				}
				if res.status != 200 || res.header.Get("X-Backend") != tc.want {
					t.Fatalf("got status %d backend %q, want backend %q", res.status, res.header.Get("X-Backend"), tc.want)
				}
			})
		}
	})
}

func TestStripPrefix(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		strip := staticRoute("strip", "/api", b.addr)
		strip.StripPrefix = true
		keep := staticRoute("keep", "/keep", b.addr)
		p := newProxy(t, router.Config{}, []router.Route{strip, keep})
		for _, tc := range []struct{ in, want string }{
			{"/api/orders/7", "/orders/7"},
			{"/api", "/"},
			{"/api/", "/"},
			{"/keep/x", "/keep/x"},
		} {
			if got := p.get(t, tc.in).header.Get("X-Got-Path"); got != tc.want {
				t.Errorf("%s reached the backend as %q, want %q", tc.in, got, tc.want)
			}
		}
	})
}

// TestRateLimitHoldsConfiguredRate drives a global 20 rps limit for 5 s
// with 8 concurrent clients (far more than 20 rps, even on a loaded
// machine) and expects burst + 20·5 answers of 200 (±10 %), every other
// one a 429 carrying Retry-After and the RateLimit headers. The burst is
// one second's worth so that a scheduling stall of the clients (shorter
// than a second) loses no tokens.
func TestRateLimitHoldsConfiguredRate(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		t.Parallel()
		b := startBackend(t, "b", nil)
		rt := staticRoute("limited", "/", b.addr)
		rt.RateLimit = &router.RateLimit{RPS: 20, Burst: 20}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		const window = 5 * time.Second
		start := time.Now()
		var mu sync.Mutex
		ok, limited, other := 0, 0, 0
		var last429 *http.Response
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50000 && time.Since(start) < window; i++ {
					resp, err := p.client.Get(p.url + "/")
					if err != nil {
						mu.Lock()
						other++
						mu.Unlock()
						continue
					}
					resp.Body.Close()
					mu.Lock()
					switch resp.StatusCode {
					case 200:
						ok++
					case 429:
						limited++
						last429 = resp
					default:
						other++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		if other != 0 {
			t.Fatalf("%d requests neither passed nor were limited", other)
		}
		if limited < ok {
			t.Fatalf("only %d requests limited against %d passed: the clients did not exceed the rate", limited, ok)
		}
		want := 20 + 20*elapsed
		if float64(ok) < want*0.9 || float64(ok) > want*1.1 {
			t.Errorf("%d requests passed in %.2fs, want %.0f ±10%%", ok, elapsed, want)
		}
		h := last429.Header
		if h.Get("Retry-After") != "1" {
			t.Errorf("Retry-After = %q, want 1", h.Get("Retry-After"))
		}
		if got := h.Get("RateLimit-Policy"); got != `"limited";q=20;w=1` {
			t.Errorf("RateLimit-Policy = %q", got)
		}
		if got := h.Get("RateLimit"); !strings.HasPrefix(got, `"limited";r=0;t=`) {
			t.Errorf("RateLimit = %q", got)
		}
		if h.Get("Content-Type") != "application/json" {
			t.Errorf("429 Content-Type %q", h.Get("Content-Type"))
		}
		p.metrics.mu.Lock()
		counted := p.metrics.limited["limited"]
		p.metrics.mu.Unlock()
		if counted != limited {
			t.Errorf("metrics counted %d rejections, client saw %d", counted, limited)
		}
	})
}

func TestRateLimitPerKey(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		byUser := staticRoute("by-user", "/user", b.addr)
		byUser.RateLimit = &router.RateLimit{RPS: 1, Burst: 2, Key: "header:X-User-Id"}
		byIP := staticRoute("by-ip", "/ip", b.addr)
		byIP.RateLimit = &router.RateLimit{RPS: 1, Burst: 1, Key: "ip"}
		clock := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		p := newProxy(t, router.Config{Now: clock.Now}, []router.Route{byUser, byIP})
		statuses := func(path string, hdr map[string]string, n int) []int {
			var out []int
			for i := 0; i < n; i++ {
				out = append(out, p.do(t, "GET", path, hdr).status)
			}
			return out
		}
		if got := statuses("/user", map[string]string{"X-User-Id": "alice"}, 3); got[0] != 200 || got[1] != 200 || got[2] != 429 {
			t.Errorf("alice: %v, want 200 200 429 (burst 2)", got)
		}
		if got := statuses("/user", map[string]string{"X-User-Id": "bob"}, 1); got[0] != 200 {
			t.Errorf("bob has his own bucket, got %v", got)
		}
		// A client that spoofs X-Forwarded-For still shares its address's bucket.
		if got := statuses("/ip", map[string]string{"X-Forwarded-For": "10.9.9.9"}, 1); got[0] != 200 {
			t.Errorf("first ip request: %v", got)
		}
		if got := statuses("/ip", map[string]string{"X-Forwarded-For": "10.1.1.1"}, 1); got[0] != 429 {
			t.Errorf("spoofed X-Forwarded-For got a fresh bucket: %v", got)
		}
		clock.Advance(time.Second)
		if got := statuses("/user", map[string]string{"X-User-Id": "alice"}, 2); got[0] != 200 || got[1] != 429 {
			t.Errorf("alice after 1 s at 1 rps: %v, want 200 429", got)
		}
	})
}

func TestLimiterStateSurvivesReload(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		rt := staticRoute("lim", "/", b.addr)
		rt.RateLimit = &router.RateLimit{RPS: 0.001, Burst: 1}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		p := newProxy(t, router.Config{Now: func() time.Time { return now }}, []router.Route{rt})
		if s := p.get(t, "/").status; s != 200 {
			t.Fatalf("first request %d", s)
		}
		other := staticRoute("other", "/other", b.addr)
		if err := p.r.Update([]router.Route{rt, other}); err != nil {
			t.Fatal(err)
		}
		if s := p.get(t, "/").status; s != 429 {
			t.Fatalf("after reloading an unchanged route: %d, want 429 (bucket kept)", s)
		}
		explicit := rt
		explicit.RateLimit = &router.RateLimit{RPS: 0.001, Burst: 1, Scope: router.ScopeProxy}
		if err := p.r.Update([]router.Route{explicit, other}); err != nil {
			t.Fatal(err)
		}
		if s := p.get(t, "/").status; s != 429 {
			t.Fatalf("after spelling out the default scope: %d, want 429 (same limit, bucket kept)", s)
		}
		for _, c := range []struct {
			what string
			rl   router.RateLimit
		}{
			{"rate", router.RateLimit{RPS: 0.002, Burst: 1}},
			{"scope", router.RateLimit{RPS: 0.002, Burst: 1, Scope: router.ScopeCluster}},
		} {
			changed := rt
			changed.RateLimit = &c.rl
			if err := p.r.Update([]router.Route{changed, other}); err != nil {
				t.Fatal(err)
			}
			if s := p.get(t, "/").status; s != 200 {
				t.Fatalf("after changing the %s: %d, want 200 (new bucket)", c.what, s)
			}
		}
	})
}

func TestBreakerOpensOnKilledInstanceAndClosesWhenBack(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
		rt := staticRoute("cb", "/", a.addr, b.addr)
		rt.Retries = &router.RetryPolicy{Attempts: 1}
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 3, OpenFor: 300 * time.Millisecond}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		b.stop()
		for i := 0; i < 20; i++ {
			// Connection errors are retried on a: the client sees no failure.
			if res := p.get(t, "/"); res.status != 200 || res.body != "a" {
				t.Fatalf("request %d with b down: %d %q", i, res.status, res.body)
			}
		}
		key := "cb/" + b.addr
		if !p.metrics.opened(key) {
			t.Fatalf("breaker transitions of b: %v, want open", p.metrics.breakerStates(key))
		}
		b.restart(t)
		testkit.EventuallyTrue(t, 5*time.Second, "b to be back in rotation", func() bool {
			p.get(t, "/")
			return b.hits.Load() > 0
		})
		testkit.EventuallyTrue(t, 5*time.Second, "b's breaker to close", func() bool {
			p.get(t, "/")
			st := p.metrics.breakerStates(key)
			return p.metrics.opened(key) && st[len(st)-1] == router.BreakerClosed
		})
	})
}

func TestFiveHundredsTripBreakerButFourHundredsDoNot(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		var status atomic.Int64
		status.Store(404)
		b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
		rt := staticRoute("cb", "/", b.addr)
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 2, OpenFor: time.Minute}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		for i := 0; i < 5; i++ {
			if s := p.get(t, "/").status; s != 404 {
				t.Fatalf("status %d, want the backend's 404", s)
			}
		}
		status.Store(500)
		p.get(t, "/")
		p.get(t, "/")
		res := p.get(t, "/")
		if res.status != http.StatusServiceUnavailable {
			t.Fatalf("after two 5xx: %d, want 503 from the open breaker", res.status)
		}
		if got := b.hits.Load(); got != 7 {
			t.Errorf("backend saw %d requests, want 7: the open breaker must not send", got)
		}
	})
}

func TestAllInstancesDownIsFast503(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
		rt := staticRoute("down", "/", a.addr, b.addr)
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: 10 * time.Second}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		a.stop()
		b.stop()
		for i := 0; i < 2; i++ {
			if s := p.get(t, "/").status; s != http.StatusBadGateway {
				t.Fatalf("first failures: %d, want 502", s)
			}
		}
		start := time.Now()
		for i := 0; i < 50; i++ {
			res := p.get(t, "/")
			if res.status != http.StatusServiceUnavailable {
				t.Fatalf("all open: %d %s, want 503", res.status, res.body)
			}
			if ra := res.header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Fatalf("503 without Retry-After")
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("50 requests with every breaker open took %v; they must be refused at once", d)
		}
	})
}

func TestRetriesOnlyIdempotentRequests(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a := startBackend(t, "a", nil)
		dead := startBackend(t, "dead", nil)
		dead.stop()
		rt := staticRoute("retry", "/", a.addr, dead.addr)
		rt.Retries = &router.RetryPolicy{Attempts: 1}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		for i := 0; i < 10; i++ {
			if s := p.get(t, "/").status; s != 200 {
				t.Fatalf("GET %d: %d, want 200 after retrying on a", i, s)
			}
		}
		bad := 0
		for i := 0; i < 10; i++ {
			req, _ := http.NewRequest("POST", p.url+"/", strings.NewReader("x"))
			resp, err := p.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusBadGateway {
				bad++
			}
		}
		if bad != 5 {
			t.Errorf("%d of 10 POSTs failed, want 5: a POST is never retried", bad)
		}
	})
}

func TestUpstreamTimeoutIs504(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startHanging(t, "slow")
		rt := staticRoute("slow", "/", b.addr)
		rt.Timeout = 100 * time.Millisecond
		p := newProxy(t, router.Config{}, []router.Route{rt})
		start := time.Now()
		if s := p.get(t, "/").status; s != http.StatusGatewayTimeout {
			t.Fatalf("status %d, want 504", s)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v for a 100ms timeout", d)
		}
	})
}

func TestForwardedHeaders(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		routes := []router.Route{staticRoute("b", "/", b.addr)}
		t.Run("untrusted client", func(t *testing.T) {
			p := newProxy(t, router.Config{}, routes)
			res := p.do(t, "GET", "/", map[string]string{"X-Forwarded-For": "6.6.6.6", "Host": "shop.local"})
			if got := res.header.Get("X-Got-XFF"); got != "127.0.0.1" {
				t.Errorf("backend saw X-Forwarded-For %q, want only the peer 127.0.0.1", got)
			}
			if got := res.header.Get("X-Got-Host"); got != "shop.local" {
				t.Errorf("backend saw Host %q, want the client's", got)
			}
		})
		t.Run("trusted proxy", func(t *testing.T) {
			p := newProxy(t, router.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, routes)
			res := p.do(t, "GET", "/", map[string]string{"X-Forwarded-For": "6.6.6.6"})
			if got := res.header.Get("X-Got-XFF"); got != "6.6.6.6, 127.0.0.1" {
				t.Errorf("backend saw X-Forwarded-For %q, want the chain kept", got)
			}
		})
	})
}

func TestH2CUpgradeRefused(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.addr)})
		res := p.do(t, "GET", "/", map[string]string{"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
		if res.status != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", res.status)
		}
		if b.hits.Load() != 0 {
			t.Error("the h2c upgrade reached the backend")
		}
	})
}

// TestReloadUnderLoad swaps the table 100 times while clients keep sending:
// not one request may fail.
func TestReloadUnderLoad(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
		one := []router.Route{staticRoute("r", "/", a.addr)}
		two := []router.Route{staticRoute("r", "/", a.addr, b.addr), staticRoute("x", "/x", b.addr)}
		p := newProxy(t, router.Config{}, one)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var sent, failed atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && sent.Load() < 20000 {
					resp, err := p.client.Get(p.url + "/")
					sent.Add(1)
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
				}
			}()
		}
		for i := 0; i < 100 && ctx.Err() == nil; i++ {
			tables := [][]router.Route{one, two}
			if err := p.r.Update(tables[i%2]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		if failed.Load() != 0 || sent.Load() < 100 {
			t.Fatalf("%d of %d requests failed across reloads", failed.Load(), sent.Load())
		}
	})
}

func TestUpdateRejectsInvalidTableAndKeepsOld(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.addr)})
		bad := staticRoute("b", "/", b.addr)
		bad.RateLimit = &router.RateLimit{RPS: -1}
		if err := p.r.Update([]router.Route{bad}); err == nil || !strings.Contains(err.Error(), "routes[0].rate_limit.rps") {
			t.Fatalf("Update error = %v, want one naming routes[0].rate_limit.rps", err)
		}
		if s := p.get(t, "/").status; s != 200 {
			t.Fatalf("old table lost: %d", s)
		}
	})
}

func TestRunFollowsInstances(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
		src := newFakeInstances()
		src.set("orders", inst("orders", "orders-1", a.addr))
		rt := router.Route{Name: "orders", Match: router.Match{PathPrefix: "/"}, Upstream: router.Upstream{Service: "orders"}}
		p := newProxy(t, router.Config{Instances: src}, []router.Route{rt})
		if res := p.get(t, "/"); res.status != http.StatusServiceUnavailable {
			t.Fatalf("before Run: %d, want 503 (no instances known)", res.status)
		}
		runErr := make(chan error, 1)
		go func() { runErr <- p.r.Run(context.Background()) }()
		testkit.EventuallyTrue(t, 5*time.Second, "orders-1 to serve", func() bool { return p.get(t, "/").body == "a" })
		src.set("orders", inst("orders", "orders-2", b.addr))
		testkit.EventuallyTrue(t, 5*time.Second, "orders-2 to replace orders-1", func() bool { return p.get(t, "/").body == "b" })
		src.set("orders")
		testkit.EventuallyTrue(t, 5*time.Second, "no instance left", func() bool {
			res := p.get(t, "/")
			if res.status != http.StatusServiceUnavailable {
				return false
			}
			_, msg, _ := errorOf(t, res)
			return strings.Contains(msg, "service orders")
		})
		if err := p.r.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-runErr:
			if err != nil {
				t.Fatalf("Run returned %v after Close", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after Close")
		}
	})
}

// TestHungInstanceUnderLoadNoPileUp makes one of two instances hang while
// clients keep sending: only the few requests that reach it before its
// breaker opens wait for the route timeout; the rest go to the healthy one
// at once, instead of piling up behind the hung instance.
func TestHungInstanceUnderLoadNoPileUp(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		var hung atomic.Bool
		release := make(chan struct{})
		a := startBackend(t, "a", nil)
		b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
			if hung.Load() {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			_, _ = w.Write([]byte("b"))
		})
		defer close(release)
		rt := staticRoute("hang", "/", a.addr, b.addr)
		rt.Timeout = 200 * time.Millisecond
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 3, OpenFor: time.Minute}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		for i := 0; i < 20; i++ {
			if s := p.get(t, "/").status; s != 200 {
				t.Fatalf("warm-up: %d", s)
			}
		}
		hung.Store(true)
		const workers, perWorker = 4, 60
		var timeouts, oks, others atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWorker; i++ {
					resp, err := p.client.Get(p.url + "/")
					if err != nil {
						others.Add(1)
						continue
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case 200:
						oks.Add(1)
					case http.StatusGatewayTimeout:
						timeouts.Add(1)
					default:
						others.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		// Before the breaker opens, at most consecutive_failures requests plus
		// those already in flight (one per worker) can reach b.
		if n := timeouts.Load(); n < 3 || n > 3+workers {
			t.Errorf("%d requests timed out on the hung instance, want 3..%d", n, 3+workers)
		}
		if others.Load() != 0 || oks.Load()+timeouts.Load() != workers*perWorker {
			t.Errorf("oks %d timeouts %d others %d", oks.Load(), timeouts.Load(), others.Load())
		}
		if !p.metrics.opened("hang/" + b.addr) {
			t.Errorf("b's breaker: %v, want open", p.metrics.breakerStates("hang/"+b.addr))
		}
	})
}

func TestBreakerStateSurvivesReload(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
		rt := staticRoute("cb", "/", a.addr, b.addr)
		rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Hour}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		b.stop()
		for i := 0; i < 4; i++ {
			p.get(t, "/")
		}
		if !p.metrics.opened("cb/" + b.addr) {
			t.Fatal("b's breaker did not open")
		}
		b.restart(t)
		before := b.hits.Load()
		if err := p.r.Update([]router.Route{rt, staticRoute("other", "/other", a.addr)}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			p.get(t, "/")
		}
		if got := b.hits.Load() - before; got != 0 {
			t.Fatalf("b got %d requests after a reload of the unchanged route: its open breaker was lost", got)
		}
		changed := rt
		changed.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 2, OpenFor: time.Hour}
		if err := p.r.Update([]router.Route{changed}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			p.get(t, "/")
		}
		if b.hits.Load() == before {
			t.Fatal("b got nothing after its route's breaker settings changed: a new breaker should start closed")
		}
	})
}

func TestRateLimitKeyBehindTrustedProxy(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		rt := staticRoute("ip", "/", b.addr)
		rt.RateLimit = &router.RateLimit{RPS: 0.001, Burst: 1, Key: "ip"}
		p := newProxy(t, router.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}, []router.Route{rt})
		for _, tc := range []struct {
			xff  string
			want int
		}{
			{"1.1.1.1", 200},
			{"1.1.1.1", 429},
			{"9.9.9.9, 1.1.1.1, 10.0.0.5", 429}, // right-most untrusted address is 1.1.1.1
			{"2.2.2.2", 200},
			{"", 200}, // the peer itself, 127.0.0.1
			{"", 429},
		} {
			hdr := map[string]string{}
			if tc.xff != "" {
				hdr["X-Forwarded-For"] = tc.xff
			}
			if got := p.do(t, "GET", "/", hdr).status; got != tc.want {
				t.Errorf("X-Forwarded-For %q: %d, want %d", tc.xff, got, tc.want)
			}
		}
	})
}
