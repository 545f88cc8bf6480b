package clustertest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

const ordersRoute = "routes:\n  - name: orders\n    match: {path_prefix: /orders}\n    upstream: {service: orders}\n    strip_prefix: true\n"

// get sends GET url with an optional pin and returns status, the
// X-Sluice-Instance header and the trimmed body.
func get(url, pin string) (int, string, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", "", err
	}
	if pin != "" {
		req.Header.Set("X-Sluice-Pin", pin)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Sluice-Instance"), strings.TrimSpace(string(b)), nil
}

// TestPinAcrossServersAndProxies: a pin created through server A routes
// through proxy B (and A); revoking it on server B stops it on both proxies.
func TestPinAcrossServersAndProxies(t *testing.T) {
	ens := startEnsemble(t)
	c := newCluster(t, ens.Servers())
	a, b := c.startServer("server-a"), c.startServer("server-b")
	apiA, apiB := c.client(a), c.client(b)
	mustCreate(t, apiA, "orders")
	mustPut(t, apiA, "orders", "orders.yaml", "greeting: hi\nmax_items: 5\n")
	mustCreate(t, apiA, configsvc.SystemService)
	mustPut(t, apiA, configsvc.SystemService, configsvc.RoutesFile, ordersRoute)
	c.startOrders("orders-1")
	c.startOrders("orders-2")
	proxies := map[string]*proxy{"proxy-a": c.startProxy("proxy-a"), "proxy-b": c.startProxy("proxy-b")}

	for name, p := range proxies {
		testkit.Eventually(t, 30*time.Second, name+" balances over both instances", func() error {
			seen := map[string]bool{}
			for range 6 {
				st, _, body, err := get(p.url+"/orders/whoami", "")
				if err != nil {
					return err
				}
				if st != http.StatusOK {
					return fmt.Errorf("HTTP %d %s", st, body)
				}
				seen[body] = true
			}
			if !seen["orders-1"] || !seen["orders-2"] {
				return fmt.Errorf("saw %v", seen)
			}
			return nil
		})
	}

	ctx, cancel := callCtx()
	defer cancel()
	pin, err := apiA.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "orders-2"}, TTL: "10m"})
	if err != nil || pin.Secret == "" || pin.ID == "" {
		t.Fatalf("pin create answer: id %q, token set %v, err %v", pin.ID, pin.Secret != "", err)
	}

	for _, name := range []string{"proxy-b", "proxy-a"} {
		t.Run("pinned through "+name, func(t *testing.T) {
			for i := range 10 {
				st, inst, body, err := get(proxies[name].url+"/orders/whoami", pin.Secret)
				if err != nil || st != http.StatusOK || inst != "orders-2" || body != "orders-2" {
					t.Fatalf("request %d: HTTP %d, X-Sluice-Instance %q, body %q, err %v; want orders-2", i, st, inst, body, err)
				}
			}
		})
	}

	if _, err := apiB.RevokePin(ctx, pin.ID); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	for _, name := range []string{"proxy-a", "proxy-b"} {
		t.Run("revoked on "+name, func(t *testing.T) {
			testkit.Eventually(t, 5*time.Second, name+" refuses the revoked pin", func() error {
				st, _, body, err := get(proxies[name].url+"/orders/whoami", pin.Secret)
				if err != nil {
					return err
				}
				if st != http.StatusForbidden || !strings.Contains(body, `"revoked"`) {
					return fmt.Errorf("HTTP %d %s", st, body)
				}
				return nil
			})
			t.Logf("%s refuses the pin %v after the revocation on server B", name, time.Since(revokedAt).Round(10*time.Millisecond))
		})
	}
}
