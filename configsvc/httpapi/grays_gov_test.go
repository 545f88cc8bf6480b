package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
)

// Issue 14 for gray releases (issue 13): gray creation and promotion go
// through the publishing plan, so ?dry_run=true answers the validation,
// the diff and who the gray or the promote reaches, and under an approval
// policy both become change requests applied later like a publish.

// targetIDs lists the instance ids of a dry run's targets, sorted.
func targetIDs(d api.DryRun) []string {
	var out []string
	for _, t := range d.Targets {
		for _, in := range t.Instances {
			out = append(out, in.ID)
		}
	}
	slices.Sort(out)
	return out
}

// cohortIDs lists the ids of a gray view's cohort, sorted.
func cohortIDs(v api.GrayView) []string {
	var out []string
	for _, m := range v.Cohort {
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return out
}

// grayInstances registers pay-api-1 (zone a) and pay-api-2 and pay-api-3
// (zone b) through agent, and returns a func that reports, for each id
// given, gray id applied at version 1.
func grayInstances(ctx context.Context, t *testing.T, agent *api.Client) func(gray string, ids ...string) {
	t.Helper()
	insts := map[string]configsvc.Instance{}
	leases := map[string]configsvc.Lease{}
	for i, zone := range []string{"a", "b", "b"} {
		in := configsvc.Instance{Service: "pay-api", ID: "pay-api-" + string(rune('1'+i)), Addr: "127.0.0.1:9", Revision: 1,
			Status: configsvc.StatusApplied, Labels: map[string]string{"zone": zone}}
		l, err := agent.Register(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		insts[in.ID], leases[in.ID] = in, l
	}
	return func(gray string, ids ...string) {
		t.Helper()
		for _, id := range ids {
			in := insts[id]
			if in.Grays == nil {
				in.Grays = map[string]configsvc.GrayStatus{}
			}
			in.Grays[gray] = configsvc.GrayStatus{Status: configsvc.GrayApplied, Version: 1}
			insts[id] = in
			if err := leases[id].Update(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestGrayDryRuns: ?dry_run=true on gray creation and promotion, on both
// stores, writes nothing and answers what a publish's dry run answers:
// the validation (formats and JSON Schemas of main + the gray), the diff
// against main, and who it reaches: for a creation the live instances
// the selector matches, with the id drawn for it, which a creation given
// that id keeps (its cohort is the one shown); for a promote every live
// instance. A file another gray holds and a promote that is not ready
// are refused as the write would be.
func TestGrayDryRuns(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		alice := e.client(e.mustToken("editor:pay-*"))
		svc := configsvc.Service("pay-api")
		e.mustService("pay-api", map[string]string{"db.yaml": "host: db\nport: 5432\n", "db.yaml.schema.json": dbSchema, "note.txt": "n"})
		e.mustGroup("pay-common", map[string]string{"c.json": "{}"})
		if _, err := e.client(e.admin).Link(ctx, "pay-api", "pay-common"); err != nil {
			t.Fatal(err)
		}
		report := grayInstances(ctx, t, e.client(e.mustToken("agent:pay-*")))
		zoneB := api.Selector{Labels: []map[string]string{{"zone": "b"}}}

		d, err := alice.DryRunCreateGray(ctx, svc, api.GrayRequest{Name: "port", Selector: zoneB,
			Changes: []api.Change{api.PutChange("db.yaml", []byte("host: db\nport: 6432\n")), api.DeleteChange("note.txt")}})
		if err != nil || !d.Valid || d.Operation != approval.OpGrayCreate || configsvc.ValidateGrayID(d.Gray) != nil || d.BaseRevision != 1 ||
			!slices.Equal(targetIDs(d), []string{"pay-api-2", "pay-api-3"}) || d.Instances != 2 || len(d.Files) != 2 ||
			!strings.Contains(d.Files[0].Diff+d.Files[1].Diff, "+port: 6432") || d.ChangeRequest {
			t.Fatalf("dry run of a gray: %+v, %v", d, err)
		}
		d, err = alice.DryRunCreateGray(ctx, svc, api.GrayRequest{Selector: zoneB, Changes: []api.Change{api.PutChange("db.yaml", []byte("host: db\nport: 99999\n"))}})
		if err != nil || d.Valid || len(d.Violations) != 1 || d.Violations[0].Keyword != "maximum" || d.Violations[0].Line != 2 {
			t.Fatalf("dry run of a gray the schema refuses: %+v, %v", d, err)
		}
		if grays, err := e.store.Grays(ctx, svc); err != nil || len(grays) != 0 {
			t.Fatalf("dry runs created grays: %+v, %v", grays, err)
		}

		// A percent cohort depends on the gray's id: the dry run draws it,
		// and the gray created under it reaches exactly the instances shown.
		// pay-api-1 by id: the cohort is never empty, whatever the draw.
		sel := api.Selector{Percent: 50, Instances: []string{"pay-api-1"}}
		half := api.GrayRequest{Selector: sel, Changes: []api.Change{api.PutChange("db.yaml", []byte("host: db2\nport: 5432\n"))}}
		d, err = alice.DryRunCreateGray(ctx, svc, half)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, id := range []string{"pay-api-1", "pay-api-2", "pay-api-3"} {
			if sel.Matches(d.Gray, configsvc.Instance{ID: id}) {
				want = append(want, id)
			}
		}
		if !slices.Equal(targetIDs(d), want) {
			t.Fatalf("dry run cohort of 50 %% under %s = %v, want %v", d.Gray, targetIDs(d), want)
		}
		half.ID = d.Gray
		g, err := alice.CreateGray(ctx, svc, half)
		if err != nil || g.ID != d.Gray {
			t.Fatalf("CreateGray with the dry run's id = %+v, %v", g, err)
		}
		if v, err := alice.GrayView(ctx, svc, g.ID); err != nil || !slices.Equal(cohortIDs(v), want) {
			t.Fatalf("cohort of the created gray = %v, %v; want the dry run's %v", cohortIDs(v), err, want)
		}
		if _, err := alice.CreateGray(ctx, svc, half); !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "already") {
			t.Fatalf("a second gray under the same id: %v", err)
		}
		// db.yaml is held now: the dry run is refused as the creation is.
		_, err = alice.DryRunCreateGray(ctx, svc, api.GrayRequest{Selector: zoneB, Changes: []api.Change{api.PutChange("db.yaml", []byte("host: x\nport: 1\n"))}})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Details["gray"] != g.ID {
			t.Fatalf("dry run on a held file: %v", err)
		}
		// A group's gray reaches the matching instances of the services linking it.
		d, err = e.client(e.admin).DryRunCreateGray(ctx, configsvc.Group("pay-common"), api.GrayRequest{Selector: api.Selector{Instances: []string{"pay-api-3"}},
			Changes: []api.Change{api.PutChange("c.json", []byte(`{"a":1}`))}})
		if err != nil || len(d.Targets) != 1 || d.Targets[0].Service != "pay-api" || !slices.Equal(targetIDs(d), []string{"pay-api-3"}) {
			t.Fatalf("dry run of a group's gray: %+v, %v", d, err)
		}

		// Promote: refused while not ready, as the promote is; forced or
		// ready, what main would get and every instance it reaches.
		if _, err := alice.DryRunPromoteGray(ctx, svc, g.ID, api.PromoteRequest{}); api.NotReadyInstances(err) == nil {
			t.Fatalf("dry run of a promote not ready: %v", err)
		}
		d, err = alice.DryRunPromoteGray(ctx, svc, g.ID, api.PromoteRequest{Force: true, Message: "go"})
		if err != nil || !d.Valid || d.Operation != approval.OpGrayPromote || d.Gray != g.ID || d.BaseRevision != 1 || len(d.Files) != 1 ||
			!strings.Contains(d.Files[0].Diff, "+host: db2") || !slices.Equal(targetIDs(d), []string{"pay-api-1", "pay-api-2", "pay-api-3"}) {
			t.Fatalf("dry run of a forced promote: %+v, %v", d, err)
		}
		report(g.ID, want...)
		if d, err := alice.DryRunPromoteGray(ctx, svc, g.ID, api.PromoteRequest{}); err != nil || !d.Valid {
			t.Fatalf("dry run of a ready promote: %+v, %v", d, err)
		}
		if h, _ := e.store.Head(ctx, svc); h.Revision != 1 || len(h.Grays) != 1 {
			t.Fatalf("dry runs moved main to %d or ended the gray (%d active)", h.Revision, len(h.Grays))
		}
		if _, err := alice.PromoteGray(ctx, svc, g.ID, api.PromoteRequest{}); err != nil {
			t.Fatalf("promote after the dry runs: %v", err)
		}
	})
}

// TestGrayChangeRequests: under an approval policy, on both stores, a
// gray creation and a gray promotion become change requests (202), whose
// dry run shows the cohort or the diff; approved by a second person and
// applied by the author, they create the gray (under the id the change
// request drew, so the cohort is the one reviewed) and promote it (after
// the cohort applied it; once main moved, only after a rebase). An
// admin's emergency creates at once and is listed for review; a rollout,
// whose last step promotes without an approval, is refused but for an
// admin's emergency.
func TestGrayChangeRequests(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		admin := e.client(e.admin)
		alice := e.client(e.mustToken("editor:pay-*"))
		bob := e.client(e.mustToken("editor:pay-*"))
		svc := configsvc.Service("pay-api")
		e.mustService("pay-api", map[string]string{"db.yaml": "host: db\nport: 5432\n", "db.yaml.schema.json": dbSchema, "note.txt": "n"})
		report := grayInstances(ctx, t, e.client(e.mustToken("agent:pay-*")))
		if _, err := admin.PutPolicy(ctx, api.Policy{Name: "pay", Pattern: "pay-*", Approvals: 1}); err != nil {
			t.Fatal(err)
		}
		req := api.GrayRequest{Name: "port", Message: "try 6432", Selector: api.Selector{Percent: 50, Instances: []string{"pay-api-1"}},
			Changes: []api.Change{api.PutChange("db.yaml", []byte("host: db\nport: 6432\n"))}}

		if d, err := alice.DryRunCreateGray(ctx, svc, req); err != nil || !d.ChangeRequest || d.Policy == nil {
			t.Fatalf("dry run under a policy: %+v, %v", d, err)
		}
		_, err := alice.CreateGray(ctx, svc, req)
		var p *api.Pending
		if !errors.As(err, &p) || p.Change.Operation != approval.OpGrayCreate || p.Change.State != approval.StateOpen || p.Change.DryRun == nil {
			t.Fatalf("gray creation under a policy: %v", err)
		}
		var params struct{ Gray string }
		if err := json.Unmarshal(p.Change.Params, &params); err != nil || params.Gray != p.Change.DryRun.Gray {
			t.Fatalf("change request params %s (%v); want the gray id its dry run drew (%s)", p.Change.Params, err, p.Change.DryRun.Gray)
		}
		reviewed := targetIDs(*p.Change.DryRun)
		if grays, _ := e.store.Grays(ctx, svc); len(grays) != 0 {
			t.Fatalf("a change request created a gray: %+v", grays)
		}
		if cr, err := bob.Change(ctx, svc, p.Change.ID); err != nil || cr.DryRun == nil || !slices.Equal(targetIDs(*cr.DryRun), reviewed) {
			t.Fatalf("the change request's dry run now: %+v, %v; want the cohort %v", cr.DryRun, err, reviewed)
		}
		if _, err := alice.ApplyChange(ctx, svc, p.Change.ID); !errors.Is(err, configsvc.ErrConflict) {
			t.Fatalf("apply before the approval: %v", err)
		}
		if _, err := bob.Approve(ctx, svc, p.Change.ID, "ok"); err != nil {
			t.Fatal(err)
		}
		a, err := alice.ApplyChange(ctx, svc, p.Change.ID)
		if err != nil || a.Gray == nil || a.Gray.ID != params.Gray || a.Gray.State != configsvc.GrayActive || a.Revision.Number != 0 {
			t.Fatalf("apply the creation: %+v, %v", a, err)
		}
		g := *a.Gray
		if v, err := alice.GrayView(ctx, svc, g.ID); err != nil || v.Name != "port" || v.Selector.Percent != 50 || !slices.Equal(cohortIDs(v), reviewed) {
			t.Fatalf("the gray applied: %+v, %v; want the reviewed cohort %v", v, err, reviewed)
		}
		if cr, _ := alice.Change(ctx, svc, p.Change.ID); cr.State != approval.StateApplied {
			t.Fatalf("change request after its apply: %s", cr.State)
		}

		// Promote: a change request even while not ready; the apply waits
		// for the cohort (or force).
		_, err = alice.PromoteGray(ctx, svc, g.ID, api.PromoteRequest{Message: "6432 for all"})
		if !errors.As(err, &p) || p.Change.Operation != approval.OpGrayPromote || p.Change.BaseRevision != 1 {
			t.Fatalf("promote under a policy: %v", err)
		}
		if cr, err := bob.Change(ctx, svc, p.Change.ID); err != nil || cr.DryRun == nil || cr.DryRun.Gray != g.ID || len(cr.DryRun.Files) != 1 ||
			!strings.Contains(cr.DryRun.Files[0].Diff, "+port: 6432") || cr.DryRun.Instances != 3 {
			t.Fatalf("the promote's change request: %+v, %v", cr.DryRun, err)
		}
		if _, err := bob.Approve(ctx, svc, p.Change.ID, "ok"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.ApplyChange(ctx, svc, p.Change.ID); api.NotReadyInstances(err) == nil {
			t.Fatalf("apply a promote the cohort has not applied: %v", err)
		}
		report(g.ID, reviewed...)
		// Main moves: the approved promote no longer applies; rebased (the
		// approvals start over), approved and applied, it publishes on the
		// new head.
		if _, err := admin.PutFile(ctx, svc, "note.txt", []byte("m"), api.WithEmergency("INC-7")); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.ApplyChange(ctx, svc, p.Change.ID); !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "rebase") {
			t.Fatalf("apply once main moved: %v", err)
		}
		if _, err := alice.Rebase(ctx, svc, p.Change.ID, api.RebaseRequest{Changes: []api.Change{api.PutChange("x.txt", []byte("x"))}}); !errors.Is(err, configsvc.ErrInvalid) {
			t.Fatalf("rebase a promote with other changes: %v", err)
		}
		if cr, err := alice.Rebase(ctx, svc, p.Change.ID, api.RebaseRequest{}); err != nil || cr.BaseRevision != 2 {
			t.Fatalf("rebase: %+v, %v", cr, err)
		}
		if _, err := bob.Approve(ctx, svc, p.Change.ID, "still ok"); err != nil {
			t.Fatal(err)
		}
		a, err = alice.ApplyChange(ctx, svc, p.Change.ID)
		if err != nil || a.Revision.Number != 3 || a.Gray == nil || a.Gray.State != configsvc.GrayPromoted || a.Gray.EndedRevision != 3 {
			t.Fatalf("apply the rebased promote: %+v, %v", a, err)
		}
		if b, _, err := e.store.File(ctx, svc, "db.yaml", 3); err != nil || string(b) != "host: db\nport: 6432\n" {
			t.Fatalf("db.yaml at 3 = %q, %v", b, err)
		}
		if b, _, _ := e.store.File(ctx, svc, "note.txt", 3); string(b) != "m" {
			t.Fatalf("note.txt at 3 = %q; the promote must keep main's change", b)
		}

		// An admin's emergency creates at once, listed for review; a
		// rollout is refused under the policy but for an emergency.
		g2, err := admin.CreateGray(ctx, svc, api.GrayRequest{Selector: api.Selector{Percent: 10},
			Changes: []api.Change{api.PutChange("note.txt", []byte("g"))}}, api.WithEmergency("INC-8"))
		if err != nil || g2.State != configsvc.GrayActive {
			t.Fatalf("emergency gray: %+v, %v", g2, err)
		}
		ems, err := admin.Emergencies(ctx, false)
		if err != nil || !slices.ContainsFunc(ems, func(em api.Emergency) bool { return em.Operation == approval.OpGrayCreate && em.Reason == "INC-8" }) {
			t.Fatalf("emergencies %+v, %v; want the gray creation", ems, err)
		}
		steps := api.RolloutRequest{Steps: []api.RolloutStep{{Percent: 50, Bake: configsvc.Duration(60e9)}, {Percent: 100, Bake: configsvc.Duration(60e9)}}}
		if _, err := alice.StartRollout(ctx, svc, g2.ID, steps); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "last step") {
			t.Fatalf("rollout under a policy: %v", err)
		}
		if _, err := admin.StartRollout(ctx, svc, g2.ID, steps, api.WithEmergency("INC-9")); err != nil {
			t.Fatalf("rollout as an emergency: %v", err)
		}
	})
}
