package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/schema"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// governanceEnvs runs fn on a server over bbolt and one over ZooKeeper,
// each validating formats and JSON Schemas as `sluice server` does, with
// a stub routes diff and a quick stream re-check (for change events).
func governanceEnvs(t *testing.T, fn func(t *testing.T, e *testEnv)) {
	validator := configsvc.Validators(format.Validator{}, schema.NewValidator())
	mod := func(c *Config) {
		c.StreamRecheck = 100 * time.Millisecond
		// The product's default deadline: a 900 KiB change request is
		// written as chunk records, one commit each, which under -race on
		// a loaded 2-core machine outlasts the 2 s of the other tests.
		c.RequestTimeout = DefaultRequestTimeout
		c.RoutesDiff = func(old, new []byte) ([]api.RouteChange, error) {
			return []api.RouteChange{{Route: fmt.Sprintf("%d->%d", len(old), len(new)), Change: api.RouteModified}}, nil
		}
	}
	t.Run("bolt", func(t *testing.T) {
		fn(t, newEnvOn(t, configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), validator), mod))
	})
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		fn(t, newEnvOn(t, configsvc.Validating(mustZK(t, zk, "/sluice-gov"), validator), mod))
	})
}

// client returns an api.Client of the server with token.
func (e *testEnv) client(token string) *api.Client {
	e.t.Helper()
	c, err := api.New(api.Config{Servers: []string{e.http.URL}, Token: token, HTTPClient: e.http.Client()})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

const dbSchema = `{"type":"object","required":["host","port"],"properties":{"host":{"type":"string"},"port":{"type":"integer","maximum":65535}}}`

// TestGovernanceFlow is issue 14's flow through the API on both stores:
// a dry run shows validation, diff and blast radius; a publish under a
// policy becomes a change request; the author may not approve it, a second
// person does, the author applies it (after a rebase once the head moved);
// an admin's emergency change is audited and listed until reviewed.
func TestGovernanceFlow(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		admin := e.client(e.admin)
		alice := e.client(e.mustToken("editor:pay-*"))
		bob := e.client(e.mustToken("editor:pay-*"))
		agent := e.client(e.mustToken("agent:pay-*"))
		svc := configsvc.Service("pay-api")
		e.mustService("pay-api", map[string]string{"db.yaml": "host: db\nport: 5432\n", "db.yaml.schema.json": dbSchema})
		e.mustGroup("pay-common", map[string]string{"c.json": "{}"})
		if _, err := admin.Link(ctx, "pay-api", "pay-common"); err != nil {
			t.Fatal(err)
		}
		lease, err := agent.Register(ctx, api.Instance{Service: "pay-api", ID: "pay-api-1", Addr: "127.0.0.1:9", Revision: 1, Status: configsvc.StatusApplied})
		if err != nil {
			t.Fatal(err)
		}
		defer lease.Close()

		t.Run("DryRun", func(t *testing.T) {
			d, err := alice.DryRunPutFile(ctx, svc, "db.yaml", []byte("host: db\nport: 99999\n"))
			if err != nil {
				t.Fatal(err)
			}
			if d.Valid || len(d.Violations) != 1 || d.Violations[0].Line != 2 || d.Violations[0].Keyword != "maximum" || d.Violations[0].Pointer != "/port" {
				t.Fatalf("dry run of an invalid file: %+v", d)
			}
			d, err = alice.DryRunPutFile(ctx, svc, "db.yaml", []byte("host: db\nport: 6432\n"))
			if err != nil || !d.Valid || len(d.Files) != 1 || !strings.Contains(d.Files[0].Diff, "+port: 6432") || d.Instances != 1 ||
				d.Targets[0].Service != "pay-api" || d.Targets[0].Instances[0].ID != "pay-api-1" || d.ChangeRequest {
				t.Fatalf("dry run: %+v, %v", d, err)
			}
			g, err := admin.DryRunPutFile(ctx, configsvc.Group("pay-common"), "c.json", []byte(`{"a":1}`))
			if err != nil || len(g.Targets) != 1 || g.Targets[0].Service != "pay-api" || g.Instances != 1 {
				t.Fatalf("group dry run: %+v, %v", g, err)
			}
			if h, _ := e.store.Head(ctx, svc); h.Revision != 1 {
				t.Fatalf("dry runs moved the head to %d", h.Revision)
			}
			// The schema refusal of a real publish lists the violations.
			_, err = alice.PutFile(ctx, svc, "db.yaml", []byte("port: 99999\n"))
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != 422 || len(ae.Violations()) != 2 || ae.Details["pointer"] == nil {
				t.Fatalf("invalid publish: %v", err)
			}
		})

		if _, err := admin.PutPolicy(ctx, api.Policy{Name: "pay", Pattern: "pay-*", Approvals: 1, DeclineBlocks: true}); err != nil {
			t.Fatal(err)
		}
		var cr api.ChangeRequest
		t.Run("Submit", func(t *testing.T) {
			d, err := alice.DryRunPublish(ctx, svc, api.PublishRequest{Changes: []api.Change{api.PutChange("db.yaml", []byte("host: db\nport: 6432\n"))}})
			if err != nil || !d.ChangeRequest || d.Policy == nil || d.Policy.Approvals != 1 {
				t.Fatalf("dry run under a policy: %+v %v", d, err)
			}
			_, err = alice.PutFile(ctx, svc, "db.yaml", []byte("host: db\nport: 6432\n"), api.WithMessage("new port"))
			var p *api.Pending
			if !errors.As(err, &p) || !errors.Is(err, api.ErrPending) || p.Change.State != "open" || p.Change.BaseRevision != 1 {
				t.Fatalf("publish under a policy: %v", err)
			}
			cr = p.Change
			if h, _ := e.store.Head(ctx, svc); h.Revision != 1 {
				t.Fatalf("a change request published revision %d", h.Revision)
			}
		})
		t.Run("SelfApprovalRefused", func(t *testing.T) {
			_, err := alice.Approve(ctx, svc, cr.ID, "mine")
			if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "author") {
				t.Fatalf("self-approval: %v", err)
			}
			if _, err := alice.Apply(ctx, svc, cr.ID); !errors.Is(err, configsvc.ErrConflict) {
				t.Fatalf("apply without approval: %v", err)
			}
		})
		t.Run("ApproveRebaseApply", func(t *testing.T) {
			if _, err := bob.Approve(ctx, svc, cr.ID, "looks right"); err != nil {
				t.Fatal(err)
			}
			// The head moves (an admin's emergency change): applying is a
			// conflict until the author rebases.
			if _, err := admin.PutFile(ctx, svc, "other.txt", []byte("x"), api.WithEmergency("incident 42")); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Apply(ctx, svc, cr.ID); !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "rebase") {
				t.Fatalf("apply after the head moved: %v", err)
			}
			if _, err := bob.Rebase(ctx, svc, cr.ID, api.RebaseRequest{}); !errors.Is(err, api.ErrForbidden) {
				t.Fatalf("rebase by a reviewer: %v", err)
			}
			got, err := alice.Rebase(ctx, svc, cr.ID, api.RebaseRequest{})
			if err != nil || got.BaseRevision != 2 || got.Approvals != 0 {
				t.Fatalf("rebase: %+v %v", got, err)
			}
			if _, err := bob.Approve(ctx, svc, cr.ID, "again"); err != nil {
				t.Fatal(err)
			}
			show, err := bob.Change(ctx, svc, cr.ID)
			if err != nil || show.DryRun == nil || len(show.DryRun.Files) != 1 || len(show.Thread) != 4 {
				t.Fatalf("show: %+v %v", show, err)
			}
			rev, err := alice.Apply(ctx, svc, cr.ID)
			if err != nil || rev.Number != 3 {
				t.Fatalf("apply: %+v %v", rev, err)
			}
			b, _, err := e.store.File(ctx, svc, "db.yaml", 0)
			if err != nil || string(b) != "host: db\nport: 6432\n" {
				t.Fatalf("applied content %q %v", b, err)
			}
			r, _ := e.store.Revision(ctx, svc, 3)
			if r.Author != cr.Author || !strings.Contains(r.Message, cr.ID) {
				t.Fatalf("applied revision %+v", r)
			}
			if open, _ := alice.Changes(ctx, svc, false); len(open) != 0 {
				t.Fatalf("open after apply: %+v", open)
			}
		})
		t.Run("EmergencyAuditedAndReviewed", func(t *testing.T) {
			if _, err := alice.PutFile(ctx, svc, "x.txt", []byte("x"), api.WithEmergency("me too")); !errors.Is(err, api.ErrForbidden) {
				t.Fatalf("emergency by an editor: %v", err)
			}
			es, err := bob.Emergencies(ctx, false)
			if err != nil || len(es) != 1 || es[0].Reason != "incident 42" || es[0].Revision != 2 {
				t.Fatalf("emergencies: %+v %v", es, err)
			}
			entries, err := access.NewAudit(e.store.Records(), 0).Query(ctx, access.Query{Service: "pay-api"})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, en := range entries {
				found = found || en.Emergency == "incident 42" && en.Action == "publish" && en.Revision == 2
			}
			if !found {
				t.Fatalf("no audit entry of the emergency in %+v", entries)
			}
			if _, err := admin.ReviewEmergency(ctx, es[0].ID, "self"); !errors.Is(err, api.ErrForbidden) {
				t.Fatalf("self-review: %v", err)
			}
			if _, err := bob.ReviewEmergency(ctx, es[0].ID, "checked the incident"); err != nil {
				t.Fatal(err)
			}
			if es, _ := bob.Emergencies(ctx, false); len(es) != 0 {
				t.Fatalf("reviewed emergency still listed: %+v", es)
			}
		})
		t.Run("LargeChangeRequest", func(t *testing.T) {
			big := strings.Repeat("0123456789abcdef\n", (configsvc.MaxChangesetSize-1024)/17)
			_, err := alice.Publish(ctx, svc, api.PublishRequest{Message: "big", Changes: []api.Change{
				api.PutChange("a.txt", []byte(big[:len(big)/2])), api.PutChange("b.txt", []byte(big[len(big)/2:]))}})
			var p *api.Pending
			if !errors.As(err, &p) {
				t.Fatalf("big publish: %v", err)
			}
			if _, err := bob.Approve(ctx, svc, p.Change.ID, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Apply(ctx, svc, p.Change.ID); err != nil {
				t.Fatal(err)
			}
			a, _, _ := e.store.File(ctx, svc, "a.txt", 0)
			b, _, _ := e.store.File(ctx, svc, "b.txt", 0)
			if string(a)+string(b) != big {
				t.Fatalf("a %d-byte change request did not apply whole", len(big))
			}
		})
	})
}

