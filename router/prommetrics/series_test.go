package prommetrics_test

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/prommetrics"
	"github.com/sluicehq/sluice/router/ratelimit"
)

// proxy is a router exporting to a fresh registry, served on loopback.
type proxy struct {
	r      *router.Router
	reg    *prometheus.Registry
	url    string
	client *http.Client
}

func newProxy(t *testing.T) *proxy {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{Metrics: m, Breakers: breaker.New(), Limiters: ratelimit.New(ratelimit.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	p := &proxy{r: r, reg: reg, url: srv.URL, client: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		p.client.CloseIdleConnections()
		srv.Close()
		_ = r.Close()
	})
	return p
}

// do sends one request and returns its status (0 when it failed).
func (p *proxy) do(t *testing.T, method, path string, hdr ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// series counts the series of reg whose label name has value.
func series(t *testing.T, reg *prometheus.Registry, name, value string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == name && l.GetValue() == value {
					n++
				}
			}
		}
	}
	return n
}

// backend answers with the status its request names in X-Status (200 if
// none); status 500 when failing is set.
func backend(t *testing.T, failing bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusOK
		if failing {
			status = http.StatusInternalServerError
		} else if s, err := strconv.Atoi(r.Header.Get("X-Status")); err == nil {
			status = s
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func ordersRoute(cb *router.CircuitBreaker) []router.Route {
	return []router.Route{{
		Name: "orders", Match: router.Match{PathPrefix: "/orders"},
		Upstream: router.Upstream{Service: "orders"}, CircuitBreaker: cb,
	}}
}

func instance(id, addr string) configsvc.Instance {
	return configsvc.Instance{Service: "orders", ID: id, Addr: addr, Status: configsvc.StatusApplied}
}

// failOrders2 serves routes on p with two instances of orders, orders-1
// answering 200 and orders-2 500, and sends 10 requests to /orders/x. It
// returns orders-1's address.
func (p *proxy) failOrders2(t *testing.T, routes []router.Route) string {
	t.Helper()
	ok, bad := backend(t, false), backend(t, true)
	if err := p.r.Update(routes); err != nil {
		t.Fatal(err)
	}
	p.r.SetInstances("orders", []configsvc.Instance{instance("orders-1", ok), instance("orders-2", bad)})
	for range 10 {
		p.do(t, "GET", "/orders/x")
	}
	return ok
}

// TestForgetDepartedInstances checks that the series of an instance are
// deleted when it leaves the table (instance gone, breaker dropped, route
// gone), so that instances that come and go do not grow the metrics.
func TestForgetDepartedInstances(t *testing.T) {
	p := newProxy(t)
	ok := p.failOrders2(t, ordersRoute(&router.CircuitBreaker{ConsecutiveFailures: 2, OpenFor: time.Minute}))
	got := gather(t, p.reg)
	for series, want := range map[string]float64{
		`sluice_proxy_breaker_state{route="orders",upstream_instance="orders-2"}`:             float64(router.BreakerOpen),
		`sluice_proxy_breaker_state{route="orders",upstream_instance="orders-1"}`:             float64(router.BreakerClosed),
		`sluice_proxy_requests_total{code="5xx",route="orders",upstream_instance="orders-2"}`: 2,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Fatalf("%s = %v (present %t), want %v", series, v, ok, want)
		}
	}

	p.r.SetInstances("orders", []configsvc.Instance{instance("orders-1", ok)})
	if n := series(t, p.reg, prommetrics.LabelUpstreamInstance, "orders-2"); n != 0 {
		t.Errorf("orders-2 left, %d of its series remain", n)
	}
	if n := series(t, p.reg, prommetrics.LabelUpstreamInstance, "orders-1"); n != 6 {
		t.Errorf("orders-1 stayed with %d series, want 6 (5 classes and its breaker)", n)
	}

	// The route drops its breaker: no breaker gauge stays behind, and the
	// instance's requests are still counted.
	if err := p.r.Update(ordersRoute(nil)); err != nil {
		t.Fatal(err)
	}
	if n := testCount(t, p.reg, "sluice_proxy_breaker_state"); n != 0 {
		t.Errorf("route without breaker: %d breaker series remain", n)
	}
	if st := p.do(t, "GET", "/orders/y"); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	if v := gather(t, p.reg)[`sluice_proxy_requests_total{code="2xx",route="orders",upstream_instance="orders-1"}`]; v != 1 {
		t.Errorf("orders-1's 2xx after the breaker was dropped = %v, want 1 (counted on fresh series)", v)
	}

	// The route goes: so do its instances' series.
	if err := p.r.Update(nil); err != nil {
		t.Fatal(err)
	}
	if n := series(t, p.reg, prommetrics.LabelUpstreamInstance, "orders-1"); n != 0 {
		t.Errorf("route removed, %d series of orders-1 remain", n)
	}
}

// TestForgetDepartedInstanceInFlight checks that a request still running on
// the old table when its instance left cannot bring the instance's breaker
// series back when it trips the breaker afterwards.
func TestForgetDepartedInstanceInFlight(t *testing.T) {
	p := newProxy(t)
	release := make(chan struct{})
	arrived := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(slow.Close)
	if err := p.r.Update(ordersRoute(&router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Minute})); err != nil {
		t.Fatal(err)
	}
	p.r.SetInstances("orders", []configsvc.Instance{instance("orders-2", slow.Listener.Addr().String())})
	done := make(chan int, 1)
	go func() { done <- p.do(t, "GET", "/orders/x") }()
	<-arrived
	p.r.SetInstances("orders", []configsvc.Instance{instance("orders-1", backend(t, false))})
	close(release)
	if st := <-done; st != http.StatusInternalServerError {
		t.Fatalf("in-flight request: status %d, want the upstream's 500", st)
	}
	if n := series(t, p.reg, prommetrics.LabelUpstreamInstance, "orders-2"); n != 0 {
		t.Errorf("orders-2 left before its breaker tripped; %d of its series came back", n)
	}
}

