package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// TestProxySource: the source a proxy reads the admin API through keeps a
// copy of the pins its proxy token may see — so that access.Pins resolves
// a pin token with it, a revocation included — publishes and removes the
// proxy's state, and refuses the records a proxy has no business with.
// Run ends with ctx, and with an error for a token without the proxy role.
func TestProxySource(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx := ctxT(t)
	for _, svc := range []string{"orders", configsvc.SystemService} {
		if _, _, err := e.c.Create(ctx, configsvc.Service(svc)); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := e.c.CreateToken(ctx, api.TokenRequest{Name: "edge", Roles: []api.Grant{{Role: access.RoleProxy, Pattern: "*"}}})
	if err != nil {
		t.Fatal(err)
	}
	ps := api.NewProxySource(e.client(t, tok.Secret))
	recs := ps.Records()
	_, err = recs.Get(ctx, access.PinsCollection, "0123")
	mustIs(t, "a pin before the first list", err, configsvc.ErrUnavailable)

	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ps.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	}()
	select {
	case <-ps.Loaded():
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no pins list after 10 s")
	}

	pin, err := e.c.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "orders-1"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	pins := access.NewPins(recs, access.PinsConfig{CacheTTL: -1})
	testkit.Eventually(t, 5*time.Second, "the new pin resolving", func() error {
		p, err := pins.ResolvePin(ctx, pin.Secret)
		if err == nil && (p.ID != pin.ID || p.Targets["orders"] != "orders-1") {
			err = fmt.Errorf("resolved %+v", p)
		}
		return err
	})
	if _, err := pins.ResolvePin(ctx, access.PinTokenPrefix+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, configsvc.ErrPinUnknown) {
		t.Fatalf("an unknown pin token: %v, want ErrPinUnknown", err)
	}
	if _, err := e.c.RevokePin(ctx, pin.ID); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "the revoked pin refused", func() error {
		if _, err := pins.ResolvePin(ctx, pin.Secret); !errors.Is(err, configsvc.ErrPinRevoked) {
			return fmt.Errorf("resolve: %v, want ErrPinRevoked", err)
		}
		return nil
	})

	state, _ := json.Marshal(configsvc.ProxyState{Addr: "127.0.0.1:7080", Updated: time.Now(), Revision: 3})
	if err := recs.Put(ctx, configsvc.ProxyStateCollection, "proxy-a", state); err != nil {
		t.Fatal(err)
	}
	live, err := e.c.LiveRoutes(ctx)
	if err != nil || len(live.Proxies) != 1 || live.Proxies[0].ID != "proxy-a" || live.Proxies[0].Revision != 3 {
		t.Fatalf("LiveRoutes after the put = %+v, %v", live, err)
	}
	if err := recs.Delete(ctx, configsvc.ProxyStateCollection, "proxy-a"); err != nil {
		t.Fatal(err)
	}
	if live, err = e.c.LiveRoutes(ctx); err != nil || len(live.Proxies) != 0 {
		t.Fatalf("LiveRoutes after the delete = %+v, %v", live, err)
	}
	mustIs(t, "delete again", recs.Delete(ctx, configsvc.ProxyStateCollection, "proxy-a"), configsvc.ErrNotFound)

	for what, err := range map[string]error{
		"get a token":     func() error { _, err := recs.Get(ctx, access.TokensCollection, "x"); return err }(),
		"put a pin":       recs.Put(ctx, access.PinsCollection, "x", []byte("{}")),
		"list the states": func() error { _, err := recs.List(ctx, configsvc.ProxyStateCollection); return err }(),
		"append audit":    func() error { _, err := recs.Append(ctx, "audit", []byte("{}"), 0); return err }(),
	} {
		mustIs(t, what, err, configsvc.ErrInvalid)
	}

	viewer, err := e.c.CreateToken(ctx, api.TokenRequest{Name: "v", Roles: []api.Grant{{Role: access.RoleViewer, Pattern: "*"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = api.NewProxySource(e.client(t, viewer.Secret)).Run(ctx)
	mustIs(t, "Run with a viewer token", err, api.ErrForbidden)
}