// TestChangeEventsOnTheStream checks that a revision stream opened with
// ?changes=true announces change request news as "change" events.
func TestChangeEventsOnTheStream(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.StreamRecheck = 50 * time.Millisecond })
	e.mustService("pay-api", map[string]string{"a.txt": "1"})
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/policies/pay", token: e.admin, body: map[string]any{"pattern": "pay-*", "approvals": 1}})
	editor := e.mustToken("editor:pay-*")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hr, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/v1/services/pay-api/watch?changes=true", nil)
	hr.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := e.http.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(200 * time.Millisecond) // the stream has looked at the notices once
	var cr api.ChangeRequest
	e.must(http.StatusAccepted, req{method: "PUT", path: "/v1/services/pay-api/files/a.txt", token: editor, body: "2", contentType: "text/plain"}).json(t, &cr)
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "event: ") {
			event = strings.TrimPrefix(line, "event: ")
		}
		if strings.HasPrefix(line, "data: ") && event == api.EventChange {
			var n api.ChangeNotice
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &n); err != nil || n.ID != cr.ID || n.Event != "submitted" {
				t.Fatalf("change event %s: %v", line, err)
			}
			return
		}
	}
	t.Fatalf("no change event: %v", sc.Err())
}

// TestRoutesDryRun checks the routes diff of a dry run of routes.yaml.
func TestRoutesDryRun(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		e.mustService(configsvc.SystemService, map[string]string{configsvc.RoutesFile: "routes: []\n"})
		var d api.DryRun
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/sluice-system/files/routes.yaml?dry_run=true", token: e.admin, body: "routes: [] # x\n", contentType: "text/plain"}).json(t, &d)
		if len(d.Routes) != 1 || d.Routes[0].Route != "11->15" || d.Operation != "publish" {
			t.Fatalf("routes dry run %+v", d)
		}
		if e.auditCount() != 2 { // the create and the seed publish; a dry run writes no entry
			t.Fatalf("audit entries %d", e.auditCount())
		}
	})
}

