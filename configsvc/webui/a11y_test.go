package webui_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Accessibility, keyboard use and narrow screens (issue 17): axe-core
// (vendored in testdata/axe by vendor/build.sh) on every page and dialog at
// 1400 px and at 360 px, with zero serious or critical violations; nothing
// wider than the window at 360 px.

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile("testdata/axe/axe.min.js")
	return string(b), err
})

// axeViolation is one rule axe-core found broken, with where.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// axe runs axe-core on the page as it is now (WCAG 2.0, 2.1 and 2.2 A and
// AA, and axe's best practices) and fails the test on every serious or
// critical violation. axe is put into the page through the DevTools
// protocol, past the console's CSP: the console itself never loads it.
func (b *tab) axe(what string) {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		b.t.Fatalf("axe-core: %v (run vendor/build.sh)", err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if !evalJS[bool](b, `typeof window.axe === 'object'`) {
		if _, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: src}); err != nil {
			b.t.Fatalf("load axe-core: %v", err)
		}
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {
			runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
			resultTypes: ['violations'],
		}).then((r) => JSON.stringify(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => ({
			id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.slice(0, 6).map((n) => n.target.join(' ') + ' — ' + (n.failureSummary || '').replace(/\s+/g, ' ')),
		}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe on %s: %v", what, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(res), &vs); err != nil {
		b.t.Fatalf("axe on %s: %v", what, err)
	}
	for _, v := range vs {
		b.t.Errorf("axe, %s: %s (%s): %s\n\t%s", what, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
	}
}

// fitsWidth fails the test when the page is wider than the window (the
// user would scroll the whole page sideways); tables and code scroll inside
// their own boxes.
func (b *tab) fitsWidth(what string) {
	b.t.Helper()
	got := evalJS[string](b, `(() => {
		const w = document.documentElement.clientWidth, sw = document.documentElement.scrollWidth;
		if (sw <= w) return '';
		// What reaches the right edge of the page widens it.
		const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right >= sw - 2)
			.slice(-5).map((e) => e.tagName.toLowerCase() + (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\s+/).join('.') : '') + ' (' + Math.round(e.getBoundingClientRect().width) + ' px wide)');
		return 'page ' + sw + ' px wide in a ' + w + ' px window: ' + wide.join(', ');
	})()`)
	if got != "" {
		b.t.Errorf("%s at %d px: %s", what, evalJS[int](b, `window.innerWidth`), got)
	}
}

// richConsole is a console with something on every page: a service with
// three files in two revisions, instances, a linked group, routes, a pin, a
// token, audit entries, governance (an approval policy on payments, an
// emergency change there and a change request waiting for approval) and
// grays (c.grays: an active gray of orders that orders-1 applied and
// orders-2 rejected, one whose rollout the acks gate aborted, and an
// active gray of the group redis-common).
func richConsole(t *testing.T) *console {
	t.Helper()
	c := startConsole(t)
	ctx := context.Background()
	mustService(t, c, "orders", map[string]string{"app.json": appV1, "limits.toml": limitsV1, "db.yaml": "host: db.internal\nport: 5432\n"})
	rev, err := c.api.PutFile(ctx, configsvc.Service("orders"), "app.json", []byte(appV2))
	if err != nil {
		t.Fatal(err)
	}
	mustService(t, c, "payments", map[string]string{"cache.env": "CACHE=redis.internal:6379\n", "app.properties": "a.b=1\n"})
	g := configsvc.Group("redis-common")
	if _, _, err := c.api.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.PutFile(ctx, g, "redis.yaml", []byte("addr: 10.0.0.1:6379\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.Link(ctx, "orders", "redis-common"); err != nil {
		t.Fatal(err)
	}
	mustService(t, c, configsvc.SystemService, map[string]string{configsvc.RoutesFile: "routes:\n  - name: api\n    match: {path_prefix: /api}\n    upstream: {service: orders}\n"})
	c.grays = richGrays(t, c)
	now := time.Now().UTC()
	for _, in := range []configsvc.Instance{
		{Service: "orders", ID: "orders-1", Addr: "127.0.0.1:9001", Labels: map[string]string{"zone": "a"}, Revision: rev.Number, Status: configsvc.StatusApplied, Started: now.Add(-time.Hour), Updated: now,
			Grays: map[string]configsvc.GrayStatus{c.grays[0]: {Status: configsvc.GrayApplied, Version: 1}, c.grays[2]: {Status: configsvc.GrayApplied, Version: 1}}},
		{Service: "orders", ID: "orders-2", Addr: "127.0.0.1:9002", Revision: rev.Number - 1, Status: configsvc.StatusRejected, Rejected: rev.Number, Error: "port: out of range", Started: now, Updated: now,
			Grays: map[string]configsvc.GrayStatus{c.grays[0]: {Status: configsvc.GrayRejected, Reason: "host: must not be empty", Version: 1}}},
	} {
		lease, err := c.store.Register(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lease.Close() })
	}
	if _, err := c.api.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "orders-1"}, TTL: "1h", Note: "ticket 42"}); err != nil {
		t.Fatal(err)
	}
	payments := configsvc.Service("payments")
	if _, err := c.api.PutPolicy(ctx, api.Policy{Name: "pay", Pattern: "payments", Approvals: 1, ApproverRole: "editor", DeclineBlocks: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.PutFile(ctx, payments, "cache.env", []byte("CACHE=redis.internal:6380\n"), api.WithEmergency("incident 7: cache moved")); err != nil {
		t.Fatal(err)
	}
	var pending *api.Pending
	if _, err := c.api.PutFile(ctx, payments, "app.properties", []byte("a.b=2\n"), api.WithMessage("raise a.b")); !errors.As(err, &pending) {
		t.Fatalf("a publish under the policy: %v, want a change request", err)
	}
	return c
}

// badEnv is payments' cache.env with a line the server refuses (line 2): the
// browser does not check env files, the review's dry run does.
const badEnv = "CACHE=redis.internal:6380\nnot a pair\n"

// richChange is the address of the change request richConsole leaves open.
func richChange(t *testing.T, c *console) string {
	t.Helper()
	crs, err := c.api.Changes(context.Background(), configsvc.Service("payments"), false)
	if err != nil || len(crs) != 1 {
		t.Fatalf("change requests of payments: %+v, %v", crs, err)
	}
	return "#/changes/service/payments/" + crs[0].ID
}

// richGrays makes the grays of richConsole and returns their ids: an
// active gray of orders (db.yaml, for orders-2 and zone=a), one of orders
// whose rollout was aborted by the acks gate (limits.toml; recorded as the
// rollout driver records it), and an active gray of redis-common for
// orders-1.
func richGrays(t *testing.T, c *console) []string {
	t.Helper()
	ctx := context.Background()
	orders := configsvc.Service("orders")
	active, err := c.api.CreateGray(ctx, orders, api.GrayRequest{Name: "db in zone a", Message: "db.internal → db-a.internal",
		Changes:  []api.Change{api.PutChange("db.yaml", []byte("host: db-a.internal\nport: 5432\n"))},
		Selector: api.Selector{Instances: []string{"orders-2"}, Labels: []map[string]string{{"zone": "a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	aborted, err := c.api.CreateGray(ctx, orders, api.GrayRequest{Name: "more rps", Changes: []api.Change{api.PutChange("limits.toml", []byte("[limits]\nrps = 400\n"))},
		Selector: api.Selector{Labels: []map[string]string{{"zone": "a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.api.StartRollout(ctx, orders, aborted.ID, api.RolloutRequest{Steps: []api.RolloutStep{{Percent: 10, Bake: configsvc.Duration(time.Minute)},
		{Percent: 100, Bake: configsvc.Duration(time.Minute)}}, MaxErrorRate: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	why := "acks gate failed at step 1 (10 %): 1 cohort instances rejected the gray (max 0): orders-2: rps: above the plan"
	g, err = c.store.UpdateGray(ctx, orders, g.ID, g.Version, func(x *configsvc.Gray) error {
		x.Rollout.State.State, x.Rollout.State.Reason, x.Rollout.State.Since = configsvc.RolloutAborted, why, time.Now().UTC()
		x.Rollout.State.Failed = &configsvc.GateFailure{Gate: configsvc.GateAcks, Instances: []string{"orders-2"}, Figures: map[string]float64{"rejected": 1, "max_rejected": 0}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.store.EndGray(ctx, orders, g.ID, g.Version, configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: why}); err != nil {
		t.Fatal(err)
	}
	group, err := c.api.CreateGray(ctx, configsvc.Group("redis-common"), api.GrayRequest{Changes: []api.Change{api.PutChange("redis.yaml", []byte("addr: 10.0.0.2:6379\n"))},
		Selector: api.Selector{Instances: []string{"orders-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return []string{active.ID, aborted.ID, group.ID}
}

// grayPages are the addresses of the gray pages over the data of richConsole.
func grayPages(c *console) []string {
	return []string{"#/services/orders/grays", "#/services/orders/grays/" + c.grays[0], "#/services/orders/grays/" + c.grays[1],
		"#/shared/redis-common/grays", "#/shared/redis-common/grays/" + c.grays[2]}
}

// consolePages are the addresses of every page of the console, over the
// data of richConsole (and grayPages).
var consolePages = []string{
	"#/services", "#/services/orders/files", "#/services/orders/history", "#/services/orders/instances",
	"#/services/orders/links", "#/services/orders/effective", "#/services/orders/revisions/2", "#/services/orders/revisions/1/app.json",
	"#/services/payments/files", "#/shared", "#/shared/redis-common/files", "#/shared/redis-common/users",
	"#/routes", "#/routes/history", "#/changes", "#/changes?all=true", "#/pins", "#/search?q=port", "#/audit", "#/tokens", "#/no-such-page",
}

// pageReady waits until the page at the current address has rendered
// (its loading line is gone), and a moment for what it loads after.
func (b *tab) pageReady(hash string) {
	b.t.Helper()
	b.waitFor("the page "+hash, `document.querySelector('main .view') !== null && !document.querySelector('main .view > [role=status]')?.textContent.startsWith('Loading')`)
	b.waitFor("the page "+hash+" to settle", `![...document.querySelectorAll('[role=status]')].some((e) => e.textContent === 'Loading…')`)
}

// TestAccessibilityEveryPage runs axe-core on every page and dialog of the
// console, signed in as an admin (who sees every control), at 1400 px and
// at 360 px, and checks that no page is wider than a 360 px window.
func TestAccessibilityEveryPage(t *testing.T) {
	c := richConsole(t)
	browser := startBrowser(t)
	for _, width := range []int64{1400, 360} {
		t.Run(fmt.Sprintf("%dpx", width), func(t *testing.T) {
			b := newTab(t, browser, c.url)
			b.do(chromedp.EmulateViewport(width, 800))
			b.do(chromedp.Navigate(c.url), chromedp.WaitVisible(chromedp.CSS(`[data-test=token]`)))
			b.axe("sign-in")
			b.fitsWidth("sign-in")
			b.signIn(c.admin)
			for _, hash := range append(append(slices.Clone(consolePages), richChange(t, c)), grayPages(c)...) {
				b.do(chromedp.Navigate(c.url + hash))
				b.pageReady(hash)
				b.axe(hash)
				b.fitsWidth(hash)
			}
			// Dialogs: review before publishing (the dry run's panel with
			// the instances it reaches; the side-by-side view), the same
			// under an approval policy with violations and the emergency
			// option, rollback with its dry run, deleting a service.
			b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
			b.setEditor(appV3)
			b.waitFor("publish offered", `document.querySelector('[data-test=review]')?.disabled === false`)
			b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=publish-diff] .diff`)),
				chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=dry-run-instances]`)))
			b.axe("the publish dialog")
			b.fitsWidth("the publish dialog")
			b.do(chromedp.Click(chromedp.CSS(`.modal [data-test=side-by-side]`)), chromedp.WaitVisible(chromedp.CSS(`.modal .cm-mergeView`)))
			b.axe("the publish dialog, side by side")
			b.fitsWidth("the publish dialog, side by side")
			b.do(chromedp.Click(chromedp.CSS(`[data-test=reach-gray]`)), chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=sel-preview]`)))
			b.typeInto(`.modal [data-test=sel-percent]`, "10")
			b.waitFor("the percent's preview", `document.querySelector('[data-test=sel-summary]').textContent.startsWith('about')`)
			b.axe("the publish dialog, as a gray")
			b.fitsWidth("the publish dialog, as a gray")
			b.do(chromedp.KeyEvent("\u001b"))
			b.waitFor("the dialog closed", `!document.querySelector('.modal')`)
			b.do(chromedp.Click(chromedp.CSS(`[data-test=revert-file]`)))
			b.do(chromedp.Navigate(c.url+"#/services/payments/files?file=cache.env"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
			b.setEditor(badEnv)
			b.waitFor("publish offered", `document.querySelector('[data-test=review]')?.disabled === false`)
			b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=dry-run-violations]`)),
				chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=needs-approval]`)), chromedp.Click(chromedp.CSS(`.modal [data-test=emergency]`)),
				chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=emergency-reason]`)))
			b.axe("the publish dialog under a policy, with violations and the emergency reason")
			b.fitsWidth("the publish dialog under a policy")
			b.do(chromedp.KeyEvent("\u001b"))
			b.waitFor("the dialog closed", `!document.querySelector('.modal')`)
			b.do(chromedp.Click(chromedp.CSS(`[data-test=revert-file]`)))
			b.do(chromedp.Navigate(c.url+"#/services/orders/history"), chromedp.WaitVisible(chromedp.CSS(`[data-test=rollback-1]`)),
				chromedp.Click(chromedp.CSS(`[data-test=rollback-1]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=rollback-diff] .diff`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-test=rollback-dry-run] [data-test=dry-run]`)))
			b.axe("the rollback dialog")
			b.fitsWidth("the rollback dialog")
			b.do(chromedp.KeyEvent("\u001b"))
			b.do(chromedp.Navigate(c.url+"#/services/payments"), chromedp.WaitVisible(chromedp.CSS(`[data-test=delete-service]`)),
				chromedp.Click(chromedp.CSS(`[data-test=delete-service]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=confirm-name]`)))
			b.waitFor("the blast radius", `!document.querySelector('[data-test=blast-radius]').textContent.startsWith('Looking')`)
			b.axe("the delete dialog")
			b.fitsWidth("the delete dialog")
			b.do(chromedp.KeyEvent("\u001b"))
			// A gray's dialogs: widen, promote (refused: not ready), abandon, rollout.
			b.do(chromedp.Navigate(c.url+"#/services/orders/grays/"+c.grays[0]), chromedp.WaitVisible(chromedp.CSS(`[data-test=widen]`)))
			for _, d := range []struct{ open, ready, what string }{
				{"widen", `.modal [data-test=sel-preview] tr[data-instance]`, "the widen dialog"},
				{"promote", `.modal [data-test=confirm-promote]`, "the promote dialog"},
				{"abandon", `.modal [data-test=confirm-abandon-id]`, "the abandon dialog"},
				{"start-rollout", `.modal [data-test=steps-editor]`, "the rollout dialog"},
			} {
				b.do(chromedp.Click(chromedp.CSS(`[data-test=`+d.open+`]`)), chromedp.WaitVisible(chromedp.CSS(d.ready)))
				if d.open == "promote" {
					b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-promote]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=not-ready] li`)))
				}
				b.axe(d.what)
				b.fitsWidth(d.what)
				b.do(chromedp.KeyEvent("\u001b"))
				b.waitFor("the dialog closed", `!document.querySelector('.modal')`)
			}
			if width == 360 {
				b.do(chromedp.Navigate(c.url+"#/services/orders/history"), chromedp.WaitVisible(chromedp.CSS(`[data-test=rollback-1]`)))
				b.shot("30-narrow-history")
				b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
				b.shot("31-narrow-files")
				b.do(chromedp.Navigate(c.url+"#/services/orders/grays/"+c.grays[1]), chromedp.WaitVisible(chromedp.CSS(`[data-test=failed-gate]`)))
				b.shot("32-narrow-gray")
			}
		})
	}
}

