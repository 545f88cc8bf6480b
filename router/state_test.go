package router_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
)

func TestStateDescribesRoutes(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		fake := newFakeInstances()
		fake.set("orders", inst("orders", "orders-2", "127.0.0.1:2"), inst("orders", "orders-1", "127.0.0.1:1"),
			configsvc.Instance{Service: "orders", ID: "orders-3", Status: configsvc.StatusApplied})
		p := newProxy(t, router.Config{Instances: fake}, nil)
		if got := p.r.State(); got.Routes == nil || len(got.Routes) != 0 {
			t.Fatalf("empty router: State().Routes = %#v, want an empty, non-nil slice", got.Routes)
		}
		if b, _ := json.Marshal(p.r.State()); string(b) != `{"routes":[]}` {
			t.Fatalf("empty router state JSON = %s", b)
		}
		routes := []router.Route{
			{Name: "orders", Match: router.Match{Hosts: []string{"api.example.com"}, PathPrefix: "/orders", Methods: []string{"GET"}},
				Upstream:       router.Upstream{Service: "orders", Balancer: router.BalancerLeastRequests},
				RateLimit:      &router.RateLimit{RPS: 2.5, Key: "ip"},
				CircuitBreaker: &router.CircuitBreaker{ConsecutiveFailures: 4}},
			{Name: "static", Upstream: router.Upstream{Static: []string{"127.0.0.1:9", "127.0.0.1:8"}}, RateLimit: &router.RateLimit{RPS: 10, Burst: 20, Scope: router.ScopeCluster}},
		}
		if err := p.r.Update(routes); err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		go func() { _ = p.r.Run(ctx) }()
		testkit.EventuallyTrue(t, 5*time.Second, "the instances of orders", func() bool { return len(p.r.State().Routes[0].Instances) == 2 })

		got := p.r.State()
		if len(got.Routes) != 2 || got.Routes[0].Name != "orders" || got.Routes[1].Name != "static" {
			t.Fatalf("routes = %+v, want orders then static (file order)", got.Routes)
		}
		o := got.Routes[0]
		if o.Match.PathPrefix != "/orders" || len(o.Match.Hosts) != 1 || o.Match.Methods[0] != "GET" {
			t.Errorf("orders match = %+v", o.Match)
		}
		if o.Upstream.Service != "orders" || o.Upstream.Balancer != string(router.BalancerLeastRequests) {
			t.Errorf("orders upstream = %+v", o.Upstream)
		}
		if rl := o.RateLimit; rl == nil || rl.RPS != 2.5 || rl.Burst != 3 || rl.Key != "ip" || rl.Scope != router.ScopeProxy || rl.Rejected != 0 {
			t.Errorf("orders rate limit = %+v, want 2.5 rps, effective burst 3, key ip, scope proxy, none rejected", rl)
		}
		if cb := o.CircuitBreaker; cb == nil || cb.ConsecutiveFailures != 4 || cb.OpenFor != "30s" || cb.HalfOpenRequests != 1 {
			t.Errorf("orders breaker = %+v, want 4 failures, the default 30s and 1 probe", cb)
		}
		// An instance without an address is not routed to, so not listed.
		if ids := instanceIDs(o); ids != "orders-1,orders-2" {
			t.Errorf("orders instances = %s, want orders-1,orders-2 sorted by id", ids)
		}
		for _, in := range o.Instances {
			if in.Breaker != "closed" || in.Requests != 0 || in.Opened != 0 {
				t.Errorf("instance %+v, want a closed breaker with no requests", in)
			}
		}
		s := got.Routes[1]
		if s.Match.PathPrefix != "/" || s.Upstream.Balancer != string(router.BalancerRoundRobin) || len(s.Upstream.Static) != 2 {
			t.Errorf("static route = %+v, want prefix / and round_robin over 2 addresses", s)
		}
		if s.RateLimit.Key != "global" || s.RateLimit.Scope != router.ScopeCluster || s.RateLimit.Burst != 20 {
			t.Errorf("static rate limit = %+v", s.RateLimit)
		}
		if s.CircuitBreaker != nil || s.Instances[0].Breaker != "" {
			t.Errorf("static route without breaker reports one: %+v", s)
		}
		if ids := instanceIDs(s); ids != "127.0.0.1:8,127.0.0.1:9" {
			t.Errorf("static instances = %s", ids)
		}
	})
}

