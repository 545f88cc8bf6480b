package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/rollout"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// runDriver runs a rollout driver on st (real time, checking every 50 ms)
// until the test ends. As the server does, it drives through a
// ValidatingStore: a promote is validated as a publish, on main's head.
func runDriver(t *testing.T, st configsvc.Store) {
	t.Helper()
	d, err := rollout.New(rollout.Config{Store: configsvc.Validating(st, format.Validator{}), Interval: 50 * time.Millisecond, ScanInterval: 100 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("driver: %v", err)
		}
	})
}

// startRollout starts a rollout of gray id with the steps ("percent:bake").
func startRollout(t *testing.T, st configsvc.Store, ref configsvc.Ref, id string, steps ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spec := configsvc.Rollout{MaxRejected: 0, MaxErrorRate: 0.02, ApplyTimeout: configsvc.Duration(20 * time.Second)}
	for _, s := range steps {
		pct, bake, _ := strings.Cut(s, ":")
		var p float64
		if _, err := fmt.Sscan(pct, &p); err != nil {
			t.Fatal(err)
		}
		d, err := time.ParseDuration(bake)
		if err != nil {
			t.Fatal(err)
		}
		spec.Steps = append(spec.Steps, configsvc.RolloutStep{Percent: p, Bake: configsvc.Duration(d)})
	}
	g, err := st.Gray(ctx, ref, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateGray(ctx, ref, id, g.Version, func(x *configsvc.Gray) error {
		return configsvc.StartRollout(x, spec, time.Now(), "started by test")
	}); err != nil {
		t.Fatalf("start rollout: %v", err)
	}
}

// endedGray waits until gray id ended and returns it.
func endedGray(t *testing.T, st configsvc.Store, ref configsvc.Ref, id string) configsvc.Gray {
	t.Helper()
	var g configsvc.Gray
	testkit.Eventually(t, 30*time.Second, "gray "+id+" ended by the driver", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if g, err = st.Gray(ctx, ref, id); err != nil {
			return err
		}
		if g.State == configsvc.GrayActive {
			st := g.Rollout.State
			return fmt.Errorf("still active: step %d %s (%s)", st.Step+1, st.State, st.Reason)
		}
		return nil
	})
	return g
}

// TestGrayRolloutPromotedOnceClientsApplied: the rollout driver moves a
// gray through 50 % and 100 % while real SDK clients follow it; it bakes
// each step only once the clients of the cohort reported the gray applied,
// and promotes it after the last. Every client ends on the promoted main
// revision with the gray's content.
func TestGrayRolloutPromotedOnceClientsApplied(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			var clients []*sdk.Client
			for i := range 3 {
				c := mustOpen(t, e.config(t, "orders", fmt.Sprintf("orders-%d", i)))
				clients = append(clients, c)
			}
			for i := range clients {
				testkit.EventuallyTrue(t, 10*time.Second, "registered", func() bool { _, ok := instance(e.pub, "orders", fmt.Sprintf("orders-%d", i)); return ok })
			}
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{}, putChange("db.yaml", grayDB))
			runDriver(t, e.pub)
			startRollout(t, e.pub, svc, g.ID, "50:300ms", "100:300ms")
			ended := endedGray(t, e.pub, svc, g.ID)
			if ended.State != configsvc.GrayPromoted || ended.Rollout.State.State != configsvc.RolloutPromoted {
				t.Fatalf("gray %s, rollout %s (%s); want promoted", ended.State, ended.Rollout.State.State, ended.Rollout.State.Reason)
			}
			if !strings.Contains(ended.Rollout.State.Reason, "baked clean") {
				t.Fatalf("promote reason %q", ended.Rollout.State.Reason)
			}
			for i, c := range clients {
				testkit.EventuallyTrue(t, 10*time.Second, fmt.Sprintf("client %d on the promoted revision", i), func() bool {
					return c.Revision() == ended.EndedRevision && fileIs(c, "db.yaml", grayDB) && len(c.Grays()) == 0
				})
			}
		})
	}
}

// TestGrayRolloutAbortedBySDKRejection: the clients' binding refuses the
// gray's content; their reports fail the acks gate and the driver
// abandons the gray, naming the instances; the clients stay on main.
func TestGrayRolloutAbortedBySDKRejection(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			var binds []*sdk.Binding[DBConfig]
			var clients []*sdk.Client
			for i := range 2 {
				c := mustOpen(t, e.config(t, "orders", fmt.Sprintf("orders-%d", i)))
				clients = append(clients, c)
				binds = append(binds, sdk.Bind[DBConfig](c, "db.yaml"))
			}
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{}, putChange("db.yaml", "host: gray\nport: 0\n"))
			runDriver(t, e.pub)
			startRollout(t, e.pub, svc, g.ID, "100:5s")
			ended := endedGray(t, e.pub, svc, g.ID)
			r := ended.Rollout.State
			if ended.State != configsvc.GrayAbandoned || r.State != configsvc.RolloutAborted || r.Failed == nil || r.Failed.Gate != configsvc.GateAcks {
				t.Fatalf("gray %s, rollout %s, failed %+v (%s); want abandoned by the acks gate", ended.State, r.State, r.Failed, r.Reason)
			}
			if len(r.Failed.Instances) == 0 || !slices.ContainsFunc(r.Failed.Instances, func(id string) bool { return strings.HasPrefix(id, "orders-") }) {
				t.Fatalf("failed instances %v", r.Failed.Instances)
			}
			if !strings.Contains(r.Reason, "outside 1-65535") {
				t.Fatalf("abort reason %q, want the SDK's rejection", r.Reason)
			}
			for i, c := range clients {
				testkit.EventuallyTrue(t, 10*time.Second, fmt.Sprintf("client %d back on main", i), func() bool {
					return len(c.Grays()) == 0 && binds[i].Err() == nil && binds[i].Load() == (DBConfig{"main", 1}) && c.Revision() == 1
				})
			}
		})
	}
}