// Keys as the DevTools protocol sends them.
const (
	keyTab    = "\t"
	keyEnter  = "\r"
	keyEscape = "\u001b"
)

// focusStop is where one press of Tab put the focus.
type focusStop struct {
	ID      string `json:"id"`      // data-kb of the element ("" for none of the marked ones)
	What    string `json:"what"`    // tag, class and text, for messages
	Ring    bool   `json:"ring"`    // a focus indicator is drawn
	InModal bool   `json:"inModal"` // the element is inside a dialog
	// ReadOnly: a read-only code editor (a merge view's side), which Tab
	// leaves by itself.
	ReadOnly bool `json:"readOnly"`
}

// markControls gives every control on the page a data-kb id and returns
// them (descriptions by id): links, buttons, fields, the editors' text,
// scrolling tables; one id per group of radio buttons (Tab stops on one of
// them, the arrows move between them).
func (b *tab) markControls(root string) map[string]string {
	b.t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(evalJS[string](b, `((root) => {
		const out = {};
		let n = 0;
		const radios = {};
		const sel = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea:not([disabled]), [tabindex="0"], .cm-content';
		for (const e of (root ? document.querySelector(root) : document).querySelectorAll(sel)) {
			if (e.closest('.flash') || !e.getClientRects().length || getComputedStyle(e).visibility === 'hidden') continue;
			let id;
			if (e.type === 'radio' && e.name) id = radios[e.name] = radios[e.name] || 'k' + n++;
			else id = 'k' + n++;
			e.dataset.kb = id;
			out[id] = e.tagName.toLowerCase() + (e.dataset.test ? '[data-test=' + e.dataset.test + ']' : '') + ' "' + (e.getAttribute('aria-label') || e.textContent || e.placeholder || '').trim().slice(0, 40) + '"';
		}
		return JSON.stringify(out);
	})(`+strconv.Quote(root)+`)`)), &m); err != nil {
		b.t.Fatal(err)
	}
	return m
}

