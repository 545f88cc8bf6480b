package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

const (
	grayProxyMain = "mode: safe\n"
	grayProxyGray = "mode: fast\n"
)

// TestGrayRolloutAbortedByProxyErrors: `sluice server --proxy-addr` on
// bbolt, with its rollout driver and embedded proxy as shipped (the proxy
// publishes its state every 5 s). Three real SDK clients register
// instances of orders over HTTP, each with a loopback backend the proxy
// routes /orders to; the backend of orders-1 answers 500 once its client
// applied the gray. A rollout of the gray (100 %, bake 30 s, max error
// rate 2 %) runs while a bounded loop of requests goes through the proxy:
// the driver sees the cohort's failures in the proxy's published
// counters, aborts the rollout on its own with the traffic gate naming
// orders-1 and its figures, and every client returns to main (and
// orders-1's backend answers 200 again).
func TestGrayRolloutAbortedByProxyErrors(t *testing.T) {
	rs, token := startServerWithProxy(t)
	c := adminClient(t, rs.url, token)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	orders := configsvc.Service("orders")
	if _, _, err := c.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutFile(ctx, orders, "mode.yaml", []byte(grayProxyMain)); err != nil {
		t.Fatal(err)
	}

	const failing = "orders-1"
	clients := map[string]*sdk.Client{}
	backends := map[string]string{}
	for i := range 3 {
		id := fmt.Sprintf("orders-%d", i)
		var cl *sdk.Client
		var ready sync.WaitGroup
		ready.Add(1)
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ready.Wait()
			if b, _ := cl.File("mode.yaml"); id == failing && string(b) == grayProxyGray {
				http.Error(w, "broken by the gray", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, id)
		}))
		t.Cleanup(backend.Close)
		var err error
		cl, err = sdk.Open(ctx, sdk.Config{Service: "orders", Server: rs.url, Token: token,
			Instance: sdk.Instance{ID: id, Addr: backend.Listener.Addr().String()}, Logger: slog.New(slog.DiscardHandler)})
		ready.Done()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		clients[id], backends[id] = cl, backend.URL
	}

	sys := configsvc.Service(configsvc.SystemService)
	if _, _, err := c.Create(ctx, sys); err != nil && !errors.Is(err, configsvc.ErrConflict) { // the proxy may have created it
		t.Fatal(err)
	}
	route := "routes:\n  - name: orders\n    match: {path_prefix: /orders}\n    upstream: {service: orders}\n"
	if _, err := c.PutFile(ctx, sys, configsvc.RoutesFile, []byte(route)); err != nil {
		t.Fatal(err)
	}
	proxyURL := "http://" + rs.m.Bound("proxy-addr") + "/orders/x"
	testkit.Eventually(t, 15*time.Second, "the proxy routing /orders to all three instances", func() error {
		seen := map[string]bool{}
		for range 12 {
			code, body := srvGet(t, proxyURL, "")
			if code != http.StatusOK {
				return fmt.Errorf("proxy answered %d %s", code, body)
			}
			seen[body] = true
		}
		if len(seen) != 3 {
			return fmt.Errorf("answers from %v", seen)
		}
		return nil
	})

	g, err := c.CreateGray(ctx, orders, api.GrayRequest{Name: "fast mode", Changes: []api.Change{api.PutChange("mode.yaml", []byte(grayProxyGray))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartRollout(ctx, orders, g.ID, api.RolloutRequest{MaxErrorRate: 0.02, ApplyTimeout: configsvc.Duration(20 * time.Second),
		Steps: []api.RolloutStep{{Percent: 100, Bake: configsvc.Duration(30 * time.Second)}}}); err != nil {
		t.Fatal(err)
	}

	// Traffic through the proxy until the gray ends: bounded in count and time.
	stop := make(chan struct{})
	loopDone := make(chan [2]int, 1)
	go func() {
		var sent, errs int
		deadline := time.Now().Add(60 * time.Second)
		client := &http.Client{Timeout: 2 * time.Second}
		defer client.CloseIdleConnections()
		for sent < 6000 && time.Now().Before(deadline) {
			select {
			case <-stop:
				loopDone <- [2]int{sent, errs}
				return
			case <-time.After(10 * time.Millisecond):
			}
			resp, err := client.Get(proxyURL)
			sent++
			if err != nil {
				errs++
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				errs++
			}
		}
		loopDone <- [2]int{sent, errs}
	}()

	var ended configsvc.Gray
	testkit.Eventually(t, 60*time.Second, "the rollout ended by the driver", func() error {
		var err error
		if ended, err = c.Gray(ctx, orders, g.ID); err != nil {
			return err
		}
		if ended.State == configsvc.GrayActive {
			st := ended.Rollout.State
			return fmt.Errorf("still active: step %d %s (%s)", st.Step+1, st.State, st.Reason)
		}
		return nil
	})
	close(stop)
	counts := <-loopDone
	t.Logf("requests through the proxy: %d, 5xx or errors: %d; rollout: %s", counts[0], counts[1], ended.Rollout.State.Reason)

	r := ended.Rollout.State
	if ended.State != configsvc.GrayAbandoned || r.State != configsvc.RolloutAborted || r.Failed == nil || r.Failed.Gate != configsvc.GateTraffic {
		t.Fatalf("gray %s, rollout %s, failed %+v (%s); want abandoned by the traffic gate", ended.State, r.State, r.Failed, r.Reason)
	}
	if len(r.Failed.Instances) != 1 || r.Failed.Instances[0] != failing {
		t.Fatalf("failed instances %v, want [%s]", r.Failed.Instances, failing)
	}
	f := r.Failed.Figures
	if f["cohort_requests"] <= 0 || f["cohort_failures"] <= 0 || f["cohort_failures"] > f["cohort_requests"] ||
		f["cohort_error_rate"] <= 0.02 || f["max_error_rate"] != 0.02 {
		t.Fatalf("gate figures %v", f)
	}
	if counts[1] == 0 {
		t.Fatalf("the loop saw no failures through the proxy, yet the gate failed: %v", f)
	}
	if !strings.Contains(r.Reason, "traffic gate failed") || !strings.Contains(r.Reason, "errors over") {
		t.Fatalf("abort reason %q", r.Reason)
	}

	for id, cl := range clients {
		testkit.EventuallyTrue(t, 15*time.Second, id+" back on main", func() bool {
			b, _ := cl.File("mode.yaml")
			return len(cl.Grays()) == 0 && string(b) == grayProxyMain && cl.Revision() == 1
		})
	}
	if code, body := srvGet(t, backends[failing]+"/", ""); code != http.StatusOK || body != failing {
		t.Fatalf("%s's backend after the abort: %d %q", failing, code, body)
	}
}