// pending returns the change request a write under a policy created, and
// fails t when the write did something else.
func pending(t *testing.T, what string, err error) api.ChangeRequest {
	t.Helper()
	var p *api.Pending
	if !errors.As(err, &p) {
		t.Fatalf("%s under a policy: %v, want a change request (202)", what, err)
	}
	return p.Change
}

// TestGovernanceEveryPublishingPath checks on both stores that a policy
// governs every publishing route: a file delete, a rollback, a shared
// group's file and sluice-system/routes.yaml each become a change request
// (202, with its dry run), under /v1/services or /v1/shared, that applies
// once approved; dry runs of each say so first.
func TestGovernanceEveryPublishingPath(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		admin := e.client(e.admin)
		admin2 := e.client(e.mustToken("admin"))
		alice := e.client(e.mustToken("editor:pay-*"))
		bob := e.client(e.mustToken("editor:pay-*"))
		svc, grp, sys := configsvc.Service("pay-api"), configsvc.Group("pay-common"), configsvc.Service(configsvc.SystemService)
		e.mustService("pay-api", map[string]string{"a.txt": "1", "b.txt": "b"})
		if _, err := admin.PutFile(ctx, svc, "a.txt", []byte("2")); err != nil {
			t.Fatal(err)
		}
		e.mustGroup("pay-common", map[string]string{"c.json": `{"c":1}`})
		if _, err := admin.Link(ctx, "pay-api", "pay-common"); err != nil {
			t.Fatal(err)
		}
		e.mustService(configsvc.SystemService, map[string]string{configsvc.RoutesFile: "routes: []\n"})
		for _, p := range []api.Policy{{Name: "pay", Pattern: "pay-*", Approvals: 1}, {Name: "routes", Pattern: configsvc.SystemService, Approvals: 1, ApproverRole: "admin"}} {
			if _, err := admin.PutPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		approveApply := func(t *testing.T, reviewer, author *api.Client, ref configsvc.Ref, cr api.ChangeRequest) configsvc.Revision {
			t.Helper()
			if _, err := reviewer.Approve(ctx, ref, cr.ID, "ok"); err != nil {
				t.Fatal(err)
			}
			rev, err := author.Apply(ctx, ref, cr.ID)
			if err != nil {
				t.Fatal(err)
			}
			return rev
		}

		t.Run("FileDelete", func(t *testing.T) {
			d, err := alice.DryRunDeleteFile(ctx, svc, "b.txt")
			if err != nil || !d.ChangeRequest || len(d.Files) != 1 || d.Files[0].Status != api.DiffRemoved {
				t.Fatalf("dry run of a delete: %+v %v", d, err)
			}
			_, err = alice.DeleteFile(ctx, svc, "b.txt")
			cr := pending(t, "delete", err)
			if len(cr.Files) != 1 || !cr.Files[0].Delete || cr.DryRun == nil || len(cr.DryRun.Files) != 1 {
				t.Fatalf("change request of a delete: %+v", cr)
			}
			rev := approveApply(t, bob, alice, svc, cr)
			if _, _, err := e.store.File(ctx, svc, "b.txt", rev.Number); !errors.Is(err, configsvc.ErrNotFound) {
				t.Fatalf("b.txt after the applied delete: %v", err)
			}
		})
		t.Run("Rollback", func(t *testing.T) {
			req := api.RollbackRequest{ToRevision: 1, Files: []string{"a.txt"}, Message: "back to 1"}
			d, err := alice.DryRunRollback(ctx, svc, req)
			if err != nil || !d.ChangeRequest || d.Operation != "rollback" || len(d.Files) != 1 || !strings.Contains(d.Files[0].Diff, "+1") {
				t.Fatalf("dry run of a rollback: %+v %v", d, err)
			}
			_, err = alice.Rollback(ctx, svc, req)
			cr := pending(t, "rollback", err)
			if cr.Operation != "rollback" || cr.RollbackOf != 1 || cr.DryRun == nil || cr.DryRun.Targets[0].Service != "pay-api" {
				t.Fatalf("change request of a rollback: %+v", cr)
			}
			rev := approveApply(t, bob, alice, svc, cr)
			r, err := e.store.Revision(ctx, svc, rev.Number)
			if err != nil || r.RollbackOf != 1 {
				t.Fatalf("applied rollback %+v, %v", r, err)
			}
			if b, _, _ := e.store.File(ctx, svc, "a.txt", rev.Number); string(b) != "1" {
				t.Fatalf("a.txt after the rollback: %q", b)
			}
		})
		t.Run("SharedGroup", func(t *testing.T) {
			_, err := alice.PutFile(ctx, grp, "c.json", []byte(`{"c":2}`))
			cr := pending(t, "group put", err)
			if cr.Kind != "group" || cr.DryRun == nil || len(cr.DryRun.Targets) != 1 || cr.DryRun.Targets[0].Service != "pay-api" {
				t.Fatalf("change request of a group: %+v", cr)
			}
			if l, err := bob.Changes(ctx, grp, false); err != nil || len(l) != 1 || l[0].ID != cr.ID {
				t.Fatalf("GET /v1/shared/pay-common/changes: %+v %v", l, err)
			}
			if _, err := bob.Change(ctx, svc, cr.ID); !errors.Is(err, configsvc.ErrNotFound) {
				t.Fatalf("the group's change request under the service: %v", err)
			}
			approveApply(t, bob, alice, grp, cr)
			if b, _, _ := e.store.File(ctx, grp, "c.json", 0); string(b) != `{"c":2}` {
				t.Fatalf("c.json after apply: %q", b)
			}
		})
		t.Run("Routes", func(t *testing.T) {
			// An admin without an emergency reason submits a change request
			// too; the policy wants another admin's approval.
			d, err := admin.DryRunPutFile(ctx, sys, configsvc.RoutesFile, []byte("routes: [] # v2\n"))
			if err != nil || !d.ChangeRequest || len(d.Routes) != 1 || d.Policy.ApproverRole != "admin" {
				t.Fatalf("dry run of routes.yaml: %+v %v", d, err)
			}
			_, err = admin.PutFile(ctx, sys, configsvc.RoutesFile, []byte("routes: [] # v2\n"))
			cr := pending(t, "routes put", err)
			if cr.DryRun == nil || len(cr.DryRun.Routes) != 1 {
				t.Fatalf("change request of routes.yaml: %+v", cr)
			}
			approveApply(t, admin2, admin, sys, cr)
			if b, _, _ := e.store.File(ctx, sys, configsvc.RoutesFile, 0); string(b) != "routes: [] # v2\n" {
				t.Fatalf("routes.yaml after apply: %q", b)
			}
		})
	})
}