// stop reads where the focus is and whether it shows.
func (b *tab) stop() focusStop {
	b.t.Helper()
	var s focusStop
	if err := json.Unmarshal([]byte(evalJS[string](b, `(() => {
		const e = document.activeElement;
		if (!e || e === document.body) return JSON.stringify({ id: '', what: 'nothing' });
		// The editor draws its ring on its outer box.
		const box = e.classList.contains('cm-content') ? e.closest('.cm-editor') : e;
		const cs = getComputedStyle(box);
		const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 1) || (cs.boxShadow && cs.boxShadow !== 'none');
		return JSON.stringify({ id: e.dataset.kb || '', what: e.tagName.toLowerCase() + '.' + (typeof e.className === 'string' ? e.className : '') + ' "' + (e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 40) + '"',
			ring: !!ring, inModal: !!e.closest('.modal'), readOnly: e.getAttribute('aria-readonly') === 'true' });
	})()`)), &s); err != nil {
		b.t.Fatal(err)
	}
	return s
}

// tabThrough presses Tab from the top of the page until the focus has gone
// round, and checks that every control was reached and showed a focus
// ring. In a code editor Tab indents, so it leaves with Escape then Tab,
// which must not change the text.
func (b *tab) tabThrough(page string) {
	b.t.Helper()
	b.tabThroughIn(page, "")
}

