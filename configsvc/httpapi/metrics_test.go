package httpapi

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestAttackJunkRequestsDoNotGrowMetricSeries sends what any client can
// send without a token — made-up methods, random paths, unsupported bodies
// — and checks that no value of it becomes a label: once every kind of
// junk was seen, more junk with new random values adds no series. (Before,
// the raw method was a label, and 50 made-up methods grew /metrics from
// 87 KB to 164 KB.)
func TestAttackJunkRequestsDoNotGrowMetricSeries(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "x"})
	rng := rand.New(rand.NewPCG(19, 2))
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, 6+rng.IntN(10))
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	// Each kind is one combination of a method, a path shape and a token;
	// its values are new every time.
	methods := []func() string{
		func() string { return "X" + strings.ToUpper(word()) },
		func() string { return strings.ToLower(word()) },
		func() string { return http.MethodGet },
		func() string { return http.MethodPut },
	}
	paths := []func() string{
		func() string { return "/" + word() + "/" + word() },
		func() string { return "/v1/" + word() },
		func() string { return "/v1/services/" + word() },
		func() string { return "/v1/services/orders/files/" + word() + ".json" },
		func() string { return "/v1/services/orders/revisions/" + word() },
	}
	tokens := []string{"", "slc_" + word(), e.admin}
	junk := func(rounds int) {
		for range rounds {
			for _, m := range methods {
				for _, p := range paths {
					for _, tok := range tokens {
						e.do(req{method: m(), path: p(), token: tok, body: word(), contentType: "application/x-" + word()})
					}
				}
			}
		}
	}
	count := func() (series, size int) {
		n, err := testutil.GatherAndCount(e.reg)
		if err != nil {
			t.Fatal(err)
		}
		return n, len(e.must(http.StatusOK, req{method: "GET", path: "/metrics"}).body)
	}

	count() // the scrapes' own series
	junk(1)
	series0, size0 := count()
	junk(4)
	series1, size1 := count()
	if series1 != series0 {
		t.Errorf("junk grew the series from %d to %d", series0, series1)
	}
	if size1 > size0+size0/20 {
		t.Errorf("junk grew /metrics from %d to %d bytes", size0, size1)
	}

	// Every label value is one of the bounded sets.
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{unmatchedRoute: true}
	for _, r := range e.srv.engine.Routes() {
		routes[r.Path] = true
	}
	classes := map[string]bool{}
	for _, c := range codeClasses {
		classes[c] = true
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				ok := true
				switch l.GetName() {
				case "method":
					ok = knownMethods[v] || v == otherMethod
				case "route":
					ok = routes[v]
				case "code":
					ok = classes[v]
				case "reason":
					ok = v == refusedUnauthenticated || v == refusedForbidden
				}
				if !ok {
					t.Errorf("%s has %s=%q, not a bounded value", mf.GetName(), l.GetName(), v)
				}
				seen[l.GetName()+"="+v] = true
			}
		}
	}
	for _, want := range []string{"method=" + otherMethod, "route=" + unmatchedRoute, "code=4xx", "code=2xx", "route=/v1/services/:svc"} {
		if !seen[want] {
			t.Errorf("no series with %s; seen %v", want, seen)
		}
	}
}

// TestMetricsCodeIsStatusClass checks the code label's convention, the one
// the proxy uses: the status class, never the exact status.
func TestMetricsCodeIsStatusClass(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	e.must(http.StatusNotFound, req{method: "GET", path: "/v1/services/nope", token: e.admin})
	e.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/services/orders"})
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders", token: e.admin})
	m := string(e.must(http.StatusOK, req{method: "GET", path: "/metrics"}).body)
	for _, want := range []string{
		`sluice_http_requests_total{code="4xx",method="GET",route="/v1/services/:svc"} 2`,
		`sluice_http_requests_total{code="2xx",method="GET",route="/v1/services/:svc"} 1`,
		`sluice_http_requests_total{code="2xx",method="PUT",route="/v1/services/:svc"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, status := range []string{"200", "201", "401", "404"} {
		if bad := fmt.Sprintf(`code="%s"`, status); strings.Contains(m, bad) {
			t.Errorf("metrics hold the exact status %s", bad)
		}
	}
}
