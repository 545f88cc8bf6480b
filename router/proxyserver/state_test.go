package proxyserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// TestServePublishesState: Serve publishes the live route table under its
// instance id, follows route file revisions and breaker trips in it,
// removes the record when it stops, and removes the expired records of
// proxies gone without removing theirs.
func TestServePublishesState(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		onBothStores(t, "/proxyserver-state-test", testServePublishesState)
	})
}

func testServePublishesState(t *testing.T, store configsvc.Store) {
	ctx := context.Background()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(failing.Close)
	if err := store.Create(ctx, configsvc.Service(configsvc.SystemService)); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(failing.URL, "http://")
	rev := publish(t, store, 0, fmt.Sprintf("routes:\n  - name: flaky\n    upstream: {static: [%q]}\n    circuit_breaker: {consecutive_failures: 2, open_for: 1m}\n", addr))

	for id, age := range map[string]time.Duration{"proxy-gone": proxyserver.StateExpiry + time.Minute, "proxy-recent": 10 * time.Minute} {
		data, _ := json.Marshal(configsvc.ProxyState{ID: id, Updated: time.Now().Add(-age), Routes: []configsvc.RouteState{}})
		if err := store.Records().Put(ctx, configsvc.ProxyStateCollection, id, data); err != nil {
			t.Fatal(err)
		}
	}

	proxyAddr, stop := startServing(t, store, proxyserver.Options{InstanceID: "proxy-s", StateInterval: 50 * time.Millisecond, RetryInterval: 20 * time.Millisecond})

	// waitState polls the record until cond holds and returns it.
	waitState := func(what string, cond func(configsvc.ProxyState) bool) configsvc.ProxyState {
		t.Helper()
		var st configsvc.ProxyState
		testkit.Eventually(t, 10*time.Second, what, func() error {
			st = configsvc.ProxyState{}
			data, err := store.Records().Get(ctx, configsvc.ProxyStateCollection, "proxy-s")
			if err != nil {
				return err
			}
			if err := json.Unmarshal(data, &st); err != nil {
				t.Fatalf("record %s: %v", data, err)
			}
			if !cond(st) {
				return fmt.Errorf("last record %+v", st)
			}
			return nil
		})
		return st
	}
	st := waitState("the routes of revision "+fmt.Sprint(rev), func(st configsvc.ProxyState) bool {
		return st.Revision == rev && len(st.Routes) == 1 && len(st.Routes[0].Instances) == 1
	})
	if st.ID != "proxy-s" || st.Addr != proxyAddr || st.Peers != 1 || st.Routes[0].Name != "flaky" {
		t.Fatalf("state = %+v, want id proxy-s on %s, 1 peer, route flaky", st, proxyAddr)
	}
	if in := st.Routes[0].Instances[0]; in.ID != addr || in.Breaker != "closed" {
		t.Fatalf("instance = %+v, want %s with a closed breaker", in, addr)
	}
	// The sweep runs before the first publish.
	if _, err := store.Records().Get(ctx, configsvc.ProxyStateCollection, "proxy-gone"); !errors.Is(err, configsvc.ErrNotFound) {
		t.Errorf("expired record of proxy-gone: err %v, want it deleted", err)
	}
	if _, err := store.Records().Get(ctx, configsvc.ProxyStateCollection, "proxy-recent"); err != nil {
		t.Errorf("record of proxy-recent (10 min old): %v, want it kept", err)
	}
	first := st.Updated
	if age := time.Since(first); age < 0 || age > 10*time.Second {
		t.Errorf("updated %s is not the current time", first)
	}

	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	for range 3 {
		resp, err := client.Get("http://" + proxyAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	st = waitState("the open breaker", func(st configsvc.ProxyState) bool {
		return len(st.Routes) == 1 && len(st.Routes[0].Instances) == 1 && st.Routes[0].Instances[0].Breaker == "open"
	})
	if in := st.Routes[0].Instances[0]; in.Opened != 1 || in.Requests != 2 || in.Failures != 2 {
		t.Errorf("instance = %+v, want opened once after 2 failed requests (the third refused)", in)
	}
	if !st.Updated.After(first) {
		t.Errorf("updated %s, not after the first publish %s", st.Updated, first)
	}

	rev2 := publish(t, store, rev, "routes: []\n")
	waitState("the empty table of revision "+fmt.Sprint(rev2), func(st configsvc.ProxyState) bool { return st.Revision == rev2 && len(st.Routes) == 0 })

	stop()
	if _, err := store.Records().Get(ctx, configsvc.ProxyStateCollection, "proxy-s"); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("state record after a clean stop: err %v, want ErrNotFound", err)
	}
}

// TestServeStateDisabled: a negative StateInterval publishes nothing.
func TestServeStateDisabled(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		ctx := context.Background()
		store := bolttest.MustOpen(t, boltstore.Options{})
		if err := store.Create(ctx, configsvc.Service(configsvc.SystemService)); err != nil {
			t.Fatal(err)
		}
		_, stop := startServing(t, store, proxyserver.Options{InstanceID: "proxy-q", StateInterval: -1, RetryInterval: 20 * time.Millisecond})
		// Registration proves Serve is running; by then a publisher would have written.
		testkit.Eventually(t, 10*time.Second, "proxy registered", func() error {
			list, err := store.Instances(ctx, configsvc.SystemService)
			if err == nil && len(list) != 1 {
				err = fmt.Errorf("instances %+v", list)
			}
			return err
		})
		time.Sleep(100 * time.Millisecond)
		recs, err := store.Records().List(ctx, configsvc.ProxyStateCollection)
		stop()
		if err != nil || len(recs) != 0 {
			t.Fatalf("state records %v (err %v), want none", recs, err)
		}
	})
}