// TestGovernancePolicyRules checks each field of a policy through the
// API: approver_role admin, decline_blocks on and off, author_may_approve,
// and the expiry of an unapplied change request.
func TestGovernancePolicyRules(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		admin := e.client(e.admin)
		alice := e.client(e.mustToken("editor:*"))
		bob := e.client(e.mustToken("editor:*"))
		put := func(t *testing.T, name string, p api.Policy) configsvc.Ref {
			t.Helper()
			ref := configsvc.Service(name + "-svc")
			e.withT(t).mustService(ref.Name, map[string]string{"a.txt": "1"})
			p.Name, p.Pattern = name, name+"-*"
			if _, err := admin.PutPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
			return ref
		}
		submit := func(t *testing.T, ref configsvc.Ref) api.ChangeRequest {
			t.Helper()
			_, err := alice.PutFile(ctx, ref, "a.txt", []byte("2"))
			return pending(t, "put", err)
		}

		t.Run("AdminApprovers", func(t *testing.T) {
			ref := put(t, "adm", api.Policy{Approvals: 1, ApproverRole: "admin"})
			cr := submit(t, ref)
			if _, err := bob.Approve(ctx, ref, cr.ID, ""); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "only admins") {
				t.Fatalf("an editor's approval under approver_role admin: %v", err)
			}
			if _, err := admin.Approve(ctx, ref, cr.ID, ""); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Apply(ctx, ref, cr.ID); err != nil {
				t.Fatalf("the author applies after an admin's approval: %v", err)
			}
		})
		t.Run("DeclineBlocks", func(t *testing.T) {
			ref := put(t, "blk", api.Policy{Approvals: 1, DeclineBlocks: true})
			cr := submit(t, ref)
			if _, err := admin.Decline(ctx, ref, cr.ID, "no"); err != nil {
				t.Fatal(err)
			}
			if _, err := bob.Approve(ctx, ref, cr.ID, "yes"); err != nil {
				t.Fatal(err)
			}
			_, err := alice.Apply(ctx, ref, cr.ID)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(err.Error(), "declined") {
				t.Fatalf("apply with a standing decline: %v", err)
			}
		})
		t.Run("DeclineDoesNotBlock", func(t *testing.T) {
			ref := put(t, "nbl", api.Policy{Approvals: 1})
			cr := submit(t, ref)
			if _, err := admin.Decline(ctx, ref, cr.ID, "meh"); err != nil {
				t.Fatal(err)
			}
			if _, err := bob.Approve(ctx, ref, cr.ID, "fine"); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Apply(ctx, ref, cr.ID); err != nil {
				t.Fatalf("apply with a decline that does not block: %v", err)
			}
		})
		t.Run("AuthorMayApprove", func(t *testing.T) {
			ref := put(t, "slf", api.Policy{Approvals: 1, AuthorMayApprove: true})
			cr := submit(t, ref)
			if _, err := alice.Approve(ctx, ref, cr.ID, "mine"); err != nil {
				t.Fatalf("self-approval where the policy allows it: %v", err)
			}
			if _, err := alice.Apply(ctx, ref, cr.ID); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("Expiry", func(t *testing.T) {
			ref := put(t, "exp", api.Policy{Approvals: 1, Expiry: "1h"})
			cr := submit(t, ref)
			if cr.Expires.Sub(cr.Created) != time.Hour {
				t.Fatalf("expires %v after creation, want 1h", cr.Expires.Sub(cr.Created))
			}
			if _, err := bob.Approve(ctx, ref, cr.ID, ""); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Hour + time.Second)
			got, err := bob.Change(ctx, ref, cr.ID)
			if err != nil || got.State != "expired" {
				t.Fatalf("after its expiry: %+v %v", got, err)
			}
			if _, err := alice.Apply(ctx, ref, cr.ID); !errors.Is(err, configsvc.ErrConflict) {
				t.Fatalf("apply of an expired change request: %v", err)
			}
			if open, _ := bob.Changes(ctx, ref, false); len(open) != 0 {
				t.Fatalf("expired change request listed as open: %+v", open)
			}
		})
	})
}

