package webui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// checkLiveRoutes runs a real proxy on the console's store, trips a breaker
// and a rate limit through it, adds the stale record of a proxy gone, and
// checks that the routes page shows both as the server reports them.
func checkLiveRoutes(t *testing.T, c *console, adm *tab) {
	t.Helper()
	ctx := context.Background()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(failing.Close)
	upstream := strings.TrimPrefix(failing.URL, "http://")
	// shop splits its traffic between a canary that fails and a stable
	// instance, with retries, outlier detection and health checks.
	if err := c.store.Create(ctx, configsvc.Service("shop")); err != nil {
		t.Fatal(err)
	}
	for _, track := range []string{"canary", "stable"} {
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if track == "canary" && r.URL.Path != "/healthz" {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(backend.Close)
		lease, err := c.store.Register(ctx, configsvc.Instance{Service: "shop", ID: "shop-" + track, Addr: strings.TrimPrefix(backend.URL, "http://"),
			Labels: map[string]string{"track": track}, Status: configsvc.StatusApplied})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lease.Close() })
	}
	routes := fmt.Sprintf("routes:\n  - name: flaky\n    match: {path_prefix: /flaky}\n    upstream: {static: [%q]}\n"+
		"    rate_limit: {rps: 0.01, burst: 5}\n    circuit_breaker: {consecutive_failures: 2, open_for: 1m}\n"+
		"  - name: shop\n    match: {path_prefix: /shop}\n    upstream:\n      service: shop\n"+
		"      subsets: [{labels: {track: canary}, weight: 5}, {labels: {track: stable}, weight: 95}]\n"+
		"      sticky: {header: X-User}\n      force: {header: X-Sluice-Subset}\n"+
		"    retries: {attempts: 2, on: [503]}\n    outlier_detection: {consecutive_5xx: 1, base_ejection_time: 1m}\n"+
		"    health_check: {path: /healthz, interval: 100ms}\n", upstream)
	head := headRevision(t, c.store, configsvc.SystemService)
	rev, err := c.store.Publish(ctx, configsvc.Service(configsvc.SystemService), configsvc.Changeset{Base: head, Author: "test", Message: "live routes",
		Changes: []configsvc.Change{{File: configsvc.RoutesFile, Content: []byte(routes)}}})
	if err != nil {
		t.Fatalf("publish routes: %v", err)
	}
	old, _ := json.Marshal(configsvc.ProxyState{ID: "proxy-old", Addr: "127.0.0.1:1", Updated: time.Now().Add(-2 * time.Minute), Revision: head, Routes: []configsvc.RouteState{}})
	if err := c.store.Records().Put(ctx, configsvc.ProxyStateCollection, "proxy-old", old); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- proxyserver.Serve(pctx, c.store, ln, proxyserver.Options{InstanceID: "proxy-console", StateInterval: 100 * time.Millisecond, RetryInterval: 20 * time.Millisecond})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})

	// The proxy has the routes once it answers on them (404 before).
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	call := func() int {
		resp, err := client.Get("http://" + ln.Addr().String() + "/flaky")
		if err != nil {
			t.Fatalf("proxy: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var statuses []int
	testkit.Eventually(t, 10*time.Second, "the proxy loading the routes", func() error {
		status := call()
		if status == http.StatusNotFound {
			return fmt.Errorf("status %d", status)
		}
		statuses = []int{status}
		return nil
	})
	for range 7 {
		statuses = append(statuses, call())
	}
	// The burst of 5 passes the limiter: 2 failures trip the breaker, 3
	// meet it open; the 3 after the burst are refused.
	if want := fmt.Sprint([]int{502, 502, 503, 503, 503, 429, 429, 429}); fmt.Sprint(statuses) != want {
		t.Fatalf("statuses %v, want %s", statuses, want)
	}

	// A request forced to the canary fails there, and ejects it.
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/shop", nil)
	req.Header.Set("X-Sluice-Subset", "canary")
	testkit.Eventually(t, 10*time.Second, "a request forced to the failing canary answered 503", func() error {
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d", resp.StatusCode) // the proxy is still learning the instances
		}
		return nil
	})

	testkit.Eventually(t, 10*time.Second, "GET /v1/routes showing the tripped breaker, 3 refusals and the ejected canary", func() error {
		live, err := c.api.LiveRoutes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(live.Proxies) == 1 && live.Proxies[0].Revision == rev.Number && len(live.Proxies[0].Routes) == 2 &&
			live.Proxies[0].Routes[0].RateLimit.Rejected == 3 && live.Proxies[0].Routes[0].Instances[0].Breaker == "open" &&
			live.Proxies[0].Routes[1].OutlierDetection != nil && live.Proxies[0].Routes[1].OutlierDetection.Ejected == 1 {
			return nil
		}
		return fmt.Errorf("proxies %+v", live.Proxies)
	})

	// A new hash (the page may already show #/routes) renders the page afresh.
	adm.do(chromedp.Navigate(c.url+"#/routes/files"), chromedp.WaitVisible(chromedp.CSS(`[data-proxy=proxy-console] [data-route=flaky]`)))
	row := adm.text(`[data-proxy=proxy-console] [data-route=flaky]`)
	for _, want := range []string{"/flaky", upstream, "round_robin", "3 rejected", "open", "2 req, 2 failed", "tripped 1×"} {
		if !strings.Contains(row, want) {
			t.Errorf("live route row %q lacks %q", row, want)
		}
	}
	shop := adm.text(`[data-proxy=proxy-console] [data-route=shop]`)
	for _, want := range []string{"canary weight 5, 1 instance", "stable weight 95, 1 instance", "sticky by header:X-User", "forced by header:X-Sluice-Subset",
		"retries 2 on 503", "backoff 25ms–250ms", "budget 20 % (min 3)", "ejects after 1 × 5xx for 1m0s+", "1 ejected", "checks GET /healthz every 100ms",
		"shop-canary ejected healthy 1 req, 1 failed, ejected 1×", "shop-stable healthy"} {
		if !strings.Contains(shop, want) {
			t.Errorf("live route row %q lacks %q", shop, want)
		}
	}
	if got := adm.text(`[data-proxy=proxy-console] [data-route=shop] [data-instance=shop-canary] [data-test=ejected]`); got != "ejected" {
		t.Errorf("the canary's ejected badge reads %q", got)
	}
	if got := adm.text(`[data-proxy=proxy-console] [data-test=proxy-revision]`); got != fmt.Sprintf("revision %d", rev.Number) {
		t.Errorf("proxy revision badge %q, want revision %d (current)", got, rev.Number)
	}
	if got := adm.text(`[data-stale=proxy-old]`); !strings.Contains(got, "stale") {
		t.Errorf("stale proxy row %q, want it marked stale", got)
	}
	if n := adm.count(`[data-proxy=proxy-old]`); n != 0 {
		t.Error("the stale proxy is shown as live")
	}
	adm.shot("16-live-routes")

	// The page follows the proxies' next publish by itself.
	if st := call(); st != http.StatusTooManyRequests {
		t.Fatalf("one more request: %d, want 429", st)
	}
	adm.waitFor("4 rejected", `document.querySelector('[data-proxy=proxy-console] [data-route=flaky] [data-test=rate-limit]')?.textContent.includes('4 rejected')`)
}
