package webui_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/schema"
	"github.com/sluicehq/sluice/configsvc/webui"
)

// TestBrowserFourEyes is issue 14's approval flow in the console: an admin
// sets a policy; the author's publish shows the dry run (a schema
// violation at its line, then the blast radius) and becomes a change
// request; the author's own approval is refused; a second person approves
// from the inbox and the author's page follows live; the author applies
// it. A rollback under the policy becomes a change request too, which an
// admin applies as an emergency; an admin's emergency publish from the
// editor is audited; both are reviewed from the inbox.
func TestBrowserFourEyes(t *testing.T) {
	browser := startBrowser(t)
	ctx := context.Background()
	st := bolttest.MustOpen(t, boltstore.Options{})
	srv, err := httpapi.New(httpapi.Config{Store: configsvc.Validating(st, configsvc.Validators(format.Validator{}, schema.NewValidator())),
		UI: webui.FS(), StreamRecheck: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { _ = srv.Close(); ts.Close() })
	adminTok, err := srv.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokens := access.NewTokens(st.Records(), nil)
	alice, _, err := tokens.Create(ctx, "alice", []access.Grant{{Role: access.RoleEditor, Pattern: "pay-*"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := tokens.Create(ctx, "bob", []access.Grant{{Role: access.RoleEditor, Pattern: "pay-*"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.New(api.Config{Servers: []string{ts.URL}, Token: adminTok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	svc := configsvc.Service("pay-api")
	if _, _, err := admin.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Publish(ctx, svc, api.PublishRequest{Message: "seed", Changes: []api.Change{api.PutChange("a.json", []byte(`{"n": 1}`)),
		api.PutChange("a.json.schema.json", []byte(`{"properties":{"n":{"maximum":10}}}`))}}); err != nil {
		t.Fatal(err)
	}
	lease, err := st.Register(ctx, configsvc.Instance{Service: "pay-api", ID: "pay-api-1", Addr: "127.0.0.1:9001", Revision: 1,
		Status: configsvc.StatusApplied, Started: time.Now().UTC(), Updated: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lease.Close() })

	t.Log("an admin sets the policy in the console")
	adm := newTab(t, browser, ts.URL+"/")
	adm.signIn(adminTok)
	adm.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`))) // the first page is loaded: a later one is not overwritten by it
	goTo(adm, "#/changes", `[data-test=policy-name]`)
	adm.typeInto(`[data-test=policy-name]`, "pay")
	adm.typeInto(`[data-test=policy-pattern]`, "pay-*")
	adm.do(chromedp.Click(chromedp.CSS(`[data-test=policy-save]`)), chromedp.WaitVisible(chromedp.CSS(`[data-policy=pay]`)))
	if p, err := admin.Policy(ctx, "pay"); err != nil || p.Approvals != 1 || p.AuthorMayApprove || !p.DeclineBlocks || p.ApproverRole != "editor" || p.UpdatedBy != "bootstrap-admin" {
		t.Fatalf("policy saved from the console: %+v, %v", p, err)
	}
	adm.shot("governance-policies")

	t.Log("the author's publish shows the dry run and becomes a change request")
	a := newTab(t, browser, ts.URL+"/")
	a.signIn(alice)
	a.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`))) // the first page is loaded: a later one is not overwritten by it
	goTo(a, "#/services/pay-api", `[data-test=editor]`)
	a.setEditor(`{"n": 11}`)
	a.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=dry-run-violations]`)))
	if txt := a.text(`[data-test=dry-run-violations]`); !strings.Contains(txt, "a.json:1") || !strings.Contains(txt, "/n") || !strings.Contains(txt, "(maximum)") {
		t.Fatalf("dry run violations: %q", txt)
	}
	a.waitFor("the schema violation in the editor", `[...document.querySelectorAll('[data-test=editor-errors] li')].some((li) => li.textContent.includes('/n:') && li.textContent.includes('(server)'))`)
	if got := a.lintLines(); got != "1" {
		t.Errorf("lint marks lines %q, want line 1, where n is", got)
	}
	a.do(chromedp.Click(chromedp.CSS(`.modal .actions button`)), chromedp.WaitNotPresent(chromedp.CSS(`.modal`)))
	a.setEditor(`{"n": 2}`)
	a.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=needs-approval]`)))
	if got := a.text(`[data-test=blast-radius]`); !strings.Contains(got, "1 live instance") || !strings.Contains(got, "pay-api (1)") {
		t.Errorf("blast radius = %q, want pay-api and its instance", got)
	}
	if got := a.text(`[data-test=dry-run-instances]`); !strings.Contains(got, "pay-api-1") || !strings.Contains(got, "on revision 1") {
		t.Errorf("instances = %q, want pay-api-1 on revision 1", got)
	}
	if got := a.text(`[data-test=confirm-publish]`); got != "Submit for approval" {
		t.Errorf("publish button = %q", got)
	}
	if n := a.count(`[data-test=emergency-box]:not([hidden])`); n != 0 {
		t.Error("an editor is offered the emergency path")
	}
	a.shot("governance-review")
	a.typeInto(`.modal [data-test=message]`, "raise n")
	a.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-publish]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=change-title]`)))
	crs, err := admin.Changes(ctx, svc, false)
	if err != nil || len(crs) != 1 || headRevision(t, st, "pay-api") != 1 {
		t.Fatalf("change requests %+v, %v", crs, err)
	}
	id := crs[0].ID
	if got := a.text(`[data-test=change-title]`); !strings.Contains(got, id) {
		t.Errorf("the author sees %q, want change request %s", got, id)
	}

	t.Log("the author's own approval is refused")
	a.do(chromedp.Click(chromedp.CSS(`[data-test=approve]`)))
	a.waitFor("the refusal", `document.querySelector('[data-test=flash] .msg.error')?.textContent.includes('does not let the author approve')`)
	if cr, _ := admin.Change(ctx, svc, id); cr.Approvals != 0 {
		t.Fatalf("self-approval counted: %+v", cr)
	}
	if n := a.count(`[data-test=apply]`); n != 0 {
		t.Error("apply is offered before the approvals")
	}

	t.Log("a second person approves from the inbox; the author's page follows")
	b := newTab(t, browser, ts.URL+"/")
	b.signIn(bob)
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`))) // the first page is loaded: a later one is not overwritten by it
	goTo(b, "#/changes", `[data-change="`+id+`"] a`)
	b.do(chromedp.Click(chromedp.CSS(`[data-change="`+id+`"] a`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=change-diff]`)))
	if got := b.text(`[data-test=change-diff]`); !strings.Contains(got, `+{"n": 2}`) {
		t.Errorf("the reviewer's diff = %q", got)
	}
	b.shot("governance-inbox")
	b.typeInto(`[data-test=review-comment]`, "looks fine")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=approve]`)))
	b.waitFor("the approval", `document.querySelector('[data-test=approvals]')?.innerText.startsWith('1 of 1')`)
	a.waitFor("the approval on the author's page", `document.querySelector('[data-test=approvals]')?.innerText.startsWith('1 of 1') && document.querySelector('[data-test=apply]') !== null`)
	if got := a.text(`[data-test=thread]`); !strings.Contains(got, "approved by bob") || !strings.Contains(got, "looks fine") {
		t.Errorf("thread = %q", got)
	}

	t.Log("the author applies it")
	a.do(chromedp.Click(chromedp.CSS(`[data-test=apply]`)))
	a.waitFor("the applied state", `document.querySelector('[data-test=change-state]')?.innerText === 'applied'`)
	if got := fileAt(t, st, "pay-api", "a.json", 2); got != `{"n": 2}` {
		t.Fatalf("applied content %q", got)
	}

	t.Log("a rollback under the policy becomes a change request; an admin applies it as an emergency")
	goTo(a, "#/services/pay-api/history", `[data-test=rollback-1]`)
	a.do(chromedp.Click(chromedp.CSS(`[data-test=rollback-1]`)))
	a.waitFor("the rollback's dry run", `document.querySelector('[data-test=rollback-dry-run] [data-test=needs-approval]') !== null && !document.querySelector('[data-test=confirm-rollback]').disabled`)
	a.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-rollback]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=change-title]`)))
	crs, err = admin.Changes(ctx, svc, false)
	if err != nil || len(crs) != 1 || crs[0].Operation != approval.OpRollback || headRevision(t, st, "pay-api") != 2 {
		t.Fatalf("rollback change requests %+v, %v", crs, err)
	}
	rb := crs[0].ID
	goTo(adm, "#/changes/service/pay-api/"+rb, `[data-test=apply-emergency]`)
	adm.typeInto(`[data-test=emergency-reason]`, "incident 9: n=2 breaks payouts")
	adm.do(chromedp.Click(chromedp.CSS(`[data-test=apply-emergency]`)))
	adm.waitFor("the emergency apply", `document.querySelector('[data-test=applied]')?.innerText.includes('emergency: incident 9')`)
	if got := fileAt(t, st, "pay-api", "a.json", 3); got != `{"n": 1}` {
		t.Fatalf("content after the rollback %q", got)
	}

	t.Log("an admin's emergency publish from the editor")
	goTo(adm, "#/services/pay-api", `[data-test=editor]`)
	adm.setEditor(`{"n": 3}`)
	adm.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=emergency]`)))
	adm.do(chromedp.Click(chromedp.CSS(`[data-test=emergency]`)))
	if got := adm.text(`[data-test=confirm-publish]`); got != "Publish revision 4 now (emergency)" {
		t.Errorf("emergency publish button = %q", got)
	}
	adm.typeInto(`.modal [data-test=emergency-reason]`, "incident 10")
	adm.shot("governance-emergency")
	adm.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-publish]`)))
	adm.waitFor("revision 4", `document.querySelector('[data-test=head-revision]').textContent === 'revision 4'`)
	entries, err := access.NewAudit(st.Records(), 0).Query(ctx, access.Query{Service: "pay-api"})
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]string{}
	for _, e := range entries {
		if e.Emergency != "" {
			audited[e.Emergency] = e.Action
		}
	}
	if audited["incident 10"] != "publish" || audited["incident 9: n=2 breaks payouts"] != "change.apply" {
		t.Fatalf("emergencies audited: %v", audited)
	}
	goTo(adm, "#/audit", `[data-test=audit-service]`)
	adm.typeInto(`[data-test=audit-service]`, "pay-api")
	adm.do(chromedp.Click(chromedp.CSS(`[data-test=audit-filter]`)))
	adm.waitFor("the emergencies in the audit log", `[...document.querySelectorAll('[data-test=audit-emergency]')].map((e) => e.textContent).join('|') === 'emergency: incident 10|emergency: incident 9: n=2 breaks payouts'`)

	t.Log("someone else reviews the emergencies from the inbox")
	goTo(b, "#/services", `[data-test=services]`)
	goTo(b, "#/changes", `[data-emergency]`)
	if n := b.count(`[data-emergency]`); n != 2 {
		t.Fatalf("%d emergencies listed, want 2", n)
	}
	for i := 0; i < 2; i++ {
		b.do(chromedp.Click(chromedp.CSS(`[data-test=mark-reviewed]`)))
		b.waitFor("the review", `document.querySelectorAll('[data-emergency]').length === `+strconv.Itoa(1-i))
	}
	if es, _ := approval.New(st.Records(), nil).Emergencies(ctx, false); len(es) != 0 {
		t.Fatalf("emergencies left: %+v", es)
	}
}

// goTo moves the tab's console to hash and waits for sel.
func goTo(b *tab, hash, sel string) {
	b.t.Helper()
	evalJS[bool](b, `(() => { location.hash = '`+hash+`'; return true; })()`)
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
}

// TestSchemaViolationsMarkedAtTheirLines: a file's JSON Schema (F.schema.json
// beside F, issue 14) is checked by the server only; the console must show
// each violation at its line in the editor (issue 17), from the review's dry
// run and from the publish's 422 alike: every violation listed and marked,
// a click on one moving the cursor to it, and a schema change that breaks a
// file nobody edited marking that file.
func TestSchemaViolationsMarkedAtTheirLines(t *testing.T) {
	var dry dryRunBreaker
	c := startConsoleWith(t, dry.wrap)
	const (
		dbV1     = "host: db.internal\nport: 5432\npool: 10\n"
		dbBad    = "host: db.internal\nport: 70000\npool: 0\n"
		schemaV1 = `{"type": "object", "required": ["host"], "properties": {"port": {"type": "integer", "maximum": 65535}, "pool": {"type": "integer", "minimum": 1}}}`
		schemaV2 = `{"type": "object", "properties": {"pool": {"type": "integer", "maximum": 5}}}`
	)
	mustService(t, c, "orders", map[string]string{"db.yaml": dbV1, "db.yaml.schema.json": schemaV1})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/files?file=db.yaml"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	cursorLine := func() int {
		return evalJS[int](b, `import('./vendor/codemirror.js').then((cm) => { const v = cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]')); return v.state.doc.lineAt(v.state.selection.main.head).number; })`)
	}
	editorFocused := func() bool {
		return evalJS[bool](b, `document.activeElement?.classList.contains('cm-content') && document.querySelector('[data-test=editor]').contains(document.activeElement)`)
	}

	t.Run("dry run", func(t *testing.T) {
		b.setEditor(dbBad)
		b.waitFor("publish to be offered", `document.querySelector('[data-test=review]')?.disabled === false`)
		b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=dry-run-violations]`)))
		got := b.text(`[data-test=dry-run-violations]`)
		for _, want := range []string{"2 violation(s)", "db.yaml:2", "/port", "(maximum)", "db.yaml:3", "/pool", "(minimum)"} {
			if !strings.Contains(got, want) {
				t.Errorf("dry run violations = %q, want %q in it", got, want)
			}
		}
		if !evalJS[bool](b, `document.querySelector('[data-test=confirm-publish]').disabled`) {
			t.Error("publish is enabled although the dry run found violations")
		}
		b.waitFor("both violations in the editor", `document.querySelectorAll('[data-test=editor-errors] li').length === 2`)
		if got := b.lintLines(); got != "2,3" {
			t.Errorf("lint marks lines %q, want 2,3", got)
		}
		if got := b.text(`[data-test=editor-errors]`); !strings.Contains(got, "Line 2") || !strings.Contains(got, "/port:") || !strings.Contains(got, "(server)") {
			t.Errorf("editor errors = %q, want /port at line 2 from the server", got)
		}
		// A violation in the panel shows it in the editor.
		b.do(chromedp.Click(chromedp.CSS(`[data-test=dry-run-violations] li[data-line="3"] button`)))
		b.waitFor("the dialog closed", `!document.querySelector('.modal')`)
		if n, f := cursorLine(), editorFocused(); n != 3 || !f {
			t.Errorf("after a click on the violation at line 3 the cursor is on line %d (editor focused: %v)", n, f)
		}
		if got := b.text(`[data-file="db.yaml"]`); !strings.Contains(got, "2 errors") {
			t.Errorf("file list shows db.yaml as %q, want its 2 errors", got)
		}
		b.do(chromedp.Click(chromedp.CSS(`[data-test=revert-file]`)))
		b.waitFor("the edit reverted", `document.querySelector('[data-test=change-count]')?.textContent === 'No unpublished changes'`)
	})

	t.Run("a schema change breaks a file nobody edited", func(t *testing.T) {
		b.do(chromedp.Click(chromedp.CSS(`[data-file="db.yaml.schema.json"]`)))
		b.waitFor("the schema in the editor", `document.querySelector('.files [aria-current=true]')?.dataset.file === 'db.yaml.schema.json'`)
		b.setEditor(schemaV2)
		b.waitFor("publish to be offered", `document.querySelector('[data-test=review]')?.disabled === false`)
		b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=dry-run-violations]`)))
		if got := b.text(`[data-test=dry-run-violations]`); !strings.Contains(got, "db.yaml:3") || !strings.Contains(got, "(maximum)") {
			t.Errorf("dry run violations = %q, want db.yaml's pool at line 3", got)
		}
		b.do(chromedp.KeyEvent(keyEscape))
		b.waitFor("the dialog closed", `!document.querySelector('.modal')`)
		if got := evalJS[string](b, `document.querySelector('.files [aria-current=true]')?.dataset.file`); got != "db.yaml" {
			t.Errorf("the console shows %q, want db.yaml, the file the new schema refuses", got)
		}
		b.waitFor("the violation in db.yaml's editor", `document.querySelector('[data-test=editor] .cm-lint-marker-error') !== null`)
		if got := b.lintLines(); got != "3" {
			t.Errorf("lint marks lines %q of db.yaml, want 3", got)
		}
		b.do(chromedp.Click(chromedp.CSS(`[data-file="db.yaml.schema.json"]`)), chromedp.Click(chromedp.CSS(`[data-test=revert-file]`)))
		b.waitFor("the edit reverted", `document.querySelector('[data-test=change-count]')?.textContent === 'No unpublished changes'`)
	})

	t.Run("422", func(t *testing.T) {
		dry.on.Store(true)
		b.do(chromedp.Click(chromedp.CSS(`[data-file="db.yaml"]`)))
		b.waitFor("db.yaml in the editor", `document.querySelector('.files [aria-current=true]')?.dataset.file === 'db.yaml'`)
		b.setEditor(dbBad)
		b.waitFor("publish to be offered", `document.querySelector('[data-test=review]')?.disabled === false`)
		b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=dry-run-failed]`)))
		b.typeInto(`.modal [data-test=message]`, "refused by the schema")
		b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-publish]`)))
		b.waitFor("the refusal", `document.querySelector('[data-test=flash] .msg.error')?.textContent.includes('422')`)
		b.waitFor("both violations in the editor", `document.querySelectorAll('[data-test=editor-errors] li').length === 2`)
		if got := b.lintLines(); got != "2,3" {
			t.Errorf("lint marks lines %q, want 2,3", got)
		}
		if got := b.text(`[data-test=editor-errors]`); !strings.Contains(got, "/pool:") || !strings.Contains(got, "(server)") {
			t.Errorf("editor errors = %q, want /pool from the server", got)
		}
		if n := cursorLine(); n != 2 {
			t.Errorf("after the 422 the cursor is on line %d, want 2, the first violation", n)
		}
	})
	if rev := headRevision(t, c.store, "orders"); rev != 1 {
		t.Errorf("head moved to %d: nothing should have been published", rev)
	}
}