// TestAttackGroupDryRunHidesOtherServicesInstances checks that the dry run
// of a shared group's change, asked by an editor of the group alone, names
// the linking services and their instances' revisions but not the
// addresses, labels or owners of instances the caller may not list.
func TestAttackGroupDryRunHidesOtherServicesInstances(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.mustService("orders", nil)
	e.mustGroup("redis-common", map[string]string{"r.yaml": "a: 1\n"})
	admin := e.client(e.admin)
	if _, err := admin.Link(ctx, "orders", "redis-common"); err != nil {
		t.Fatal(err)
	}
	lease, err := e.client(e.mustToken("agent:orders")).Register(ctx, api.Instance{Service: "orders", ID: "orders-1", Addr: "10.0.0.7:8080",
		Labels: map[string]string{"zone": "a"}, Revision: 0, Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	for _, tc := range []struct {
		who      string
		token    string
		wantAddr string
	}{{"group editor", e.mustToken("editor:redis-common"), ""}, {"admin", e.admin, "10.0.0.7:8080"}} {
		d, err := e.client(tc.token).DryRunPutFile(ctx, configsvc.Group("redis-common"), "r.yaml", []byte("a: 2\n"))
		if err != nil || len(d.Targets) != 1 || len(d.Targets[0].Instances) != 1 {
			t.Fatalf("%s: dry run %+v, %v", tc.who, d, err)
		}
		in := d.Targets[0].Instances[0]
		if in.ID != "orders-1" || in.Addr != tc.wantAddr || (tc.wantAddr == "") != (in.Labels == nil && in.Owner == "") {
			t.Errorf("%s sees instance %+v, want address %q", tc.who, in, tc.wantAddr)
		}
	}
	if got := mustInstances(t, e, "orders"); len(got) != 1 || got[0].Addr != "10.0.0.7:8080" {
		t.Fatalf("the store's instances changed: %+v", got)
	}
}

// TestGovernanceIdempotencyKeys: the governance writes keep the
// Idempotency-Key contract of every write, on both stores. A publish
// under a policy retried under its key gets the same 202 and change
// request back (one change request, not two); an approval and an apply
// retried under theirs act once (one approval, one revision); the same key
// with a dry run, or with an emergency reason, is another request (422).
func TestGovernanceIdempotencyKeys(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		e.mustService("pay-api", map[string]string{"db.yaml": "host: db\nport: 5432\n"})
		e.must(http.StatusCreated, req{method: "PUT", path: "/v1/policies/pay", token: e.admin, body: map[string]any{"pattern": "pay-*", "approvals": 1}})
		alice, bob := e.mustToken("editor:pay-*"), e.mustToken("editor:pay-*")
		key := func(k string) map[string]string { return map[string]string{api.HeaderIdempotencyKey: k} }
		put := req{method: "PUT", path: "/v1/services/pay-api/files/db.yaml", token: alice, body: "host: db\nport: 6432\n",
			contentType: "text/plain", header: key("submit-1")}

		first, second := e.do(put), e.do(put)
		if first.status != http.StatusAccepted || second.status != http.StatusAccepted || !bytes.Equal(first.body, second.body) ||
			second.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("publish under a policy, twice under one key = %d, %d (replayed %q): %s / %s; want the same 202",
				first.status, second.status, second.header.Get("Idempotent-Replayed"), first.body, second.body)
		}
		var cr api.ChangeRequest
		first.json(t, &cr)
		var list api.ChangeList
		e.must(http.StatusOK, req{method: "GET", path: "/v1/services/pay-api/changes", token: alice}).json(t, &list)
		if len(list.Changes) != 1 || list.Changes[0].ID != cr.ID {
			t.Fatalf("change requests = %+v; want only %s", list.Changes, cr.ID)
		}

		dry := put
		dry.path += "?dry_run=true"
		if r := e.do(dry); r.status != http.StatusUnprocessableEntity || r.errCode(t) != api.CodeInvalid {
			t.Fatalf("the key of a publish sent with dry_run = %d %s; want 422", r.status, r.body)
		}
		emergency := put
		emergency.token = e.admin
		emergency.header = map[string]string{api.HeaderIdempotencyKey: "submit-2", api.EmergencyHeader: "INC-1"}
		if r := e.do(emergency); r.status != http.StatusOK {
			t.Fatalf("emergency publish = %d %s", r.status, r.body)
		}
		emergency.header[api.EmergencyHeader] = "INC-2"
		if r := e.do(emergency); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("the same key with another emergency reason = %d %s; want 422", r.status, r.body)
		}
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/pay-api/files/db.yaml", token: e.admin, body: "host: db\nport: 5432\n",
			contentType: "text/plain", header: map[string]string{api.EmergencyHeader: "INC-3 back to the base"}})
		// The head is at 3 now: rebase the change request on it first.
		e.must(http.StatusOK, req{method: "POST", path: "/v1/services/pay-api/changes/" + cr.ID + "/rebase", token: alice, header: key("rebase-1")})

		approve := req{method: "POST", path: "/v1/services/pay-api/changes/" + cr.ID + "/approve", token: bob, body: map[string]any{"comment": "ok"}, header: key("approve-1")}
		e.must(http.StatusOK, approve)
		if r := e.must(http.StatusOK, approve); r.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("approval retried under its key was not replayed: %v", r.header)
		}
		var got api.ChangeRequest
		e.must(http.StatusOK, req{method: "GET", path: "/v1/services/pay-api/changes/" + cr.ID, token: alice}).json(t, &got)
		approvals := 0
		for _, ev := range got.Thread {
			if ev.Kind == approval.EventApproved {
				approvals++
			}
		}
		if got.Approvals != 1 || approvals != 1 {
			t.Fatalf("after an approval and its replay: %d approvals, %d approval events; want 1 and 1: %+v", got.Approvals, approvals, got.Thread)
		}

		apply := req{method: "POST", path: "/v1/services/pay-api/changes/" + cr.ID + "/apply", token: alice, header: key("apply-1")}
		a1, a2 := e.must(http.StatusCreated, apply), e.must(http.StatusCreated, apply)
		if !bytes.Equal(a1.body, a2.body) || a2.header.Get("Idempotent-Replayed") != "true" || a2.header.Get("X-Sluice-Revision") != "4" {
			t.Fatalf("apply retried under its key = %s %v; want the first answer (revision 4) replayed", a2.body, a2.header)
		}
		if h, err := e.store.Head(ctx, configsvc.Service("pay-api")); err != nil || h.Revision != 4 {
			t.Fatalf("head = %d, %v; want 4 (one apply)", h.Revision, err)
		}
	})
}

