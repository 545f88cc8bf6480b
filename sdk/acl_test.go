package sdk_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// TestZKDigest: with Sluice's tree behind digest ACLs, an SDK that
// authenticates as the reader identity reads, watches and registers; one
// without credentials cannot open.
func TestZKDigest(t *testing.T) {
	srv := zktest.Start(t)
	const root, writer, reader = "/sluice-acl", "sluice:w-secret", "sdk:r-secret"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := zkstore.Open(ctx, zkstore.Config{Servers: srv.Servers(), Root: root, Digest: writer, ReadOnlyDigest: reader, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	ref := configsvc.Service("orders")
	mustCreate(t, pub, ref)
	mustPublish(t, pub, ref, map[string]string{"a.txt": "1"})

	cfg := sdk.Config{Service: "orders", ZooKeeper: srv.Servers(), ZKRoot: root, ZKDigest: reader,
		Instance: sdk.Instance{ID: "orders-1", Addr: "127.0.0.1:9001"}, Logger: testLogger(t)}
	c := mustOpen(t, cfg)
	if b, ok := c.File("a.txt"); !ok || string(b) != "1" {
		t.Fatalf("a.txt = %q, %v", b, ok)
	}
	mustPublish(t, pub, ref, map[string]string{"a.txt": "2"})
	testkit.EventuallyTrue(t, 5*time.Second, "revision 2 reaches the reader", func() bool { return c.Revision() == 2 })
	testkit.EventuallyTrue(t, 5*time.Second, "the instance registers", func() bool {
		in, ok := instance(pub, "orders", "orders-1")
		return ok && in.Revision == 2
	})

	anon := cfg
	anon.ZKDigest, anon.NoRegister, anon.OpenTimeout = "", true, 2*time.Second
	octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ocancel()
	if c2, err := sdk.Open(octx, anon); err == nil {
		c2.Close()
		t.Fatal("an SDK without credentials opened a digest-protected tree")
	}
}

// TestZKInstanceDigest: with the server in per-service mode, an SDK that
// holds the reader and its service's own identity reads and registers; one
// holding another service's identity reads but cannot register.
func TestZKInstanceDigest(t *testing.T) {
	srv := zktest.Start(t)
	const root, writer, reader = "/sluice-acl", "sluice:w-secret", "sdk:r-secret"
	const ordersID, paymentsID = "sdk-orders:o-secret", "sdk-payments:p-secret"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := zkstore.Open(ctx, zkstore.Config{Servers: srv.Servers(), Root: root, Digest: writer, ReadOnlyDigest: reader,
		ServiceDigests: map[string]string{"orders": ordersID, "payments": paymentsID}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	for _, svc := range []string{"orders", "payments"} {
		ref := configsvc.Service(svc)
		mustCreate(t, pub, ref)
		mustPublish(t, pub, ref, map[string]string{"a.txt": "1"})
	}
	open := func(svc, id, instanceDigest string) *sdk.Client {
		return mustOpen(t, sdk.Config{Service: svc, ZooKeeper: srv.Servers(), ZKRoot: root, ZKDigest: reader, ZKInstanceDigest: instanceDigest,
			Instance: sdk.Instance{ID: id, Addr: "127.0.0.1:9001"}, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: testLogger(t)})
	}
	open("orders", "orders-1", ordersID)
	testkit.EventuallyTrue(t, 5*time.Second, "orders' instance registers", func() bool { _, ok := instance(pub, "orders", "orders-1"); return ok })
	wrong := open("payments", "payments-1", ordersID) // payments' process, handed orders' identity
	if b, ok := wrong.File("a.txt"); !ok || string(b) != "1" {
		t.Fatalf("a.txt = %q, %v; the reader still reads", b, ok)
	}
	time.Sleep(time.Second)
	if _, ok := instance(pub, "payments", "payments-1"); ok {
		t.Fatal("an SDK registered a payments instance with orders' identity")
	}
}