func instanceIDs(rs configsvc.RouteState) string {
	ids := make([]string, len(rs.Instances))
	for i, in := range rs.Instances {
		ids[i] = in.ID
	}
	return strings.Join(ids, ",")
}

func TestStateCountsRateLimitRejections(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
		route := staticRoute("limited", "/", b.addr)
		route.RateLimit = &router.RateLimit{RPS: 1, Burst: 2}
		p := newProxy(t, router.Config{Now: func() time.Time { return t0 }}, []router.Route{route})
		statuses := map[int]int{}
		for range 5 {
			statuses[p.get(t, "/").status]++
		}
		if statuses[http.StatusOK] != 2 || statuses[http.StatusTooManyRequests] != 3 {
			t.Fatalf("statuses %v, want 2 admitted and 3 refused on a frozen clock", statuses)
		}
		rejected := func() uint64 { return p.r.State().Routes[0].RateLimit.Rejected }
		if got := rejected(); got != 3 {
			t.Fatalf("rejected = %d, want 3", got)
		}
		if got := p.r.State().Routes[0].Instances[0].Requests; got != 2 {
			t.Errorf("instance requests = %d, want the 2 admitted", got)
		}
		// Same settings: limiter and count survive the swap.
		if err := p.r.Update([]router.Route{route}); err != nil {
			t.Fatal(err)
		}
		if got := rejected(); got != 3 {
			t.Errorf("rejected after an unchanged update = %d, want 3 kept", got)
		}
		// New settings: a new limiter, counted from zero.
		route.RateLimit = &router.RateLimit{RPS: 1, Burst: 3}
		if err := p.r.Update([]router.Route{route}); err != nil {
			t.Fatal(err)
		}
		if got := rejected(); got != 0 {
			t.Errorf("rejected after the rate limit changed = %d, want 0", got)
		}
	})
}

func TestStateShowsOpenBreaker(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		bad := startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
		good := startBackend(t, "good", nil)
		route := staticRoute("cb", "/", bad.addr, good.addr)
		route.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 3, OpenFor: time.Minute}
		p := newProxy(t, router.Config{}, []router.Route{route})
		for range 10 {
			p.get(t, "/")
		}
		byID := map[string]configsvc.InstanceState{}
		for _, in := range p.r.State().Routes[0].Instances {
			byID[in.ID] = in
		}
		want := map[string]configsvc.InstanceState{
			bad.addr:  {ID: bad.addr, Addr: bad.addr, Breaker: "open", Opened: 1, Requests: 3, Failures: 3},
			good.addr: {ID: good.addr, Addr: good.addr, Breaker: "closed", Requests: 7},
		}
		for id, w := range want {
			got := byID[id]
			got.InFlight = 0 // the last request may not have left the proxy's books yet
			if got != w {
				t.Errorf("instance %s: %+v, want %+v", id, got, w)
			}
		}
	})
}

// TestStateAllocations: the snapshot's cost does not grow with instances.
func TestStateAllocations(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		addrs := make([]string, 50)
		for i := range addrs {
			addrs[i] = fmt.Sprintf("127.0.0.1:%d", 10000+i)
		}
		var routes []router.Route
		for i := range 10 {
			rt := staticRoute(fmt.Sprintf("r%d", i), fmt.Sprintf("/r%d", i), addrs...)
			rt.RateLimit = &router.RateLimit{RPS: 10}
			rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 3}
			routes = append(routes, rt)
		}
		p := newProxy(t, router.Config{}, routes)
		if n := testing.AllocsPerRun(100, func() { _ = p.r.State() }); n > 4 {
			t.Fatalf("State allocates %v times for 10 routes of 50 instances, want 4 (routes, instances, rate limits, breakers)", n)
		}
	})
}

// TestStateConcurrent runs State against requests and table swaps (for -race).
func TestStateConcurrent(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", nil)
		route := staticRoute("r", "/", b.addr)
		route.RateLimit = &router.RateLimit{RPS: 1e6}
		route.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 5}
		p := newProxy(t, router.Config{}, []router.Route{route})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 50 {
				resp, err := p.client.Get(p.url + "/")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				if err := p.r.Update([]router.Route{route}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		for range 200 {
			_ = p.r.State()
		}
		wg.Wait()
		if got := p.r.State().Routes[0].Instances[0].Requests; got != 50 {
			t.Fatalf("requests = %d, want 50", got)
		}
	})
}
