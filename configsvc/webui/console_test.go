package webui_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

const (
	appV1    = "{\n  \"name\": \"orders\",\n  \"port\": 8080\n}\n"
	appV2    = "{\n  \"name\": \"orders\",\n  \"port\": 9090\n}\n"
	appV3    = "{\n  \"name\": \"orders\",\n  \"port\": 7070\n}\n"
	appV4    = "{\n  \"name\": \"orders\",\n  \"port\": 6060\n}\n"
	limitsV1 = "[limits]\nrps = 100\n"
	// badJSON has a trailing comma: the error is the "}" at line 4, column 1.
	badJSON = "{\n  \"name\": \"orders\",\n  \"port\": 8080,\n}\n"
)

// TestConsole drives the embedded console in Chromium against a real admin
// server: every step is a user story from the console issue, in order, each
// checking what the user sees and what the store holds afterwards.
func TestConsole(t *testing.T) {
	top := t // instances registered in one step stay live for the later steps
	c := startConsole(t)
	browser := startBrowser(t)
	adm := newTab(t, browser, c.url)
	var vw *tab
	ctx := context.Background()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		ok := t.Run(name, func(st *testing.T) {
			adm.t = st
			if vw != nil {
				vw.t = st
			}
			f(st)
		})
		adm.t = t
		if vw != nil {
			vw.t = t
		}
		if !ok {
			t.FailNow() // later steps build on this one
		}
	}

	step("wrong token is refused with the server's message", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url), chromedp.WaitVisible(css(`[data-test=token]`)))
		adm.shot("01-sign-in")
		adm.typeInto(`[data-test=token]`, "slc_not-a-real-token")
		adm.do(chromedp.Click(css(`[data-test=signin]`)), chromedp.WaitVisible(css(`[data-test=signin-error]`)))
		if got := adm.text(`[data-test=signin-error]`); !strings.Contains(got, "not accepted") {
			t.Errorf("sign-in error = %q, want it to say the token was not accepted", got)
		}
	})

	step("sign in exchanges the token for an HttpOnly session cookie", func(t *testing.T) {
		adm.signIn(c.admin)
		if got := adm.text(`[data-test=whoami]`); !strings.Contains(got, "admin") {
			t.Errorf("header shows %q, want the admin identity", got)
		}
		if n := evalJS[int](adm, `localStorage.length + sessionStorage.length`); n != 0 {
			t.Errorf("browser storage holds %d items, want none", n)
		}
		cookies := evalJS[string](adm, `document.cookie`)
		if !strings.Contains(cookies, "sluice_csrf=") || strings.Contains(cookies, "sluice_session") {
			t.Errorf("script-visible cookies = %q, want the CSRF cookie only (the session cookie is HttpOnly)", cookies)
		}
		if evalJS[bool](adm, fmt.Sprintf(`document.documentElement.outerHTML.includes(%q)`, c.admin)) {
			t.Error("the token is still in the page after sign-in")
		}
	})

	step("create a service", func(t *testing.T) {
		adm.do(chromedp.WaitVisible(css(`[data-test=new-name]`)))
		adm.typeInto(`[data-test=new-name]`, "orders")
		adm.do(chromedp.Click(css(`[data-test=create]`)))
		adm.waitFor("the service page", `document.querySelector('[data-test=title]')?.textContent === 'orders'`)
		if rev := headRevision(t, c.store, "orders"); rev != 0 {
			t.Errorf("new service at revision %d, want 0", rev)
		}
	})

	step("invalid JSON shows the error at its line before publishing", func(t *testing.T) {
		adm.typeInto(`[data-test=new-file]`, "app.json")
		adm.do(chromedp.Click(css(`[data-test=add-file]`)), chromedp.WaitVisible(css(`[data-test=editor]`)))
		adm.setEditor(badJSON)
		adm.waitFor("an error marker in the gutter", `document.querySelector('[data-test=editor] .cm-lint-marker-error') !== null`)
		if got := adm.lintLines(); got != "4" {
			t.Errorf("lint marks line %q, want 4", got)
		}
		if got := adm.text(`[data-test=editor-errors] li`); !strings.HasPrefix(got, "Line 4, column 1:") {
			t.Errorf("error text = %q, want it to start with the line and column", got)
		}
		if !evalJS[bool](adm, `document.querySelector('[data-test=review]').disabled`) {
			t.Error("publish is enabled while the JSON does not parse")
		}
		adm.shot("02-editor-error")
	})

	step("publish valid content after reviewing the diff", func(t *testing.T) {
		adm.setEditor(appV1)
		adm.waitFor("the error to clear", `!document.querySelector('[data-test=editor] .cm-lint-marker-error') && !document.querySelector('[data-test=review]').disabled`)
		adm.do(chromedp.Click(css(`[data-test=review]`)), chromedp.WaitVisible(css(`[data-test=publish-diff]`)))
		if got := adm.text(`[data-test=publish-diff]`); !strings.Contains(got, `+  "port": 8080`) || !strings.Contains(got, "added") {
			t.Errorf("publish diff = %q, want the added file's lines", got)
		}
		adm.shot("03-publish-diff")
		adm.typeInto(`.modal [data-test=message]`, "first config for orders")
		adm.do(chromedp.Click(css(`[data-test=confirm-publish]`)))
		adm.waitFor("revision 1", `document.querySelector('[data-test=head-revision]').textContent === 'revision 1'`)
		if got := fileAt(t, c.store, "orders", "app.json", 1); got != appV1 {
			t.Errorf("stored app.json = %q, want %q", got, appV1)
		}
	})

	step("server validation errors are shown at their line before publishing", func(t *testing.T) {
		// The browser checks JSON, YAML and TOML itself; an env file is left to the server.
		adm.typeInto(`[data-test=new-file]`, "bad.env")
		adm.do(chromedp.Click(css(`[data-test=add-file]`)), chromedp.WaitVisible(css(`[data-file="bad.env"]`)))
		adm.setEditor("A=1\nnot a pair\n")
		// The review's dry run finds what the browser did not check: the
		// dialog lists it, publishing is disabled, the editor marks it.
		adm.do(chromedp.Click(css(`[data-test=review]`)), chromedp.WaitVisible(css(`[data-test=dry-run-violations]`)))
		if got := adm.text(`[data-test=dry-run-violations]`); !strings.Contains(got, "bad.env:2") || !strings.Contains(got, "(format)") {
			t.Errorf("dry run violations = %q, want bad.env's parse error at line 2", got)
		}
		if !evalJS[bool](adm, `document.querySelector('[data-test=confirm-publish]').disabled`) {
			t.Error("publish is enabled although the dry run found a violation")
		}
		adm.waitFor("the server's error in the editor", `[...document.querySelectorAll('[data-test=editor-errors] li')].some((li) => li.textContent.includes('(server)'))`)
		if got := adm.lintLines(); got != "2" {
			t.Errorf("lint marks lines %q, want line 2, the one the server named", got)
		}
		if rev := headRevision(t, c.store, "orders"); rev != 1 {
			t.Errorf("head moved to %d after a dry run", rev)
		}
		adm.do(chromedp.Click(css(`.modal .actions button`)), chromedp.WaitNotPresent(css(`.modal`)))
		adm.shotAsIs("04-server-error")
		adm.do(chromedp.Click(css(`[data-test=revert-file]`)))
		adm.waitFor("the draft file to go", `!document.querySelector('[data-file="bad.env"]')`)
	})

	step("publish two files in one revision", func(t *testing.T) {
		adm.do(chromedp.Click(css(`[data-file="app.json"]`)))
		adm.setEditor(appV2)
		adm.typeInto(`[data-test=new-file]`, "limits.toml")
		adm.do(chromedp.Click(css(`[data-test=add-file]`)), chromedp.WaitVisible(css(`[data-file="limits.toml"]`)))
		adm.setEditor(limitsV1)
		if got := adm.text(`[data-test=change-count]`); got != "2 unpublished changes" {
			t.Errorf("change count = %q", got)
		}
		adm.do(chromedp.Click(css(`[data-test=review]`)), chromedp.WaitVisible(css(`[data-test=publish-diff]`)))
		if n := adm.count(`[data-test=publish-diff] .diff`); n != 2 {
			t.Errorf("review shows %d file diffs, want 2", n)
		}
		adm.typeInto(`.modal [data-test=message]`, "move to port 9090, add limits")
		adm.do(chromedp.Click(css(`[data-test=confirm-publish]`)))
		adm.waitFor("revision 2", `document.querySelector('[data-test=head-revision]').textContent === 'revision 2'`)
		if got := fileAt(t, c.store, "orders", "app.json", 2); got != appV2 {
			t.Errorf("stored app.json = %q, want %q", got, appV2)
		}
		if got := fileAt(t, c.store, "orders", "limits.toml", 2); got != limitsV1 {
			t.Errorf("stored limits.toml = %q, want %q", got, limitsV1)
		}
	})

	step("history diffs any two revisions", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/services/orders/history"), chromedp.WaitVisible(css(`[data-revision="1"]`)))
		if got := adm.text(`[data-revision="2"]`); !strings.Contains(got, "move to port 9090") || !strings.Contains(got, "app.json") || !strings.Contains(got, "limits.toml") {
			t.Errorf("revision 2 row = %q, want its message and file", got)
		}
		adm.do(chromedp.Click(css(`[data-test=changes-2]`)))
		adm.waitFor("the changes of revision 2", `document.querySelector('[data-test=diff-out] h2')?.textContent === 'Revision 1 → 2'`)
		got := adm.text(`[data-test=diff-out]`)
		if !strings.Contains(got, `-  "port": 8080`) || !strings.Contains(got, `+  "port": 9090`) || !strings.Contains(got, `+rps = 100`) {
			t.Errorf("diff 1→2 = %q, want the port change and the added limits", got)
		}
		// Any two, in either direction: pick them by hand.
		adm.do(chromedp.Click(css(`[data-test=from-2]`)), chromedp.Click(css(`[data-test=to-1]`)), chromedp.Click(css(`[data-test=compare]`)))
		adm.waitFor("the diff 2 → 1", `document.querySelector('[data-test=diff-out] h2')?.textContent === 'Revision 2 → 1'`)
		got = adm.text(`[data-test=diff-out]`)
		if !strings.Contains(got, `-  "port": 9090`) || !strings.Contains(got, `+  "port": 8080`) {
			t.Errorf("diff 2→1 = %q, want the port change reversed", got)
		}
		adm.do(chromedp.Click(css(`[data-test=changes-2]`)))
		adm.waitFor("the diff 1 → 2 again", `document.querySelector('[data-test=diff-out] h2')?.textContent === 'Revision 1 → 2'`)
		adm.shot("05-history-diff")
	})

	step("rollback of one file shows the diff it applies and restores the content", func(t *testing.T) {
		adm.do(chromedp.Click(css(`[data-test=rollback-1]`)), chromedp.WaitVisible(css(`[data-test=rollback-diff] .diff`)))
		if n := adm.count(`[data-test=rollback-diff] .diff`); n != 2 {
			t.Errorf("whole-service rollback shows %d file diffs, want app.json and limits.toml", n)
		}
		adm.choose(`[data-test=rollback-scope]`, "app.json")
		adm.waitFor("the one-file diff", `document.querySelectorAll('[data-test=rollback-diff] .diff').length === 1`)
		got := adm.text(`[data-test=rollback-diff]`)
		if !strings.Contains(got, `-  "port": 9090`) || !strings.Contains(got, `+  "port": 8080`) {
			t.Errorf("rollback confirmation diff = %q, want live 9090 → 8080", got)
		}
		adm.waitFor("the dry run of the one-file rollback", `document.querySelector('[data-test=rollback-dry-run] [data-test=dry-run-valid]') !== null && !document.querySelector('[data-test=confirm-rollback]').disabled`)
		if got := adm.text(`[data-test=rollback-dry-run] [data-test=blast-radius]`); !strings.Contains(got, "Reaches 1 service") || !strings.Contains(got, "orders (0)") {
			t.Errorf("rollback blast radius = %q, want orders and no instance", got)
		}
		adm.shot("06-rollback-confirm")
		adm.do(chromedp.Click(css(`[data-test=confirm-rollback]`)), chromedp.WaitVisible(css(`[data-revision="3"]`)))
		if rev := headRevision(t, c.store, "orders"); rev != 3 {
			t.Fatalf("head = %d after rollback, want 3", rev)
		}
		if got := fileAt(t, c.store, "orders", "app.json", 3); got != appV1 {
			t.Errorf("app.json after rollback = %q, want revision 1's %q", got, appV1)
		}
		if got := fileAt(t, c.store, "orders", "limits.toml", 3); got != limitsV1 {
			t.Errorf("limits.toml after a rollback of app.json only = %q, want it kept", got)
		}
		adm.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(css(`[data-test=editor]`)))
		if got := adm.editorText(); got != appV1 {
			t.Errorf("editor shows %q after rollback, want %q", got, appV1)
		}
	})

	step("an open editor notices a concurrent publish and does not overwrite it", func(t *testing.T) {
		adm.setEditor(appV3)
		_, err := c.store.Publish(ctx, configsvc.Service("orders"), configsvc.Changeset{Base: 3, Author: "olga", Message: "hotfix from the CLI",
			Changes: []configsvc.Change{{File: "app.json", Content: []byte(appV4)}}})
		if err != nil {
			t.Fatalf("concurrent publish: %v", err)
		}
		adm.waitFor("the notice about revision 4", `document.querySelector('[data-test=remote-change]')?.textContent.includes('Revision 4 was published by olga')`)
		adm.shot("07-live-change")
		// The review's dry run already finds the stale base.
		adm.do(chromedp.Click(css(`[data-test=review]`)))
		adm.waitFor("the conflict diff", `document.querySelector('[data-test=conflict-diff] .diff') !== null`)
		got := adm.text(`[data-test=conflict-diff]`)
		if !strings.Contains(got, `-  "port": 6060`) || !strings.Contains(got, `+  "port": 7070`) {
			t.Errorf("conflict diff = %q, want live 6060 against my 7070", got)
		}
		// The other person's change, with who made it (issue 17: the dialog did not show it).
		their := adm.text(`[data-test=their-change]`)
		if !strings.Contains(their, `-  "port": 8080`) || !strings.Contains(their, `+  "port": 6060`) {
			t.Errorf("their change = %q, want revision 3 → 4: port 8080 → 6060", their)
		}
		if got := adm.text(`[data-test=their-revisions]`); !strings.Contains(got, "Revision 4 by olga") || !strings.Contains(got, "hotfix from the CLI") {
			t.Errorf("their revisions = %q, want revision 4 by olga with its message", got)
		}
		// Their change side by side too (the merge view), and back.
		adm.do(chromedp.Click(css(`[data-test=their-change] [data-test=side-by-side]`)))
		adm.waitFor("their change side by side", `document.querySelectorAll('[data-test=their-change] .cm-mergeView .cm-editor').length === 2`)
		sides := evalJS[[]string](adm, `import('./vendor/codemirror.js').then((cm) => [...document.querySelectorAll('[data-test=their-change] .cm-mergeView .cm-editor')].map((e) => cm.EditorView.findFromDOM(e).state.doc.toString()))`)
		if len(sides) != 2 || sides[0] != appV1 || sides[1] != appV4 {
			t.Errorf("their change side by side = %q, want revision 3 (%q) beside revision 4 (%q)", sides, appV1, appV4)
		}
		adm.do(chromedp.Click(css(`[data-test=their-change] [data-test=side-by-side]`)))
		adm.waitFor("their change unified", `document.querySelector('[data-test=their-change] .cm-mergeView') === null`)
		adm.shot("07b-conflict")
		if got := fileAt(t, c.store, "orders", "app.json", 0); got != appV4 {
			t.Fatalf("the stale publish overwrote revision 4: %q", got)
		}
		adm.do(chromedp.Click(css(`[data-test=rebase]`)))
		adm.waitFor("revision 4 as the base", `document.querySelector('[data-test=head-revision]').textContent === 'revision 4'`)
		adm.publish("port 7070 on top of the hotfix")
		adm.waitFor("revision 5", `document.querySelector('[data-test=head-revision]').textContent === 'revision 5'`)
		if got := fileAt(t, c.store, "orders", "app.json", 5); got != appV3 {
			t.Errorf("app.json at 5 = %q, want %q", got, appV3)
		}
	})

	step("instances update live with applied and rejected revisions", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/services/orders/instances"), chromedp.WaitVisible(css(`[data-test=instances]`)))
		adm.waitFor("the live stream", `document.querySelector('[data-test=live-state]').textContent === 'live'`)
		now := time.Now().UTC()
		for _, in := range []configsvc.Instance{
			{Service: "orders", ID: "orders-7", Addr: "127.0.0.1:9007", Labels: map[string]string{"zone": "a"}, Revision: 5, Status: configsvc.StatusApplied, Started: now, Updated: now},
			{Service: "orders", ID: "orders-8", Addr: "127.0.0.1:9008", Revision: 4, Status: configsvc.StatusRejected, Rejected: 5, Error: "port: out of range", Started: now, Updated: now},
		} {
			lease, err := c.store.Register(ctx, in)
			if err != nil {
				t.Fatalf("register %s: %v", in.ID, err)
			}
			top.Cleanup(func() { _ = lease.Close() })
		}
		adm.waitFor("both instances", `document.querySelectorAll('[data-instance]').length === 2`)
		if got := adm.text(`[data-instance="orders-8"]`); !strings.Contains(got, "rejected") || !strings.Contains(got, "port: out of range") {
			t.Errorf("rejected instance row = %q, want status and reason", got)
		}
		if got := adm.text(`[data-test=instance-summary-text]`); got != "2 instances · 1 on revision 5 · 0 older · 1 rejected · 0 starting" {
			t.Errorf("summary = %q", got)
		}
		adm.shot("08-instances")
		adm.do(chromedp.Navigate(c.url+"#/services"), chromedp.WaitVisible(css(`[data-service=orders]`)))
		if got := adm.text(`[data-service=orders]`); !strings.Contains(got, "1 current") || !strings.Contains(got, "1 rejected") || !strings.Contains(got, "admin") {
			t.Errorf("services row = %q, want revision, author and instance states", got)
		}
		adm.shot("09-services")
	})

	step("a shared group shows the services it reaches before publishing", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/shared"), chromedp.WaitVisible(css(`[data-test=groups]`)))
		adm.typeInto(`[data-test=new-name]`, "redis-common")
		adm.do(chromedp.Click(css(`[data-test=create]`)))
		adm.waitFor("the group page", `document.querySelector('[data-test=title]')?.textContent === 'redis-common'`)
		if err := c.store.Link(ctx, "orders", "redis-common"); err != nil {
			t.Fatalf("link: %v", err)
		}
		adm.typeInto(`[data-test=new-file]`, "redis.yaml")
		adm.do(chromedp.Click(css(`[data-test=add-file]`)), chromedp.WaitVisible(css(`[data-test=editor]`)))
		adm.setEditor("addr: 127.0.0.1:6379\n")
		adm.do(chromedp.Click(css(`[data-test=review]`)), chromedp.WaitVisible(css(`[data-test=blast-radius]`)))
		if got := adm.text(`[data-test=blast-radius]`); !strings.Contains(got, "orders (2)") {
			t.Errorf("affected services = %q, want orders", got)
		}
		adm.shot("10-shared-publish")
		adm.do(chromedp.Click(css(`[data-test=confirm-publish]`)))
		adm.waitFor("revision 1", `document.querySelector('[data-test=head-revision]').textContent === 'revision 1'`)
		adm.do(chromedp.Navigate(c.url+"#/services/orders/links"), chromedp.WaitVisible(css(`[data-test=tab-links] a[href="#/shared/redis-common"]`)))
	})

	step("create a pin from the live registry, then revoke it", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/pins"), chromedp.WaitVisible(css(`[data-test=pin-service]`)))
		adm.choose(`[data-test=pin-service]`, "orders")
		adm.waitFor("the instances of orders", `[...document.querySelectorAll('[data-test=pin-instance] option')].some((o) => o.value === 'orders-7')`)
		adm.choose(`[data-test=pin-instance]`, "orders-7")
		adm.typeInto(`[data-test=pin-note]`, "debugging ticket 42")
		adm.do(chromedp.Click(css(`[data-test=pin-create]`)), chromedp.WaitVisible(css(`[data-test=pin-token]`)))
		token := adm.text(`[data-test=pin-token]`)
		if !strings.HasPrefix(token, "slp_") {
			t.Fatalf("pin token = %q, want an slp_ token", token)
		}
		if got := adm.text(`[data-test=pin-curl]`); !strings.Contains(got, "X-Sluice-Pin: "+token) {
			t.Errorf("curl line = %q, want the pin header", got)
		}
		adm.waitFor("the pin in the list", `document.querySelector('[data-pin]') !== null`)
		adm.shot("11-pin-created")
		id := evalJS[string](adm, `document.querySelector('[data-pin]').dataset.pin`)
		adm.do(chromedp.Click(css(`[data-test=revoke-`+id+`]`)), chromedp.WaitVisible(css(`[data-test=confirm-revoke]`)),
			chromedp.Click(css(`[data-test=confirm-revoke]`)))
		adm.waitFor("the revoked state", fmt.Sprintf(`document.querySelector('[data-pin=%q] [data-test=pin-state]')?.textContent === 'revoked'`, id))
		pins, err := c.api.Pins(context.Background())
		if err != nil || len(pins) != 1 || pins[0].ID != id || pins[0].State != api.PinRevoked {
			t.Errorf("server pins = %+v, %v; want %s revoked", pins, err, id)
		}
		adm.shot("12-pins")
	})

	step("audit log lists what happened, filtered by service", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/audit"), chromedp.WaitVisible(css(`[data-test=audit] tbody tr`)))
		adm.typeInto(`[data-test=audit-service]`, "orders")
		adm.do(chromedp.Click(css(`[data-test=audit-filter]`)))
		// Before the filter applies the table also lists the group and the pins.
		adm.waitFor("entries of orders only", `(() => { const rows = [...document.querySelectorAll('[data-test=audit] tbody tr')];
			return rows.some((r) => r.textContent.includes('rollback')) && !rows.some((r) => r.textContent.includes('redis-common') || r.textContent.includes('pin/')); })()`)
		got := adm.text(`[data-test=audit]`)
		// (A refused publish no longer reaches the audit log from here: the
		// review's dry run catches invalid content before publishing.)
		for _, want := range []string{"publish", "rollback", "create"} {
			if !strings.Contains(got, want) {
				t.Errorf("audit table lacks %q: %q", want, got)
			}
		}
		adm.shot("13-audit")
	})

	step("routes page offers to create sluice-system", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/routes"), chromedp.WaitVisible(css(`[data-test=create-routes]`)),
			chromedp.Click(css(`[data-test=create-routes]`)))
		adm.waitFor("the routes workspace", `document.querySelector('[data-test=title]')?.textContent === 'Routes'`)
		if rev := headRevision(t, c.store, configsvc.SystemService); rev != 0 {
			t.Errorf("sluice-system at revision %d, want 0", rev)
		}
	})

	step("the live route table shows each proxy's rate limits and breakers, and stale proxies", func(t *testing.T) {
		checkLiveRoutes(t, c, adm)
	})

	step("a viewer sees no edit controls and refusals show the server's message", func(t *testing.T) {
		vw = newTab(t, browser, c.url)
		vw.t = t
		vw.signIn(c.viewer)
		vw.do(chromedp.WaitVisible(css(`[data-service=orders]`)))
		if n := vw.count(`[data-test=new-name]`); n != 0 {
			t.Error("viewer is offered to create a service")
		}
		if n := vw.count(`[data-nav=audit]`); n != 0 {
			t.Error("viewer sees the admin-only audit link")
		}
		vw.do(chromedp.Navigate(c.url+"#/services/orders"), chromedp.WaitVisible(css(`[data-test=editor]`)))
		if !vw.editorReadOnly() {
			t.Error("viewer's editor is writable")
		}
		for _, sel := range []string{`[data-test=review]`, `[data-test=add-file]`, `[data-test=delete-file]`} {
			if n := vw.count(sel); n != 0 {
				t.Errorf("viewer sees %s", sel)
			}
		}
		if n := vw.count(`[data-test=read-only]`); n != 1 {
			t.Error("viewer's page is not marked read only")
		}
		vw.shot("14-viewer")
		vw.do(chromedp.Navigate(c.url+"#/services/orders/history"), chromedp.WaitVisible(css(`[data-revision="5"]`)))
		if n := vw.count(`[data-test^=rollback-]`); n != 0 {
			t.Errorf("viewer sees %d rollback buttons", n)
		}
		vw.do(chromedp.Navigate(c.url+"#/pins"), chromedp.WaitVisible(css(`[data-test=pins] tbody tr`)))
		if n := vw.count(`[data-test=pin-create]`) + vw.count(`[data-test^=revoke-]`); n != 0 {
			t.Errorf("viewer sees %d pin controls", n)
		}
		vw.do(chromedp.Navigate(c.url + "#/audit"))
		vw.waitFor("the refusal", `document.querySelector('[data-test=flash] .msg.error') !== null`)
		if got := vw.text(`[data-test=flash] .msg.error`); !strings.Contains(got, "403") {
			t.Errorf("refusal = %q, want the server's 403 message", got)
		}
	})

	step("a session that ends during an edit keeps the edit", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(css(`[data-test=editor]`)))
		adm.setEditor(appV2)
		// End the session behind the console's back, as an expiry would.
		if st := evalJS[int](adm, `fetch('/v1/session', { method: 'DELETE', headers: { 'X-Sluice-CSRF': document.cookie.match(/sluice_csrf=([^;]+)/)[1] } }).then((r) => r.status)`); st != 204 && st != 200 {
			t.Fatalf("DELETE /v1/session = %d", st)
		}
		// The review's dry run meets the ended session: the console asks to
		// sign in again instead of opening the publish dialog.
		adm.do(chromedp.Click(css(`[data-test=review]`)), chromedp.WaitVisible(css(`[data-test=reauth-token]`)))
		if n := adm.count(`[data-test=confirm-publish]`); n != 0 {
			t.Error("the publish dialog opened although the session ended")
		}
		if got := adm.editorText(); got != appV2 {
			t.Errorf("editor holds %q after the session ended, want the unpublished %q", got, appV2)
		}
		adm.shot("15-reauth")
		adm.typeInto(`[data-test=reauth-token]`, c.admin)
		adm.do(chromedp.Click(css(`[data-test=reauth]`)), chromedp.WaitNotPresent(css(`[data-test=reauth-token]`)))
		adm.publish("after signing in again")
		adm.waitFor("revision 6", `document.querySelector('[data-test=head-revision]').textContent === 'revision 6'`)
		if got := fileAt(t, c.store, "orders", "app.json", 6); got != appV2 {
			t.Errorf("app.json at 6 = %q, want %q", got, appV2)
		}
	})

	step("sign out ends the session", func(t *testing.T) {
		adm.do(chromedp.Navigate(c.url+"#/services"), chromedp.WaitVisible(css(`[data-test=signout]`)),
			chromedp.Click(css(`[data-test=signout]`)), chromedp.WaitVisible(css(`[data-test=token]`)))
		if st := evalJS[int](adm, `fetch('/v1/whoami').then((r) => r.status)`); st != 401 {
			t.Errorf("whoami after sign-out = %d, want 401", st)
		}
	})
}