// tabThroughIn is tabThrough over the controls inside root (a CSS
// selector; "" for the whole page): in an open dialog, Tab goes round its
// controls, and the focus never leaves it.
func (b *tab) tabThroughIn(page, root string) {
	b.t.Helper()
	// A page may draw more after its first request (a tab's own load): mark
	// the controls once their number has held still for a moment.
	controls := b.markControls(root)
	for range 10 {
		time.Sleep(300 * time.Millisecond)
		again := b.markControls(root)
		if len(again) == len(controls) {
			break
		}
		controls = again
	}
	if len(controls) == 0 {
		b.t.Fatalf("%s: no controls", page)
	}
	// Tab starts from the top: no focus, and the selection (where the
	// browser starts looking for the next control) at the start of the page.
	evalJS[bool](b, `(() => { document.activeElement?.blur(); getSelection().collapse(document.body, 0); window.scrollTo(0, 0); return true; })()`)
	reached := map[string]bool{}
	first := ""
	for i := 0; i < 3*len(controls)+10; i++ {
		b.do(chromedp.KeyEvent(keyTab))
		s := b.stop()
		if s.ID == "" {
			continue // past the last control, out of the page: the next Tab starts again at the top
		}
		if s.ID == first {
			break
		}
		if first == "" {
			first = s.ID
		}
		reached[s.ID] = true
		if root != "" && !s.InModal {
			b.t.Errorf("%s: Tab left the dialog for %s", page, s.What)
		}
		if !s.Ring {
			b.t.Errorf("%s: %s has the focus but shows no focus ring", page, s.What)
		}
		if strings.HasPrefix(s.What, "div.cm-content") && !s.ReadOnly {
			before := b.editorText()
			b.do(chromedp.KeyEvent(keyEscape), chromedp.KeyEvent(keyTab))
			if after := b.stop(); after.ID == s.ID {
				b.t.Errorf("%s: Escape then Tab did not leave the editor", page)
			} else {
				reached[after.ID] = after.ID != ""
				if !after.Ring && after.ID != "" {
					b.t.Errorf("%s: %s has the focus but shows no focus ring", page, after.What)
				}
			}
			if got := b.editorText(); got != before {
				b.t.Errorf("%s: Escape then Tab changed the editor's text from %q to %q", page, before, got)
			}
		}
	}
	for id, what := range controls {
		if !reached[id] {
			b.t.Errorf("%s: Tab never reaches %s", page, what)
		}
	}
}

