package router_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/ratelimit"
	"github.com/sluicehq/sluice/router/routesfile"
)

// Example embeds the proxy in a Go program: routes parsed from YAML, a
// static upstream, a rate limit and a breaker.
func Example() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "orders got %s", r.URL.Path)
	}))
	defer upstream.Close()

	routes, err := routesfile.Parse([]byte(`
routes:
  - name: orders
    match: {path_prefix: /orders}
    upstream: {static: ["` + upstream.Listener.Addr().String() + `"]}
    strip_prefix: true
    rate_limit: {rps: 100, burst: 20}
    circuit_breaker: {consecutive_failures: 5, open_for: 10s}
`))
	if err != nil {
		panic(err)
	}
	r, err := router.New(router.Config{
		Limiters: ratelimit.New(ratelimit.Config{}),
		Breakers: breaker.New(),
	})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	if err := r.Update(routes); err != nil {
		panic(err)
	}

	front := httptest.NewServer(r)
	defer front.Close()
	for _, path := range []string{"/orders/7", "/nowhere"} {
		resp, err := http.Get(front.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body = []byte(resp.Header.Get("Content-Type")) // the JSON error names the random port
		}
		fmt.Printf("%s → %d %s\n", path, resp.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// /orders/7 → 200 orders got /7
	// /nowhere → 404 application/json
}

// ExampleUpstreamPolicy shows which addresses a proxy may connect to: the
// built-in denials (cloud metadata, link-local, its own listeners), an
// operator's deny list, and an allow rule narrow enough to lift a built-in
// denial.
func ExampleUpstreamPolicy() {
	rule := func(s string) router.UpstreamRule {
		r, err := router.ParseUpstreamRule(s)
		if err != nil {
			panic(err)
		}
		return r
	}
	r, err := router.New(router.Config{Upstream: router.UpstreamPolicy{
		Deny: []router.UpstreamRule{rule("10.0.5.0/28"), rule("127.0.0.1:8080")}, // ZooKeeper hosts, its AdminServer
		// Allowing anything makes the list the only addresses allowed: every
		// address, which lifts no built-in denial, and one link-local range,
		// narrow enough to lift that denial for itself.
		Allow: []router.UpstreamRule{rule("0.0.0.0/0"), rule("::/0"), rule("169.254.10.0/24")},
		Own:   []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7070")}, // the admin API
	}})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	for _, a := range []string{"10.0.0.7:8080", "169.254.169.254:80", "169.254.10.9:80", "10.0.5.3:2181", "127.0.0.1:8080", "127.0.0.1:7070"} {
		if err := r.CheckUpstream(netip.MustParseAddrPort(a)); err != nil {
			fmt.Println(err)
		} else {
			fmt.Println(a, "allowed")
		}
	}
	// Output:
	// 10.0.0.7:8080 allowed
	// upstream 169.254.169.254:80 refused by the proxy's upstream policy: cloud metadata service (AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean etc.)
	// 169.254.10.9:80 allowed
	// upstream 10.0.5.3:2181 refused by the proxy's upstream policy: in the upstream deny list (10.0.5.0/28)
	// upstream 127.0.0.1:8080 refused by the proxy's upstream policy: in the upstream deny list (127.0.0.1:8080)
	// upstream 127.0.0.1:7070 refused by the proxy's upstream policy: a listener of this process (127.0.0.1:7070)
}

// ExampleSubset splits a service's traffic by instance labels: a dark
// canary (weight 0) only gets the requests that ask for it by header,
// everyone else the stable instances, each request retried once on
// another instance of its subset after a 503.
func ExampleSubset() {
	var instances []configsvc.Instance
	for _, track := range []string{"canary", "stable"} {
		name := "shop-" + track
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }))
		defer srv.Close()
		instances = append(instances, configsvc.Instance{Service: "shop", ID: name, Addr: srv.Listener.Addr().String(), Labels: map[string]string{"track": track}})
	}
	routes, err := routesfile.Parse([]byte(`
routes:
  - name: shop
    upstream:
      service: shop
      subsets:
        - {labels: {track: canary}, weight: 0}
        - {labels: {track: stable}, weight: 100}
      force: {header: X-Sluice-Subset}
    retries: {attempts: 1, on: [connect-failure, 503]}
`))
	if err != nil {
		panic(err)
	}
	r, err := router.New(router.Config{})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	if err := r.Update(routes); err != nil {
		panic(err)
	}
	r.SetInstances("shop", instances)

	front := httptest.NewServer(r)
	defer front.Close()
	for _, subset := range []string{"", "canary", "stable"} {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		req.Header.Set("X-Sluice-Subset", subset)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("X-Sluice-Subset %q → %s\n", subset, body)
	}
	http.DefaultClient.CloseIdleConnections()
	// Output:
	// X-Sluice-Subset "" → shop-stable
	// X-Sluice-Subset "canary" → shop-canary
	// X-Sluice-Subset "stable" → shop-stable
}
