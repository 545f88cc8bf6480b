package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// TestLiveRoutes: GET /v1/routes shows the proxies whose published state is
// fresh, lists stale and unreported ones apart, and follows the clock.
func TestLiveRoutes(t *testing.T) {
	e := newEnv(t)
	doc := loadSpec(t)
	ctx := context.Background()
	e.mustService(configsvc.SystemService, map[string]string{configsvc.RoutesFile: "routes: []\n"})
	register := func(id string, labels map[string]string) {
		t.Helper()
		l, err := e.store.Register(ctx, configsvc.Instance{Service: configsvc.SystemService, ID: id, Addr: "127.0.0.1:7080", Labels: labels, Status: configsvc.StatusApplied})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
	}
	proxyLabels := map[string]string{configsvc.ProxyRoleLabel: configsvc.ProxyRole}
	register("proxy-a", proxyLabels)
	register("proxy-c", proxyLabels) // registered, publishes nothing
	register("worker", nil)          // not a proxy
	now := e.clock.Now()
	put := func(id string, data []byte) {
		t.Helper()
		if err := e.store.Records().Put(ctx, configsvc.ProxyStateCollection, id, data); err != nil {
			t.Fatal(err)
		}
	}
	stateOf := func(id string, age time.Duration, routes ...configsvc.RouteState) []byte {
		b, _ := json.Marshal(configsvc.ProxyState{ID: id, Addr: "127.0.0.1:7080", Updated: now.Add(-age), Revision: 1, Peers: 2, Routes: routes})
		return b
	}
	orders := configsvc.RouteState{Name: "orders", Match: configsvc.MatchState{PathPrefix: "/orders"},
		Upstream:       configsvc.UpstreamState{Service: "orders", Balancer: string(router.BalancerRoundRobin)},
		RateLimit:      &configsvc.RateLimitState{RPS: 5, Burst: 5, Key: "ip", Scope: router.ScopeProxy, Rejected: 3},
		CircuitBreaker: &configsvc.CircuitBreakerState{ConsecutiveFailures: 2, OpenFor: "30s", HalfOpenRequests: 1},
		Instances:      []configsvc.InstanceState{{ID: "orders-1", Addr: "127.0.0.1:9001", Breaker: "open", Opened: 1, Requests: 4, Failures: 2}}}
	put("proxy-a", stateOf("proxy-a", 5*time.Second, orders))
	put("proxy-b", stateOf("proxy-b", ProxyStateFresh+time.Second)) // not registered any more
	put("proxy-bad", []byte("{not json"))

	get := func(t *testing.T, token string, want int) api.LiveRoutes {
		t.Helper()
		resp := e.withT(t).must(want, req{method: "GET", path: "/v1/routes", token: token})
		if err := doc.checkResponse("GET /v1/routes", resp.status, resp.header.Get("Content-Type"), resp.body); err != nil {
			t.Fatalf("response does not match openapi.json: %v\n%s", err, resp.body)
		}
		var out api.LiveRoutes
		if want == http.StatusOK {
			resp.json(t, &out)
		}
		return out
	}

	t.Run("fresh and stale", func(t *testing.T) {
		out := get(t, e.admin, http.StatusOK)
		if out.Revision != 1 {
			t.Errorf("revision %d, want sluice-system's head 1", out.Revision)
		}
		if len(out.Proxies) != 1 || out.Proxies[0].ID != "proxy-a" {
			t.Fatalf("proxies %+v, want proxy-a only", out.Proxies)
		}
		p := out.Proxies[0]
		if len(p.Routes) != 1 || p.Routes[0].RateLimit.Rejected != 3 || p.Routes[0].Instances[0].Breaker != "open" || p.Peers != 2 {
			t.Errorf("proxy-a = %+v, want its published route with 3 rejected and an open breaker", p)
		}
		want := []api.StaleProxy{
			{ID: "proxy-b", Addr: "127.0.0.1:7080", Reason: "stale", Revision: 1},
			{ID: "proxy-c", Addr: "127.0.0.1:7080", Reason: "unreported", Registered: true},
		}
		if len(out.Stale) != len(want) {
			t.Fatalf("stale %+v, want %+v", out.Stale, want)
		}
		for i, w := range want {
			got := out.Stale[i]
			if got.ID != w.ID || got.Addr != w.Addr || got.Reason != w.Reason || got.Revision != w.Revision || got.Registered != w.Registered {
				t.Errorf("stale[%d] = %+v, want %+v", i, got, w)
			}
			if (got.Updated != nil) != (w.Reason == "stale") {
				t.Errorf("stale[%d].updated = %v: set only for a stale record", i, got.Updated)
			}
		}
		if !strings.Contains(e.logText(), "proxy state record not readable") {
			t.Error("the unreadable record was not logged")
		}
	})

	t.Run("a proxy that stops publishing turns stale", func(t *testing.T) {
		e.clock.Advance(ProxyStateFresh)
		out := get(t, e.admin, http.StatusOK)
		if len(out.Proxies) != 0 || len(out.Stale) != 3 || out.Stale[0].ID != "proxy-a" || !out.Stale[0].Registered {
			t.Fatalf("proxies %+v, stale %+v: want proxy-a stale (and registered), none live", out.Proxies, out.Stale)
		}
	})

	t.Run("access", func(t *testing.T) {
		get(t, e.mustToken("viewer:sluice-system"), http.StatusOK)
		get(t, e.mustToken("viewer:orders"), http.StatusForbidden)
		get(t, "", http.StatusUnauthorized)
	})
}