// TestKeyboard drives the console with the keyboard only: sign-in, every
// control of the main pages reachable with Tab and showing where the focus
// is, the editor left with Escape then Tab, focus into a dialog, kept inside
// it and given back when it closes, and links, file buttons and tabs
// operated with Enter.
func TestKeyboard(t *testing.T) {
	c := richConsole(t)
	b := newTab(t, startBrowser(t), c.url)

	// Sign in: the token field has the focus; Enter submits.
	b.do(chromedp.Navigate(c.url), chromedp.WaitVisible(chromedp.CSS(`[data-test=token]`)))
	if got := evalJS[string](b, `document.activeElement?.dataset.test || ''`); got != "token" {
		t.Fatalf("the sign-in page puts the focus on %q, want the token field", got)
	}
	b.do(chromedp.KeyEvent(c.admin), chromedp.KeyEvent(keyEnter), chromedp.WaitVisible(chromedp.CSS(`[data-test=whoami]`)))

	for _, page := range append([]string{"#/services", "#/services/orders/files", "#/services/orders/history", "#/services/orders/instances",
		"#/services/orders/links", "#/services/orders/effective", "#/services/orders/revisions/1/app.json", "#/shared", "#/shared/redis-common/users",
		"#/routes", "#/changes", richChange(t, c), "#/pins", "#/search?q=port", "#/audit", "#/tokens"}, grayPages(c)...) {
		b.do(chromedp.Navigate(c.url + page))
		b.pageReady(page)
		b.tabThrough(page)
	}

	// Enter follows a link: from the services list to orders.
	b.do(chromedp.Navigate(c.url + "#/services"))
	b.pageReady("#/services")
	evalJS[bool](b, `(() => { document.querySelector('[data-service=orders] a').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("the orders page", `location.hash === '#/services/orders' && document.querySelector('[data-test=editor] .cm-content') !== null`)
	// Enter on a file button opens the file; on a tab, the tab.
	evalJS[bool](b, `(() => { document.querySelector('.files [data-file="limits.toml"]').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("limits.toml", `document.querySelector('.files [aria-current=true]')?.dataset.file === 'limits.toml'`)
	if got := b.editorText(); got != limitsV1 {
		t.Errorf("Enter on limits.toml shows %q", got)
	}

	// Edit, then open the review with Enter on its button: the focus goes
	// into the dialog, stays there, and comes back to the button.
	evalJS[bool](b, `(() => { document.querySelector('.files [data-file="app.json"]').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("app.json", `document.querySelector('.files [aria-current=true]')?.dataset.file === 'app.json'`)
	b.setEditor(appV3)
	b.waitFor("publish offered", `document.querySelector('[data-test=review]')?.disabled === false`)
	evalJS[bool](b, `(() => { document.querySelector('[data-test=review]').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("the dialog", `document.querySelector('.modal [data-test=confirm-publish]') !== null`)
	if s := b.stop(); !s.InModal {
		t.Errorf("the dialog opened with the focus on %s, outside it", s.What)
	}
	for i := range 12 {
		opt := []chromedp.KeyOption{}
		if i >= 6 {
			opt = append(opt, chromedp.KeyModifiers(chromedp.ModifierShift))
		}
		b.do(chromedp.KeyEvent(keyTab, opt...))
		if s := b.stop(); !s.InModal || !s.Ring {
			t.Errorf("Tab %d in the dialog: the focus is on %s (in the dialog: %v, ring: %v)", i+1, s.What, s.InModal, s.Ring)
		}
	}
	b.do(chromedp.KeyEvent(keyEscape))
	b.waitFor("the dialog to close", `!document.querySelector('.modal')`)
	if got := evalJS[string](b, `document.activeElement?.dataset.test || document.activeElement?.tagName`); got != "review" {
		t.Errorf("after the dialog the focus is on %q, want back on the review button", got)
	}
	// Ctrl+S opens it too, and the side-by-side switch keeps the focus.
	b.do(chromedp.KeyEvent("s", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	b.waitFor("the dialog", `document.querySelector('.modal [data-test=side-by-side]') !== null`)
	evalJS[bool](b, `(() => { document.querySelector('.modal [data-test=side-by-side]').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("the side-by-side view", `document.querySelector('.modal .cm-mergeView') !== null`)
	if got := evalJS[string](b, `document.activeElement?.dataset.test || document.activeElement?.tagName`); got != "side-by-side" {
		t.Errorf("after switching to side by side the focus is on %q, want the switch", got)
	}
	b.do(chromedp.KeyEvent(keyEscape))
	b.waitFor("the dialog to close", `!document.querySelector('.modal')`)

	// Tabs of a service are links: Enter on History opens it.
	evalJS[bool](b, `(() => { [...document.querySelectorAll('.tabs a')].find((a) => a.textContent === 'History').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("the history tab", `location.hash === '#/services/orders/history' && document.querySelector('[data-test=history]') !== null`)

	// The dry-run panel under an approval policy: every control of the
	// dialog (the violations, the emergency option and its reason) is
	// reached with Tab without leaving it; Space ticks the emergency box;
	// Enter on a violation closes the dialog and puts the cursor on its line.
	b.do(chromedp.Navigate(c.url + "#/services/payments/files?file=cache.env"))
	b.pageReady("#/services/payments/files")
	b.setEditor(badEnv)
	b.waitFor("publish offered", `document.querySelector('[data-test=review]')?.disabled === false`)
	evalJS[bool](b, `(() => { document.querySelector('[data-test=review]').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("the dry run's panel", `document.querySelector('.modal [data-test=dry-run-violations] button') !== null && document.querySelector('.modal [data-test=needs-approval]') !== null`)
	if s := b.stop(); !s.InModal {
		t.Errorf("the dialog opened with the focus on %s, outside it", s.What)
	}
	evalJS[bool](b, `(() => { document.querySelector('.modal [data-test=emergency]').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(" "))
	b.waitFor("the emergency reason", `document.querySelector('.modal [data-test=emergency-reason]')?.getClientRects().length > 0`)
	if got := b.text(`.modal [data-test=confirm-publish]`); got != "Publish revision 3 now (emergency)" {
		t.Errorf("after Space on the emergency box the button reads %q", got)
	}
	b.tabThroughIn("the publish dialog under a policy", ".modal")
	evalJS[bool](b, `(() => { document.querySelector('.modal [data-test=dry-run-violations] li[data-line="2"] button').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("the dialog to close", `!document.querySelector('.modal')`)
	line := evalJS[int](b, `import('./vendor/codemirror.js').then((cm) => { const v = cm.EditorView.findFromDOM(document.querySelector('[data-test=editor]')); return v.state.doc.lineAt(v.state.selection.main.head).number; })`)
	if s := b.stop(); !strings.HasPrefix(s.What, "div.cm-content") || line != 2 {
		t.Errorf("Enter on the violation at line 2 left the focus on %s, the cursor on line %d", s.What, line)
	}

	// A gray's selector dialog with the keyboard: Enter opens it, Space
	// on an instance's box picks it by id and the preview says it joins,
	// Escape gives the focus back to the button.
	b.do(chromedp.Navigate(c.url + "#/services/orders/grays/" + c.grays[0]))
	b.pageReady("the gray")
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=widen]`)))
	evalJS[bool](b, `(() => { document.querySelector('[data-test=widen]').focus(); return true; })()`)
	b.do(chromedp.KeyEvent(keyEnter))
	b.waitFor("the selector dialog", `document.querySelector('.modal [data-test=pick-orders-1]') !== null`)
	if s := b.stop(); !s.InModal {
		t.Errorf("the selector dialog opened with the focus on %s, outside it", s.What)
	}
	for range 20 {
		if evalJS[string](b, `document.activeElement?.dataset.test || ''`) == "pick-orders-1" {
			break
		}
		b.do(chromedp.KeyEvent(keyTab))
	}
	if got := evalJS[string](b, `document.activeElement?.dataset.test || ''`); got != "pick-orders-1" {
		t.Fatalf("Tab never reached orders-1's box in the selector dialog (focus on %q)", got)
	}
	b.do(chromedp.KeyEvent(" "))
	b.waitFor("orders-1 picked", `document.querySelector('.modal [data-test=sel-instances]').value === 'orders-2, orders-1'`)
	if got := evalJS[string](b, `document.activeElement?.dataset.test || ''`); got != "pick-orders-1" {
		t.Errorf("after Space the focus is on %q, want orders-1's box (the preview is drawn again)", got)
	}
	b.do(chromedp.KeyEvent(keyEscape))
	b.waitFor("the dialog to close", `!document.querySelector('.modal')`)
	if got := evalJS[string](b, `document.activeElement?.dataset.test || ''`); got != "widen" {
		t.Errorf("after the selector dialog the focus is on %q, want back on Widen", got)
	}
}