// TestAttackJunkRequestsDoNotGrowProxySeries sends made-up methods, random
// paths and requests upstreams answer with odd statuses (600–999 included)
// and checks that, once every kind was seen, more of them add no series.
func TestAttackJunkRequestsDoNotGrowProxySeries(t *testing.T) {
	p := newProxy(t)
	if err := p.r.Update(ordersRoute(&router.CircuitBreaker{ConsecutiveFailures: 1000})); err != nil {
		t.Fatal(err)
	}
	p.r.SetInstances("orders", []configsvc.Instance{instance("orders-1", backend(t, false))})
	rng := rand.New(rand.NewPCG(19, 1))
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
		b := make([]byte, 4+rng.IntN(12))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	// Kinds: a method × a path that matches or not × a status class
	// (2xx–5xx, then 600–999, which count as 5xx).
	methods := []func() string{func() string { return "GET" }, func() string { return "X" + strings.ToUpper(word()) }}
	paths := []func() string{func() string { return "/orders/" + word() }, func() string { return "/" + word() }}
	statuses := []func() int{
		func() int { return 200 + rng.IntN(100) },
		func() int { return 300 + rng.IntN(100) },
		func() int { return 400 + rng.IntN(100) },
		func() int { return 500 + rng.IntN(100) },
		func() int { return 600 + rng.IntN(400) },
	}
	junk := func(rounds int) {
		for range rounds {
			for _, m := range methods {
				for _, path := range paths {
					for _, st := range statuses {
						p.do(t, m(), path(), "X-Status", strconv.Itoa(st()))
					}
				}
			}
		}
	}
	junk(1)
	before, err := testutil.GatherAndCount(p.reg)
	if err != nil {
		t.Fatal(err)
	}
	junk(5)
	after, err := testutil.GatherAndCount(p.reg)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("junk grew the proxy's series from %d to %d", before, after)
	}
	got := gather(t, p.reg)
	if v := got[`sluice_proxy_requests_total{code="5xx",route="orders",upstream_instance="orders-1"}`]; v < 12 {
		t.Errorf("5xx of orders-1 = %v, want ≥ 12 (500–999 from the upstream)", v)
	}
	if v := got[`sluice_proxy_requests_total{code="4xx",route="none",upstream_instance="proxy"}`]; v != 60 {
		t.Errorf("unmatched requests = %v, want 60 (404 from the proxy)", v)
	}
}

// testCount counts the series of one metric family.
func testCount(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(reg, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestResilienceSeries: retries, budget refusals, ejections, health and
// panic mode are exported per route; the ejection and health gauges of an
// instance go with it, and when the route drops outlier detection and
// health checks but keeps its breaker, only the breaker gauge stays.
func TestResilienceSeries(t *testing.T) {
	p := newProxy(t)
	routes := ordersRoute(&router.CircuitBreaker{ConsecutiveFailures: 1000})
	routes[0].Retries = &router.RetryPolicy{Attempts: 1, On: []router.RetryOn{"500"}, Budget: &router.RetryBudget{MinConcurrency: 1}}
	routes[0].OutlierDetection = &router.OutlierDetection{Consecutive5xx: 3, BaseEjectionTime: time.Minute}
	routes[0].HealthCheck = &router.HealthCheck{Path: "/healthz", Interval: time.Hour}
	p.failOrders2(t, routes)
	got := gather(t, p.reg)
	for series, want := range map[string]float64{
		`sluice_proxy_outlier_ejected{route="orders",upstream_instance="orders-2"}`:  1,
		`sluice_proxy_outlier_ejected{route="orders",upstream_instance="orders-1"}`:  0,
		`sluice_proxy_outlier_ejections_total{route="orders"}`:                       1,
		`sluice_proxy_upstream_healthy{route="orders",upstream_instance="orders-1"}`: 1,
		`sluice_proxy_upstream_healthy{route="orders",upstream_instance="orders-2"}`: 1,
		`sluice_proxy_panic_mode{route="orders"}`:                                    0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %t), want %v", series, v, ok, want)
		}
	}
	if v := got[`sluice_proxy_retries_total{route="orders"}`]; v < 1 {
		t.Errorf("sluice_proxy_retries_total = %v, want the retries of orders-2's 500s counted", v)
	}

	kept := []router.Route{routes[0]} // a new table: the router keeps the old one's slice
	kept[0].OutlierDetection, kept[0].HealthCheck = nil, nil
	if err := p.r.Update(kept); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sluice_proxy_outlier_ejected", "sluice_proxy_upstream_healthy"} {
		if n := testCount(t, p.reg, name); n != 0 {
			t.Errorf("route without outlier detection and health check: %d %s series remain", n, name)
		}
	}
	if n := testCount(t, p.reg, "sluice_proxy_breaker_state"); n != 2 {
		t.Errorf("route keeping its breaker: %d breaker series, want 2", n)
	}
}
