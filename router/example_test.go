package router_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

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