// TestLiveRoutesWithoutSystemService: no sluice-system yet is no error.
func TestLiveRoutesWithoutSystemService(t *testing.T) {
	e := newEnv(t)
	var out api.LiveRoutes
	e.must(http.StatusOK, req{method: "GET", path: "/v1/routes", token: e.admin}).json(t, &out)
	if out.Revision != 0 || out.Proxies == nil || len(out.Proxies) != 0 || out.Stale == nil || len(out.Stale) != 0 {
		t.Fatalf("answer %+v, want revision 0 and empty lists", out)
	}
}

// TestLiveRoutesFromProxiesOnZooKeeper: two proxies, each on its own
// ZooKeeper session as separate processes would be, publish their own
// tables; the admin server (a third session) shows each proxy's breakers
// apart, and a proxy that stops cleanly leaves the list.
func TestLiveRoutesFromProxiesOnZooKeeper(t *testing.T) {
	zk := zktest.Start(t)
	const root = "/sluice-live-routes"
	e := newEnvOn(t, mustZK(t, zk, root))
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(failing.Close)
	e.mustService(configsvc.SystemService, map[string]string{configsvc.RoutesFile: fmt.Sprintf(
		"routes:\n  - name: flaky\n    upstream: {static: [%q]}\n    circuit_breaker: {consecutive_failures: 1, open_for: 1m}\n",
		strings.TrimPrefix(failing.URL, "http://"))})

	type running struct {
		url  string
		stop func()
	}
	start := func(id string) running {
		t.Helper()
		store := mustZK(t, zk, root)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- proxyserver.Serve(ctx, store, ln, proxyserver.Options{InstanceID: id, StateInterval: 100 * time.Millisecond, RetryInterval: 20 * time.Millisecond})
		}()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("proxy %s: %v", id, err)
				}
			})
		}
		t.Cleanup(stop) // before its store closes
		return running{url: "http://" + ln.Addr().String(), stop: stop}
	}
	p1, p2 := start("proxy-1"), start("proxy-2")

	waitLive := func(what string, cond func(api.LiveRoutes) bool) api.LiveRoutes {
		t.Helper()
		var out api.LiveRoutes
		testkit.Eventually(t, 15*time.Second, "GET /v1/routes showing "+what, func() error {
			out = api.LiveRoutes{}
			e.must(http.StatusOK, req{method: "GET", path: "/v1/routes", token: e.admin}).json(t, &out)
			if !cond(out) {
				return fmt.Errorf("got %+v", out)
			}
			return nil
		})
		return out
	}
	breakers := func(out api.LiveRoutes) map[string]string {
		m := map[string]string{}
		for _, p := range out.Proxies {
			if len(p.Routes) == 1 && len(p.Routes[0].Instances) == 1 {
				m[p.ID] = p.Routes[0].Instances[0].Breaker
			}
		}
		return m
	}
	waitLive("both proxies with the route, each counting the other", func(out api.LiveRoutes) bool {
		b := breakers(out)
		return len(b) == 2 && b["proxy-1"] == "closed" && b["proxy-2"] == "closed" && out.Proxies[0].Peers == 2 && out.Proxies[1].Peers == 2
	})

	// Trip proxy-1's breaker only.
	resp, err := http.Get(p1.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("through proxy-1: %d, want the upstream's 503", resp.StatusCode)
	}
	waitLive("proxy-1's breaker open, proxy-2's closed", func(out api.LiveRoutes) bool {
		b := breakers(out)
		return b["proxy-1"] == "open" && b["proxy-2"] == "closed"
	})

	p2.stop()
	out := waitLive("proxy-2 gone", func(out api.LiveRoutes) bool { return len(out.Proxies) == 1 && out.Proxies[0].ID == "proxy-1" })
	if len(out.Stale) != 0 {
		t.Errorf("a cleanly stopped proxy is listed as stale: %+v", out.Stale)
	}
}