// TestClientDiffAndJSONCheck runs the console's diff and JSON checker inside
// Chromium: a diff must rebuild both texts, and checkJSON must agree with the
// browser's own JSON.parse on valid and invalid documents.
func TestClientDiffAndJSONCheck(t *testing.T) {
	c := startConsole(t)
	b := newTab(t, startBrowser(t), c.url)
	b.do(chromedp.Navigate(c.url), chromedp.WaitVisible(chromedp.CSS(`[data-test=token]`)))
	bad := evalJS[string](b, `Promise.all([import('./js/diff.js'), import('./js/validate.js')]).then(([d, v]) => {
		let seed = 7;
		const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
		const text = () => Array.from({ length: rnd(14) }, () => 'l' + rnd(4)).join('\n');
		for (let i = 0; i < 3000; i++) {
			const a = text(), b = text();
			const ops = d.diffLines(a, b);
			const A = ops.filter((o) => o.t !== '+').map((o) => o.s).join('\n');
			const B = ops.filter((o) => o.t !== '-').map((o) => o.s).join('\n');
			if (A !== a || B !== b) return 'diff does not rebuild ' + JSON.stringify([a, b]);
		}
		const docs = ['{}', '[]', '0', '-1.5e3', '"a\\u00e9"', '{"a":[1,{"b":null}]}', ' true ', '{"a":1,}', '[1,]', '', '{a:1}',
			"{'a':1}", '01', '1.', '"\t"', '{"a" 1}', '[1 2]', 'nul', '"\\x"', '{"a":1}}', '\u00a0{}'];
		for (const s of docs) {
			let ok = true;
			try { JSON.parse(s); } catch (_) { ok = false; }
			if ((v.checkJSON(s) === null) !== ok) return 'checkJSON disagrees with JSON.parse on ' + JSON.stringify(s);
		}
		return '';
	})`)
	if bad != "" {
		t.Error(bad)
	}
}
