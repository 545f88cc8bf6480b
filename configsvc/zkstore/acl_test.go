package zkstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
)

// TestAttackSDKCredentialTouchesAnotherService: in per-service mode
// (Config.ServiceDigests) a service's SDK credential — the shared reader
// plus that service's own identity, all a ZooKeeper-direct SDK holds — can
// register its own instances but cannot create, change or delete another
// service's, whoever registered those; the reader alone registers nothing.
func TestAttackSDKCredentialTouchesAnotherService(t *testing.T) {
	srv := shared(t)
	const root = "/acl-per-service"
	const writer, reader = "sluice:w-secret", "sdk:r-secret"
	const ordersID, paymentsID = "sdk-orders:o-secret", "sdk-payments:p-secret"
	server := mustOpen(t, srv.Servers(), func(c *zkstore.Config) {
		c.Root, c.Digest, c.ReadOnlyDigest = root, writer, reader
		c.ServiceDigests = map[string]string{"orders": ordersID, "payments": paymentsID}
	})
	ctx := testCtx(t)
	for _, svc := range []string{"orders", "payments"} {
		if err := server.Create(ctx, configsvc.Service(svc)); err != nil {
			t.Fatal(err)
		}
	}
	sdkStore := func(instanceID string) *zkstore.Store {
		return mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root, c.Digest, c.InstanceDigest = root, reader, instanceID })
	}
	orders, payments := sdkStore(ordersID), sdkStore(paymentsID)

	// Each SDK registers its own instances; the server registers one of
	// each service too (an instance registered through the admin API).
	for _, r := range []struct {
		st   *zkstore.Store
		inst configsvc.Instance
	}{
		{orders, instance("orders", "o-1", 1)},
		{payments, instance("payments", "p-1", 1)},
		{server, instance("orders", "o-srv", 1)},
		{server, instance("payments", "p-srv", 1)},
	} {
		l, err := r.st.Register(ctx, r.inst)
		if err != nil {
			t.Fatalf("Register %s/%s: %v", r.inst.Service, r.inst.ID, err)
		}
		t.Cleanup(func() { l.Close() })
	}
	// The orders SDK asks its store to register a payments instance.
	if _, err := orders.Register(ctx, instance("payments", "p-fake", 1)); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("orders' SDK registering a payments instance = %v, want permission denied", err)
	}

	// The same credential on a raw client, doing what the store would not.
	attacker := rawConn(t, srv.Servers(), reader)
	if err := attacker.AddAuth("digest", []byte(ordersID)); err != nil {
		t.Fatal(err)
	}
	pay := root + "/instances/payments"
	for _, tc := range []struct {
		name string
		try  func() error
	}{
		{"CreateUnderPayments", func() error {
			_, err := attacker.Create(pay+"/p-fake", []byte(`{"addr":"10.9.9.9:80"}`), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
			return err
		}},
		{"SetSDKPaymentsInstance", func() error { _, err := attacker.Set(pay+"/p-1", []byte(`{"addr":"10.9.9.9:80"}`), -1); return err }},
		{"DeleteSDKPaymentsInstance", func() error { return attacker.Delete(pay+"/p-1", -1) }},
		{"SetServerPaymentsInstance", func() error { _, err := attacker.Set(pay+"/p-srv", []byte(`{}`), -1); return err }},
		{"DeleteServerPaymentsInstance", func() error { return attacker.Delete(pay+"/p-srv", -1) }},
		{"SetACLOfPaymentsParent", func() error { _, err := attacker.SetACL(pay, zk.WorldACL(zk.PermAll), -1); return err }},
		{"SetACLOfPaymentsInstance", func() error { _, err := attacker.SetACL(pay+"/p-1", zk.WorldACL(zk.PermAll), -1); return err }},
		{"SetServerOrdersInstance", func() error { _, err := attacker.Set(root+"/instances/orders/o-srv", []byte(`{}`), -1); return err }},
		{"CreateNewService", func() error {
			_, err := attacker.Create(root+"/instances/newsvc", nil, 0, zk.WorldACL(zk.PermAll))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.try(); !errors.Is(err, zk.ErrNoAuth) {
				t.Fatalf("%s with orders' SDK credential = %v, want ErrNoAuth", tc.name, err)
			}
		})
	}
	// The reader alone (a credential without a service identity) registers
	// nothing anywhere.
	readerOnly := rawConn(t, srv.Servers(), reader)
	if _, err := readerOnly.Create(root+"/instances/orders/r-1", []byte(`{}`), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("the reader alone creating an instance = %v, want ErrNoAuth", err)
	}
	// Nothing changed: the server still sees every instance as registered.
	for svc, want := range map[string][]string{"orders": {"o-1", "o-srv"}, "payments": {"p-1", "p-srv"}} {
		list, err := server.Instances(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, in := range list {
			got = append(got, in.ID)
			if in.Addr != "127.0.0.1:1" {
				t.Fatalf("instance %s/%s has address %q", svc, in.ID, in.Addr)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Instances(%s) = %v, want %v", svc, got, want)
		}
	}
	// An SDK's own instance node: its identity and the writer have all
	// permissions, the reader and other identities read only.
	acl, _, err := attacker.GetACL(root + "/instances/orders/o-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range acl {
		switch {
		case strings.HasPrefix(e.ID, "sdk-orders:"), strings.HasPrefix(e.ID, "sluice:"):
			if e.Perms != zk.PermAll {
				t.Fatalf("o-1 grants %s %d, want all", e.ID, e.Perms)
			}
		default:
			if e.Perms != zk.PermRead {
				t.Fatalf("o-1 grants %s %d, want read only", e.ID, e.Perms)
			}
		}
	}
	// The server still deletes a service with SDK-registered instances.
	if err := server.Delete(ctx, configsvc.Service("payments")); err != nil {
		t.Fatalf("Delete of a service with SDK instances: %v", err)
	}
}

// TestACLModeChangeReachesExistingNodes: a tree made in single-reader mode
// (the reader may do anything under instances/) is brought to per-service
// ACLs when the server opens with ServiceDigests: the reader credential
// alone can no longer register, a service's identity only under its own.
func TestACLModeChangeReachesExistingNodes(t *testing.T) {
	srv := shared(t)
	const root = "/acl-mode-change"
	const writer, reader, ordersID = "sluice:w-secret", "sdk:r-secret", "sdk-orders:o-secret"
	legacy := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root, c.Digest, c.ReadOnlyDigest = root, writer, reader })
	ctx := testCtx(t)
	for _, svc := range []string{"orders", "payments"} {
		if err := legacy.Create(ctx, configsvc.Service(svc)); err != nil {
			t.Fatal(err)
		}
	}
	readerOnly := rawConn(t, srv.Servers(), reader)
	if _, err := readerOnly.Create(root+"/instances/payments/r-1", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermRead)); err != nil {
		t.Fatalf("single-reader mode: the reader registering = %v, want allowed (the weaker mode)", err)
	}
	if err := readerOnly.Delete(root+"/instances/payments/r-1", -1); err != nil {
		t.Fatal(err)
	}
	legacy.Close()

	mustOpen(t, srv.Servers(), func(c *zkstore.Config) {
		c.Root, c.Digest, c.ReadOnlyDigest = root, writer, reader
		c.ServiceDigests = map[string]string{"orders": ordersID}
	})
	if _, err := readerOnly.Create(root+"/instances/payments/r-2", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermRead)); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("per-service mode: the reader alone registering = %v, want ErrNoAuth", err)
	}
	ordersSDK := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root, c.Digest, c.InstanceDigest = root, reader, ordersID })
	l, err := ordersSDK.Register(ctx, instance("orders", "o-1", 1))
	if err != nil {
		t.Fatalf("orders' SDK registering after the mode change: %v", err)
	}
	defer l.Close()
	if _, err := ordersSDK.Register(ctx, instance("payments", "p-1", 1)); err == nil {
		t.Fatal("orders' SDK registered a payments instance after the mode change")
	}
}