// TestGovernanceErrorMessagesForUsers: the governance's refusals and
// conflicts are worded for users like every API error (no package
// prefixes, no Go error chains, the request id), and say what blocks:
// the rule, the approvals missing, a standing decline, the state, the head
// that moved past the base, the change request, policy or emergency that
// does not exist.
func TestGovernanceErrorMessagesForUsers(t *testing.T) {
	governanceEnvs(t, func(t *testing.T, e *testEnv) {
		e.mustService("pay-api", map[string]string{"db.yaml": "host: db\nport: 5432\n", "db.yaml.schema.json": dbSchema})
		e.must(http.StatusCreated, req{method: "PUT", path: "/v1/policies/pay", token: e.admin,
			body: map[string]any{"pattern": "pay-*", "approvals": 1, "decline_blocks": true}})
		alice, bob, carol := e.mustToken("editor:pay-*"), e.mustToken("editor:pay-*"), e.mustToken("editor:pay-*")
		submit := func(port string) string {
			t.Helper()
			var cr api.ChangeRequest
			e.must(http.StatusAccepted, req{method: "PUT", path: "/v1/services/pay-api/files/db.yaml", token: alice,
				body: "host: db\nport: " + port + "\n", contentType: "text/plain"}).json(t, &cr)
			return cr.ID
		}
		changes := "/v1/services/pay-api/changes/"
		id := submit("6432")
		checkUserMessage(t, e.do(req{method: "POST", path: changes + id + "/approve", token: alice}), http.StatusForbidden,
			"policy pay does not let the author approve their own change")
		checkUserMessage(t, e.do(req{method: "POST", path: changes + id + "/apply", token: alice}), http.StatusConflict,
			"change request "+id, "has 0 of the 1 approvals policy pay requires")
		e.must(http.StatusOK, req{method: "POST", path: changes + id + "/decline", token: bob, body: map[string]any{"comment": "not now"}})
		e.must(http.StatusOK, req{method: "POST", path: changes + id + "/approve", token: carol})
		checkUserMessage(t, e.do(req{method: "POST", path: changes + id + "/apply", token: alice}), http.StatusConflict,
			"is declined (1 standing decline(s))", "policy pay lets a decline block it")
		e.must(http.StatusOK, req{method: "POST", path: changes + id + "/approve", token: bob})
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/pay-api/files/db.yaml", token: e.admin, body: "host: db2\nport: 5432\n",
			contentType: "text/plain", header: map[string]string{api.EmergencyHeader: "INC-9"}})
		checkUserMessage(t, e.do(req{method: "POST", path: changes + id + "/apply", token: alice}), http.StatusConflict,
			"service pay-api changed since revision 1, the base of change request "+id, "sluice change rebase pay-api "+id)
		e.must(http.StatusOK, req{method: "POST", path: changes + id + "/rebase", token: alice})
		e.must(http.StatusOK, req{method: "POST", path: changes + id + "/approve", token: bob})
		e.must(http.StatusCreated, req{method: "POST", path: changes + id + "/apply", token: alice})
		checkUserMessage(t, e.do(req{method: "POST", path: changes + id + "/approve", token: bob}), http.StatusConflict,
			"change request "+id+" of service pay-api is applied")
		checkUserMessage(t, e.do(req{method: "POST", path: changes + id + "/apply", token: alice}), http.StatusConflict,
			"change request "+id+" of service pay-api is applied")

		checkUserMessage(t, e.do(req{method: "GET", path: changes + "0123456789abcdef", token: alice}), http.StatusNotFound,
			"service pay-api has no change request 0123456789abcdef")
		checkUserMessage(t, e.do(req{method: "GET", path: "/v1/policies/nope", token: e.admin}), http.StatusNotFound,
			`no approval policy is named "nope"`)
		checkUserMessage(t, e.do(req{method: "POST", path: "/v1/emergencies/nope/review", token: bob}), http.StatusNotFound,
			`no emergency change has id "nope"`)
		checkUserMessage(t, e.do(req{method: "PUT", path: "/v1/services/pay-api/files/db.yaml", token: alice, body: "host: db\nport: 1\n",
			contentType: "text/plain", header: map[string]string{api.EmergencyHeader: "mine"}}), http.StatusForbidden, "only admins")
		ae := checkUserMessage(t, e.do(req{method: "PUT", path: "/v1/services/pay-api/files/db.yaml", token: alice, body: "host: db\nport: 99999\n",
			contentType: "text/plain"}), http.StatusUnprocessableEntity, "db.yaml", "/port", "maximum")
		if len(ae.Violations()) != 1 {
			t.Errorf("violations = %+v; want the one", ae.Violations())
		}
	})
}
