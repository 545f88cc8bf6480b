package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// TestServerDrivesAndResumesRollouts: `sluice server` runs the rollout
// driver. A rollout started through the API moves on by itself; the
// server is stopped in the middle of a bake and started again on the same
// store, and the restarted server finishes the rollout from its recorded
// step. The driver's changes are in the audit log, actor "rollout".
func TestServerDrivesAndResumesRollouts(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", dir}
	rs := startServerMain(t, args, nil)
	_, c := rs.adminClient(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	orders := configsvc.Service("orders")
	if _, _, err := c.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutFile(ctx, orders, "a.yaml", []byte("pool: 10\n")); err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateGray(ctx, orders, api.GrayRequest{Name: "bigger pool", Changes: []api.Change{api.PutChange("a.yaml", []byte("pool: 50\n"))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartRollout(ctx, orders, g.ID, api.RolloutRequest{MaxErrorRate: 0.02, Steps: []api.RolloutStep{
		{Percent: 50, Bake: configsvc.Duration(3 * time.Second)}, {Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
	state := func(c *api.Client) (configsvc.Gray, error) { return c.Gray(ctx, orders, g.ID) }
	testkit.Eventually(t, 20*time.Second, "the first step baking", func() error {
		got, err := state(c)
		if err != nil {
			return err
		}
		if st := got.Rollout.State; st.Step != 0 || st.State != configsvc.RolloutBaking {
			return fmt.Errorf("step %d %s", st.Step+1, st.State)
		}
		return nil
	})
	rs.stop(t)

	rs2 := startServerMain(t, args, nil)
	token, c2 := rs2.adminClient(t, dir)
	testkit.Eventually(t, 30*time.Second, "the rollout promoted by the restarted server", func() error {
		got, err := state(c2)
		if err != nil {
			return err
		}
		if got.State != configsvc.GrayPromoted {
			return fmt.Errorf("gray %s, step %d %s", got.State, got.Rollout.State.Step+1, got.Rollout.State.State)
		}
		return nil
	})
	if fc, err := c2.File(ctx, orders, "a.yaml", 0); err != nil || string(fc.Content) != "pool: 50\n" {
		t.Fatalf("main's a.yaml: %q, %v", fc.Content, err)
	}
	var audit api.AuditList
	code, body := srvGet(t, rs2.url+"/v1/audit?service=orders", token)
	if code != 200 || json.Unmarshal([]byte(body), &audit) != nil {
		t.Fatalf("audit: %d %s", code, body)
	}
	var actions []string
	for _, e := range audit.Entries {
		if e.Actor == "rollout" {
			actions = append(actions, e.Action)
		}
	}
	if got := strings.Join(actions, " "); got != "gray.rollout.promote gray.rollout.bake gray.rollout.step gray.rollout.bake" {
		t.Fatalf("the driver's audit entries, newest first: %s", got)
	}
}
