package clustertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// instanceOf returns the registration of id in service orders as the
// server of cl sees it, or ok false when it is not registered.
func instanceOf(cl *api.Client, id string) (rev int64, ok bool, err error) {
	ctx, cancel := callCtx()
	defer cancel()
	list, err := cl.Instances(ctx, "orders")
	if err != nil {
		return 0, false, err
	}
	for _, in := range list {
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
	srv := c.client(c.startServer("server"))
	mustCreate(t, srv, "orders")
	mustPut(t, srv, "orders", "orders.yaml", "greeting: before\n")

	front := zktest.StartProxy(t, zk.Addr())
	const session = 2 * time.Second
	cl := openSDK(t, sdk.Config{ZooKeeper: []string{front.Addr()}, ZKSessionTimeout: session,
		Instance: sdk.Instance{ID: "partitioned", Addr: "127.0.0.1:1"},
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	conf := sdk.Bind[ordersConf](cl, "orders.yaml")
	registered := func(want int64) func() error {
		return func() error {
			rev, ok, err := instanceOf(srv, "partitioned")
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
	testkit.Eventually(t, 15*time.Second, "registration before the partition", registered(1))

	front.Blackhole()
	partitioned := time.Now()
	testkit.Eventually(t, 20*time.Second, "ZooKeeper expires the partitioned session", func() error {
		_, ok, err := instanceOf(srv, "partitioned")
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("still registered after %v", time.Since(partitioned).Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("registration gone %v after the partition began (session timeout %v)", time.Since(partitioned).Round(10*time.Millisecond), session)
	mustPut(t, srv, "orders", "orders.yaml", "greeting: during-1\n")
	mustPut(t, srv, "orders", "orders.yaml", "greeting: during-2\n")
	time.Sleep(session) // stay partitioned past the session timeout once more
	if got := conf.Load().Greeting; got != "before" {
		t.Fatalf("a partitioned SDK applied %q: the partition leaks", got)
	}

	front.Heal()
	healed := time.Now()
	waitGreeting(t, "SDK after heal", conf, "during-2")
	testkit.Eventually(t, 20*time.Second, "registration rebuilt after heal", registered(3))
	t.Logf("converged and registered again within %v of the heal", time.Since(healed).Round(10*time.Millisecond))

	mustPut(t, srv, "orders", "orders.yaml", "greeting: after\n")
	waitGreeting(t, "SDK's re-armed watch", conf, "after")
	testkit.Eventually(t, 15*time.Second, "registration follows the new revision", registered(4))
}
