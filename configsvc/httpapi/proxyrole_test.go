package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestProxyRoleGetsWhatAProxyNeedsAndNothingMore: a token with a narrow
// proxy grant (proxy:orders) does over the API what `sluice proxy
// --server` does — reads and watches sluice-system, registers there,
// lists and watches the instances of orders, follows the pins on orders
// (with their record keys, and only their orders targets) and publishes
// and removes its own state — and is refused everything else: files,
// snapshots and watches of orders, instances of billing, publishing
// anywhere, pins, instances of orders, another proxy's state, tokens and
// the audit log.
func TestProxyRoleGetsWhatAProxyNeedsAndNothingMore(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "one"})
	e.mustService("billing", nil)
	e.mustService(configsvc.SystemService, map[string]string{configsvc.RoutesFile: "routes: []\n"})
	proxy := e.mustToken("proxy:orders")
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/sluice-system/instances/proxy-1", token: e.admin, body: map[string]any{"addr": "127.0.0.1:7081", "labels": map[string]string{"role": "proxy"}}})
	var onOrders, onBoth, onBilling api.Pin
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin, body: map[string]any{"targets": map[string]string{"orders": "orders-1"}}}).json(t, &onOrders)
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin, body: map[string]any{"targets": map[string]string{"orders": "orders-2", "billing": "billing-1"}}}).json(t, &onBoth)
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin, body: map[string]any{"targets": map[string]string{"billing": "billing-1"}}}).json(t, &onBilling)
	state := map[string]any{"addr": "127.0.0.1:7080", "updated": time.Now().UTC(), "revision": 1, "peers": 1, "routes": []any{}}

	t.Run("allowed", func(t *testing.T) {
		e := e.withT(t)
		for _, r := range []struct {
			want int
			req  req
		}{
			{200, req{method: "GET", path: "/v1/services/sluice-system/snapshot"}},
			{200, req{method: "GET", path: "/v1/services/sluice-system/files/routes.yaml"}},
			{200, req{method: "GET", path: "/v1/services/sluice-system/instances"}},
			{200, req{method: "PUT", path: "/v1/services/sluice-system"}}, // exists: creating it changes nothing
			{201, req{method: "PUT", path: "/v1/services/sluice-system/instances/proxy-9", body: map[string]any{"addr": "127.0.0.1:7080", "labels": map[string]string{"role": "proxy"}}}},
			{200, req{method: "GET", path: "/v1/services/orders/instances"}},
			{204, req{method: "PUT", path: "/v1/routes/proxies/proxy-9", body: state}},
			{200, req{method: "GET", path: "/v1/routes"}},
			{204, req{method: "DELETE", path: "/v1/routes/proxies/proxy-9"}},
		} {
			r.req.token = proxy
			e.must(r.want, r.req)
		}
	})

	t.Run("pins stream", func(t *testing.T) {
		c, err := api.New(api.Config{Servers: []string{e.http.URL}, Token: proxy, HTTPClient: e.http.Client()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ev := <-c.WatchPins(ctx)
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		got := map[string]map[string]string{}
		for _, p := range ev.Pins {
			got[p.ID] = p.Targets
			if len(p.Hash) != 64 || p.Hash[:12] != p.ID {
				t.Errorf("pin %s has record key %q, want the 64 hex digits of its token's hash", p.ID, p.Hash)
			}
		}
		want := map[string]map[string]string{onOrders.ID: {"orders": "orders-1"}, onBoth.ID: {"orders": "orders-2"}}
		if len(got) != len(want) || got[onOrders.ID]["orders"] != "orders-1" || len(got[onBoth.ID]) != 1 || got[onBoth.ID]["orders"] != "orders-2" {
			t.Fatalf("the proxy:orders pin stream holds %v, want %v (billing's pin and targets left out)", got, want)
		}
		for _, p := range ev.Pins {
			if p.ID == onOrders.ID && p.Hash != access.HashToken(onOrders.Secret) {
				t.Fatalf("pin %s: record key %s is not the hash of its token", p.ID, p.Hash)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		e := e.withT(t)
		for _, r := range []req{
			{method: "GET", path: "/v1/services/orders/files/a.txt"},
			{method: "GET", path: "/v1/services/orders/snapshot"},
			{method: "GET", path: "/v1/services/orders/revisions"},
			{method: "GET", path: "/v1/services/billing/instances"},
			{method: "PUT", path: "/v1/services/orders/files/a.txt", body: "two", contentType: "text/plain"},
			{method: "PUT", path: "/v1/services/sluice-system/files/routes.yaml", body: "routes: []\n", contentType: "text/plain"},
			{method: "POST", path: "/v1/services/sluice-system/rollback", body: map[string]any{"to_revision": 1}},
			{method: "PUT", path: "/v1/services/orders/instances/orders-9", body: map[string]any{"addr": "127.0.0.1:2"}},
			{method: "POST", path: "/v1/pins", body: map[string]any{"targets": map[string]string{"orders": "orders-1"}}},
			{method: "DELETE", path: "/v1/pins/" + onOrders.ID},
			{method: "PUT", path: "/v1/routes/proxies/proxy-1", body: state},
			{method: "DELETE", path: "/v1/routes/proxies/proxy-1"},
			{method: "PUT", path: "/v1/services/orders"},
			{method: "GET", path: "/v1/tokens"},
			{method: "GET", path: "/v1/audit"},
		} {
			r.token = proxy
			e.must(http.StatusForbidden, r)
		}
		var list api.PinList
		e.must(http.StatusOK, req{method: "GET", path: "/v1/pins", token: proxy}).json(t, &list)
		for _, p := range list.Pins {
			if p.ID == onBilling.ID {
				t.Fatalf("GET /v1/pins shows the proxy:orders token billing's pin %+v", p)
			}
		}
	})

	t.Run("pins stream refused to other roles", func(t *testing.T) {
		for _, grant := range []string{"viewer:*", "editor:*", "agent:*"} {
			c, err := api.New(api.Config{Servers: []string{e.http.URL}, Token: e.mustToken(grant), HTTPClient: e.http.Client()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ev, ok := <-c.WatchPins(ctx)
			cancel()
			if !ok || !errors.Is(ev.Err, api.ErrForbidden) {
				t.Fatalf("%s: pin stream answered %+v, want 403", grant, ev)
			}
		}
	})
}

// TestServerSweepsStatesOfProxiesGone: a proxy publishing through the API
// cannot list the states to sweep them, so the server's record sweep
// deletes the states not updated for configsvc.ProxyStateExpiry (a proxy
// that crashed) and keeps the others.
func TestServerSweepsStatesOfProxiesGone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	for id, updated := range map[string]time.Time{"gone": now.Add(-configsvc.ProxyStateExpiry - time.Minute), "live": now.Add(-time.Minute)} {
		b, _ := json.Marshal(configsvc.ProxyState{ID: id, Updated: updated})
		if err := e.store.Records().Put(ctx, configsvc.ProxyStateCollection, id, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.srv.sweepRecords(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := e.store.Records().List(ctx, configsvc.ProxyStateCollection)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != "live" {
		t.Fatalf("after the sweep: %v, want only the live proxy's state", recs)
	}
}
