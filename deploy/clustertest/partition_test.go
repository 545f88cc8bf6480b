package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// instanceOf returns the registration of id in service orders as server
// api sees it, or ok false when it is not registered.
func instanceOf(api *client, id string) (rev int64, ok bool, err error) {
	r, err := api.do(context.Background(), "GET", "/v1/services/orders/instances", nil)
	if err != nil {
		return 0, false, err
	}
	if r.status != http.StatusOK {
		return 0, false, fmt.Errorf("%v", r)
	}
	var out struct {
		Instances []struct {
			ID       string `json:"id"`
			Revision int64  `json:"revision"`
		}
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		return 0, false, err
	}
	for _, in := range out.Instances {
		if in.ID == id {
			return in.Revision, true, nil
		}
	}
	return 0, false, nil
}

// TestSDKPartitionedFromZooKeeper black-holes an SDK's ZooKeeper traffic
// past its session timeout: ZooKeeper expires the session (the ephemeral
// registration disappears) while revisions are published. On heal the SDK
// registers again, re-arms its watch and converges on the newest revision,
// and later publishes reach it.
func TestSDKPartitionedFromZooKeeper(t *testing.T) {
	zk := zktest.Start(t)
	c := newCluster(t, zk.Servers())
	api := c.client(c.startServer("server"))
	api.must(t, http.StatusCreated, "PUT", "/v1/services/orders", nil)
	api.must(t, http.StatusOK, "PUT", "/v1/services/orders/files/orders.yaml", []byte("greeting: before\n"))

	front := startTCPProxy(t, zk.Addr())
	const session = 2 * time.Second
	cl := openSDK(t, sdk.Config{ZooKeeper: []string{front.Addr()}, ZKSessionTimeout: session,
		Instance: sdk.Instance{ID: "partitioned", Addr: "127.0.0.1:1"},
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	conf := sdk.Bind[ordersConf](cl, "orders.yaml")
	registered := func(want int64) func() error {
		return func() error {
			rev, ok, err := instanceOf(api, "partitioned")
			switch {
			case err != nil:
				return err
			case !ok:
				return fmt.Errorf("not registered")
			case rev != want:
				return fmt.Errorf("registered with revision %d, want %d", rev, want)
			}
			return nil
		}
	}
	waitFor(t, 15*time.Second, "registration before the partition", registered(1))

	front.Blackhole()
	partitioned := time.Now()
	waitFor(t, 20*time.Second, "ZooKeeper expires the partitioned session", func() error {
		_, ok, err := instanceOf(api, "partitioned")
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("still registered after %v", time.Since(partitioned).Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("registration gone %v after the partition began (session timeout %v)", time.Since(partitioned).Round(10*time.Millisecond), session)
	api.must(t, http.StatusOK, "PUT", "/v1/services/orders/files/orders.yaml", []byte("greeting: during-1\n"))
	api.must(t, http.StatusOK, "PUT", "/v1/services/orders/files/orders.yaml", []byte("greeting: during-2\n"))
	time.Sleep(session) // stay partitioned past the session timeout once more
	if got := conf.Load().Greeting; got != "before" {
		t.Fatalf("a partitioned SDK applied %q: the partition leaks", got)
	}

	front.Heal()
	healed := time.Now()
	waitGreeting(t, "SDK after heal", conf, "during-2")
	waitFor(t, 20*time.Second, "registration rebuilt after heal", registered(3))
	t.Logf("converged and registered again within %v of the heal", time.Since(healed).Round(10*time.Millisecond))

	api.must(t, http.StatusOK, "PUT", "/v1/services/orders/files/orders.yaml", []byte("greeting: after\n"))
	waitGreeting(t, "SDK's re-armed watch", conf, "after")
	waitFor(t, 15*time.Second, "registration follows the new revision", registered(4))
}
