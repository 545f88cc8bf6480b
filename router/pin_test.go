package router_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
)

// mapPins resolves tokens from a map; a missing token is unknown.
type mapPins map[string]configsvc.Pin

func (m mapPins) ResolvePin(_ context.Context, token string) (configsvc.Pin, error) {
	p, ok := m[token]
	if !ok {
		return configsvc.Pin{}, configsvc.ErrPinUnknown
	}
	return p, nil
}

func TestPins(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		o1, o2 := startBackend(t, "orders-1", nil), startBackend(t, "orders-2", nil)
		var proxyURL string
		p1 := startBackend(t, "payments-1", nil)
		p2 := startBackend(t, "payments-2", nil)
		// orders-3 calls payments through the proxy, passing the pin on as the
		// SDK's PinTransport does.
		o3 := startBackend(t, "orders-3", func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), "GET", proxyURL+"/payments/charge", nil)
			req.Header.Set(router.PinHeader, r.Header.Get(router.PinHeader))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			_, _ = io.WriteString(w, "orders-3>"+string(b))
		})
		t.Cleanup(http.DefaultClient.CloseIdleConnections)
		pins := mapPins{
			"tok-valid":   {ID: "p1", Targets: map[string]string{"orders": "orders-2"}, Expires: now.Add(time.Hour)},
			"tok-expired": {ID: "p2", Targets: map[string]string{"orders": "orders-2"}, Expires: now.Add(-time.Second)},
			"tok-revoked": {ID: "p3", Targets: map[string]string{"orders": "orders-2"}, Expires: now.Add(time.Hour), Revoked: true},
			"tok-pay":     {ID: "p4", Targets: map[string]string{"payments": "payments-2"}, Expires: now.Add(time.Hour)},
			"tok-gone":    {ID: "p5", Targets: map[string]string{"orders": "orders-9"}, Expires: now.Add(time.Hour)},
			"tok-chain":   {ID: "p6", Targets: map[string]string{"orders": "orders-3", "payments": "payments-2"}, Expires: now.Add(time.Hour)},
		}
		routes := []router.Route{
			{Name: "orders", Match: router.Match{PathPrefix: "/orders"}, Upstream: router.Upstream{Service: "orders"},
				CircuitBreaker: &router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Hour}},
			{Name: "payments", Match: router.Match{PathPrefix: "/payments"}, Upstream: router.Upstream{Service: "payments"}},
		}
		p := newProxy(t, router.Config{Pins: pins, Now: func() time.Time { return now }}, routes)
		proxyURL = p.url
		p.r.SetInstances("orders", []configsvc.Instance{inst("orders", "orders-1", o1.addr), inst("orders", "orders-2", o2.addr)})
		p.r.SetInstances("payments", []configsvc.Instance{inst("payments", "payments-1", p1.addr), inst("payments", "payments-2", p2.addr)})

		t.Run("valid pin sticks to its instance", func(t *testing.T) {
			for i := 0; i < 6; i++ {
				res := p.do(t, "GET", "/orders/1", map[string]string{router.PinHeader: "tok-valid"})
				if res.status != 200 || res.body != "orders-2" || res.header.Get(router.InstanceHeader) != "orders-2" {
					t.Fatalf("request %d: %d %q instance header %q", i, res.status, res.body, res.header.Get(router.InstanceHeader))
				}
				if res.header.Get("X-Got-Pin") != "tok-valid" {
					t.Fatalf("pin header not forwarded downstream")
				}
			}
		})
		t.Run("cookie works like the header", func(t *testing.T) {
			res := p.do(t, "GET", "/orders/1", map[string]string{"Cookie": router.PinCookie + "=tok-valid"})
			if res.body != "orders-2" {
				t.Fatalf("got %q, want orders-2", res.body)
			}
		})
		for _, tc := range []struct{ token, reason string }{
			{"tok-expired", "expired"}, {"tok-revoked", "revoked"}, {"no-such-token", "unknown"},
		} {
			t.Run(tc.reason+" pin is refused", func(t *testing.T) {
				res := p.do(t, "GET", "/orders/1", map[string]string{router.PinHeader: tc.token})
				if res.status != http.StatusForbidden {
					t.Fatalf("status %d, want 403", res.status)
				}
				if code, _, details := errorOf(t, res); code != "forbidden" || details["reason"] != tc.reason {
					t.Fatalf("code %q reason %q, want forbidden/%s", code, details["reason"], tc.reason)
				}
			})
		}
		t.Run("service not in pin routes normally", func(t *testing.T) {
			seen := map[string]bool{}
			for i := 0; i < 4; i++ {
				res := p.do(t, "GET", "/orders/1", map[string]string{router.PinHeader: "tok-pay"})
				if res.header.Get(router.InstanceHeader) != "" {
					t.Fatalf("unpinned service answered with %s", router.InstanceHeader)
				}
				seen[res.body] = true
			}
			if !seen["orders-1"] || !seen["orders-2"] {
				t.Fatalf("requests went to %v, want both orders instances", seen)
			}
		})
		t.Run("pinned instance gone", func(t *testing.T) {
			res := p.do(t, "GET", "/orders/1", map[string]string{router.PinHeader: "tok-gone"})
			if _, msg, _ := errorOf(t, res); res.status != http.StatusServiceUnavailable || !strings.Contains(msg, "orders-9") {
				t.Fatalf("status %d message %q, want 503 naming orders-9", res.status, msg)
			}
		})
		t.Run("chain of two services stays pinned", func(t *testing.T) {
			p.r.SetInstances("orders", []configsvc.Instance{inst("orders", "orders-1", o1.addr), inst("orders", "orders-2", o2.addr), inst("orders", "orders-3", o3.addr)})
			for i := 0; i < 4; i++ {
				res := p.do(t, "GET", "/orders/1", map[string]string{router.PinHeader: "tok-chain"})
				if res.body != "orders-3>payments-2" {
					t.Fatalf("chain answered %q, want orders-3>payments-2", res.body)
				}
			}
		})
		t.Run("pinned requests bypass the breaker and do not count", func(t *testing.T) {
			o2.stop()
			for i := 0; i < 3; i++ {
				if s := p.do(t, "GET", "/orders/1", map[string]string{router.PinHeader: "tok-valid"}).status; s != http.StatusBadGateway {
					t.Fatalf("pinned to a dead instance: %d, want 502", s)
				}
			}
			if p.metrics.opened("orders/orders-2") {
				t.Fatalf("pinned failures moved orders-2's breaker: %v", p.metrics.breakerStates("orders/orders-2"))
			}
			for i := 0; i < 6; i++ { // unpinned: round robin reaches orders-2 and trips it
				p.get(t, "/orders/1")
			}
			if !p.metrics.opened("orders/orders-2") {
				t.Fatalf("orders-2's breaker: %v, want open", p.metrics.breakerStates("orders/orders-2"))
			}
			o2.restart(t)
			res := p.do(t, "GET", "/orders/1", map[string]string{router.PinHeader: "tok-valid"})
			if res.status != 200 || res.body != "orders-2" {
				t.Fatalf("pinned request with the breaker open: %d %q, want orders-2", res.status, res.body)
			}
		})
	})
}
