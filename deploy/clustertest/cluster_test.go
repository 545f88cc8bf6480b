package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// ordersConf is what the tests publish as orders.yaml.
type ordersConf struct {
	Greeting string `yaml:"greeting"`
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(ioDiscard{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

// appliedLog records every revision an SDK client applied, in order.
type appliedLog struct {
	mu   sync.Mutex
	revs []int64
	reco int
}

func (a *appliedLog) RevisionApplied(ref string, rev int64) {
	if ref != "service/orders" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revs = append(a.revs, rev)
}
func (a *appliedLog) RevisionRejected(string, int64)        {}
func (a *appliedLog) HistoryRewritten(string, int64, int64) {}
func (a *appliedLog) CacheWriteFailed(error)                {}
func (a *appliedLog) Reconnect(string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reco++
}

func (a *appliedLog) snapshot() ([]int64, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int64(nil), a.revs...), a.reco
}

// openSDK opens an SDK client for service orders and closes it at cleanup.
func openSDK(t *testing.T, cfg sdk.Config) *sdk.Client {
	t.Helper()
	cfg.Service = "orders"
	cfg.Logger = quietLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sdk.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("sdk.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("sdk Close: %v", err)
		}
	})
	return c
}

func waitGreeting(t *testing.T, name string, b *sdk.Binding[ordersConf], want string) {
	t.Helper()
	testkit.Eventually(t, 15*time.Second, name+" applies the publish", func() error {
		if got := b.Load().Greeting; got != want {
			return fmt.Errorf("greeting %q, want %q", got, want)
		}
		return nil
	})
}

// TestPublishThroughOneServerReachesAll: a publish through server A reaches
// an SDK on server B's event stream and an SDK on ZooKeeper, and server B's
// history, diff and audit show it.
func TestPublishThroughOneServerReachesAll(t *testing.T) {
	ens := startEnsemble(t)
	c := newCluster(t, ens.Servers())
	a, b := c.startServer("server-a"), c.startServer("server-b")
	apiA, apiB := c.client(a), c.client(b)
	mustCreate(t, apiA, "orders")
	mustPut(t, apiA, "orders", "orders.yaml", "greeting: one\n")
	agent := createToken(t, apiB, "orders-agent", access.RoleAgent, "orders")

	viaB := openSDK(t, sdk.Config{Server: b.url, Token: agent, Instance: sdk.Instance{ID: "sse-on-b", Addr: "127.0.0.1:1"}})
	viaZK := openSDK(t, sdk.Config{ZooKeeper: ens.Servers(), Instance: sdk.Instance{ID: "on-zk", Addr: "127.0.0.1:2"}})
	bindB, bindZK := sdk.Bind[ordersConf](viaB, "orders.yaml"), sdk.Bind[ordersConf](viaZK, "orders.yaml")
	waitGreeting(t, "SDK on B", bindB, "one")
	waitGreeting(t, "SDK on ZooKeeper", bindZK, "one")

	if r := mustPut(t, apiA, "orders", "orders.yaml", "greeting: two\n", api.WithMessage("via A")); r.Number != 2 {
		t.Fatalf("publish through A made revision %d, want 2", r.Number)
	}
	waitGreeting(t, "SDK on B's event stream", bindB, "two")
	waitGreeting(t, "SDK on ZooKeeper", bindZK, "two")

	t.Run("history on B", func(t *testing.T) {
		h := history(t, apiB, "orders")
		if len(h) != 2 || h[1].Number != 2 || h[1].Message != "via A" || h[1].Author != "bootstrap-admin" {
			t.Fatalf("B's history = %+v, want revision 2 by bootstrap-admin, message %q", h, "via A")
		}
	})
	t.Run("diff on B", func(t *testing.T) {
		ctx, cancel := callCtx()
		defer cancel()
		d, err := apiB.Diff(ctx, configsvc.Service("orders"), 1, 2)
		if err != nil || len(d.Files) != 1 || !strings.Contains(d.Files[0].Diff, `-greeting: one`) || !strings.Contains(d.Files[0].Diff, `+greeting: two`) {
			t.Fatalf("B's diff 1→2 = %+v, %v", d, err)
		}
	})
	t.Run("audit on B", func(t *testing.T) {
		ctx, cancel := callCtx()
		defer cancel()
		entries, err := apiB.Audit(ctx, access.Query{Service: "orders"})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range entries {
			found = found || (e.Revision == 2 && e.Outcome == access.OutcomeAllowed)
		}
		if !found {
			t.Fatalf("B's audit has no allowed entry for revision 2: %+v", entries)
		}
	})
	t.Run("instances on B", func(t *testing.T) {
		testkit.Eventually(t, 15*time.Second, "both SDKs registered with revision 2", func() error {
			ctx, cancel := callCtx()
			defer cancel()
			list, err := apiB.Instances(ctx, "orders")
			if err != nil {
				return err
			}
			at2 := map[string]bool{}
			for _, in := range list {
				at2[in.ID] = in.Revision == 2
			}
			if !at2["sse-on-b"] || !at2["on-zk"] {
				return fmt.Errorf("instances %+v", list)
			}
			return nil
		})
	})
}
