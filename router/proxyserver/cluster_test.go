package proxyserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// TestServeRegistersAndSharesClusterRates: Serve registers the proxy as an
// instance of sluice-system (role=proxy), and a route with scope: cluster
// is divided by the registered proxies, re-divided as others join and
// leave. The rate limiter's clock is frozen, so each round admits exactly
// the burst share.
func TestServeRegistersAndSharesClusterRates(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		ctx := context.Background()
		store := bolttest.MustOpen(t, boltstore.Options{})
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		t.Cleanup(backend.Close)
		if err := store.Create(ctx, configsvc.Service(configsvc.SystemService)); err != nil {
			t.Fatal(err)
		}
		publish(t, store, 0, fmt.Sprintf("routes:\n  - name: shared\n    upstream: {static: [%q]}\n    rate_limit: {rps: 1, burst: 12, scope: cluster}\n",
			strings.TrimPrefix(backend.URL, "http://")))

		clock := testkit.NewClock(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC))
		proxyAddr, _ := startServing(t, store, proxyserver.Options{Now: clock.Now, InstanceID: "proxy-a", RetryInterval: 20 * time.Millisecond})
		client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
		t.Cleanup(client.CloseIdleConnections)

		// round refills the buckets (an hour later on the frozen clock) and
		// counts how many of 30 requests pass.
		round := func() (int, error) {
			clock.Advance(time.Hour)
			ok := 0
			for range 30 {
				resp, err := client.Get("http://" + proxyAddr + "/")
				if err != nil {
					return 0, err
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok++
				case http.StatusTooManyRequests:
				default:
					return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
				}
			}
			return ok, nil
		}
		expect := func(what string, want int) {
			t.Helper()
			testkit.Eventually(t, 10*time.Second, what+": the burst share admitted", func() error {
				got, err := round()
				if err == nil && got != want {
					err = fmt.Errorf("%d of 30 requests admitted, want %d", got, want)
				}
				return err
			})
		}

		testkit.Eventually(t, 10*time.Second, "proxy registered as an instance of sluice-system", func() error {
			list, err := store.Instances(ctx, configsvc.SystemService)
			if err == nil && !(len(list) == 1 && list[0].ID == "proxy-a" && list[0].Labels[configsvc.ProxyRoleLabel] == configsvc.ProxyRole) {
				err = fmt.Errorf("instances %+v", list)
			}
			return err
		})
		expect("alone", 12)

		var leases []configsvc.Lease
		for _, id := range []string{"proxy-b", "proxy-c"} {
			l, err := store.Register(ctx, configsvc.Instance{Service: configsvc.SystemService, ID: id, Addr: "127.0.0.1:1",
				Labels: map[string]string{configsvc.ProxyRoleLabel: configsvc.ProxyRole}, Status: configsvc.StatusApplied})
			if err != nil {
				t.Fatal(err)
			}
			leases = append(leases, l)
		}
		other, err := store.Register(ctx, configsvc.Instance{Service: configsvc.SystemService, ID: "not-a-proxy", Addr: "127.0.0.1:2", Status: configsvc.StatusApplied})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		expect("three proxies (an instance without role=proxy does not count)", 4)

		leases[0].Close()
		expect("two proxies after one left", 6)
		leases[1].Close()
		expect("alone again", 12)
	})
}

// TestServeRegistrationHasTimesAndRevision: the proxy's instance record in
// sluice-system carries its start time, the route file revision in force
// and since when (the console showed a zero time as "739951 d ago"), and
// follows a new revision of the route file.
func TestServeRegistrationHasTimesAndRevision(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		ctx := context.Background()
		store := bolttest.MustOpen(t, boltstore.Options{})
		if err := store.Create(ctx, configsvc.Service(configsvc.SystemService)); err != nil {
			t.Fatal(err)
		}
		publish(t, store, 0, "routes: []\n")
		start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		clock := testkit.NewClock(start)
		startServing(t, store, proxyserver.Options{Now: clock.Now, InstanceID: "proxy-a", RetryInterval: 20 * time.Millisecond})
		record := func(what string, ok func(configsvc.Instance) bool) configsvc.Instance {
			t.Helper()
			var got configsvc.Instance
			testkit.Eventually(t, 10*time.Second, what, func() error {
				list, err := store.Instances(ctx, configsvc.SystemService)
				if err != nil {
					return err
				}
				if len(list) != 1 || !ok(list[0]) {
					return fmt.Errorf("instances %+v", list)
				}
				got = list[0]
				return nil
			})
			return got
		}
		first := record("registered at revision 1 with its times", func(in configsvc.Instance) bool {
			return in.Revision == 1 && in.Started.Equal(start) && !in.Updated.IsZero() && !in.AppliedAt.IsZero()
		})
		clock.Advance(time.Hour)
		publish(t, store, 1, "routes: []\n# two\n")
		record("revision 2 in force since an hour later", func(in configsvc.Instance) bool {
			return in.Revision == 2 && in.Started.Equal(first.Started) && in.AppliedAt.Equal(start.Add(time.Hour)) && in.Updated.Equal(start.Add(time.Hour))
		})
	})
}
