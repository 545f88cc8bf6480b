package rollout_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/rollout"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestFaultRolloutDriverSessionDiesAnotherContinues runs two servers'
// drivers on one ZooKeeper. The first leads and moves a rollout to its
// second step; then its network goes silent until its session expires.
// The second driver takes over within a few seconds and continues from
// the recorded step (never redoing the first two), through the last bake
// to the promote.
func TestFaultRolloutDriverSessionDiesAnotherContinues(t *testing.T) {
	zk := zktest.Start(t)
	proxy := zktest.StartProxy(t, zk.Addr())
	const session = 2 * time.Second
	open := func(servers []string) configsvc.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: "/sluice-rollout", SessionTimeout: session, OpTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	rawA, rawB := open([]string{proxy.Addr()}), open(zk.Servers())
	stA, stB := configsvc.Validating(rawA, format.Validator{}), configsvc.Validating(rawB, format.Validator{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Service orders with ten instances that apply every gray (registered
	// through B, which keeps its session).
	ref := configsvc.Service("orders")
	if err := stB.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := stB.Publish(ctx, ref, configsvc.Changeset{Changes: []configsvc.Change{{File: "a.yaml", Content: []byte("pool: 10\n")}}}); err != nil {
		t.Fatal(err)
	}
	g, err := stB.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{{File: "a.yaml", Content: []byte("pool: 50\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l, err := stB.Register(ctx, configsvc.Instance{Service: "orders", ID: fmt.Sprintf("orders-%d", i), Status: configsvc.StatusApplied, Revision: 1,
			Grays: map[string]configsvc.GrayStatus{g.ID: {Status: configsvc.GrayApplied, Version: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
	}

	auditA, auditB := &audits{}, &audits{}
	driver := func(st configsvc.Store, leader configsvc.Leader, a *audits) *rollout.Driver {
		d, err := rollout.New(rollout.Config{Store: st, Leader: leader, Interval: 50 * time.Millisecond, ScanInterval: 200 * time.Millisecond, Audit: a.record})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	dA, dB := driver(stA, rawA.(configsvc.Leader), auditA), driver(stB, rawB.(configsvc.Leader), auditB)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- dA.Run(runCtx) }()
	testkit.EventuallyTrue(t, 10*time.Second, "A leads", dA.Leading)
	go func() { done <- dB.Run(runCtx) }()
	defer func() {
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}()

	if _, err := stB.UpdateGray(ctx, ref, g.ID, g.Version, func(x *configsvc.Gray) error {
		return configsvc.StartRollout(x, configsvc.Rollout{MaxErrorRate: 0.02, Steps: []configsvc.RolloutStep{
			{Percent: 10, Bake: configsvc.Duration(200 * time.Millisecond)},
			{Percent: 50, Bake: configsvc.Duration(4 * time.Second)},
			{Percent: 100, Bake: configsvc.Duration(200 * time.Millisecond)}}}, time.Now(), "started by test")
	}); err != nil {
		t.Fatal(err)
	}
	state := func() configsvc.RolloutState {
		got, err := stB.Gray(ctx, ref, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Rollout.State
	}
	testkit.Eventually(t, 20*time.Second, "A drives the rollout to step 2's bake", func() error {
		if st := state(); st.Step != 1 || st.State != configsvc.RolloutBaking {
			return fmt.Errorf("step %d %s", st.Step+1, st.State)
		}
		return nil
	})
	if dB.Leading() {
		t.Fatal("B leads while A does")
	}

	// A's network goes silent: its session expires; B takes over.
	proxy.Blackhole()
	cut := time.Now()
	testkit.EventuallyTrue(t, 5*session, "B leads", dB.Leading)
	t.Logf("B took over %v after A's network went silent (session timeout %v)", time.Since(cut).Round(time.Millisecond), session)
	if dA.Leading() {
		t.Fatal("A still leads after B took over")
	}
	// A's network comes back: it campaigns again, behind B.
	proxy.Heal()
	testkit.Eventually(t, 30*time.Second, "the rollout promoted", func() error {
		got, err := stB.Gray(ctx, ref, g.ID)
		if err != nil {
			return err
		}
		if got.State != configsvc.GrayPromoted {
			return fmt.Errorf("gray %s, step %d %s", got.State, got.Rollout.State.Step+1, got.Rollout.State.State)
		}
		return nil
	})
	if a := auditA.actions(); !slices.Equal(a, []string{"bake@0", "step@1", "bake@1"}) {
		t.Errorf("A did %v; want the first step and step 2's bake", a)
	}
	if b := auditB.actions(); !slices.Equal(b, []string{"step@2", "bake@2", "promote@2"}) {
		t.Errorf("B did %v; want it to continue from step 2's bake to the promote", b)
	}
	if fc, _, err := stB.File(ctx, ref, "a.yaml", 0); err != nil || string(fc) != "pool: 50\n" {
		t.Fatalf("main's a.yaml after the promote: %q, %v", fc, err)
	}
	if dA.Leading() || !dB.Leading() {
		t.Fatalf("after the promote A leads %v, B %v; want B only", dA.Leading(), dB.Leading())
	}
}
