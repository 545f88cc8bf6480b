package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// The tests in this file each reproduce a bug of issue 17 as a user meets it
// in the console; each fails on the console before the fix.

// mustService creates svc with files, all in one revision, through the admin
// API and returns that revision (0 for no files).
func mustService(t *testing.T, c *console, svc string, files map[string]string) int64 {
	t.Helper()
	ctx := context.Background()
	ref := configsvc.Service(svc)
	if _, _, err := c.api.Create(ctx, ref); err != nil {
		t.Fatalf("create %s: %v", svc, err)
	}
	if len(files) == 0 {
		return 0
	}
	req := api.PublishRequest{Message: "setup"}
	for name, content := range files {
		req.Changes = append(req.Changes, api.PutChange(name, []byte(content)))
	}
	rev, err := c.api.Publish(ctx, ref, req)
	if err != nil {
		t.Fatalf("publish %s: %v", svc, err)
	}
	return rev.Number
}

// slowGate holds the first request to one of paths for delay (the request
// the page starts with), and records whether the browser gave up on it.
type slowGate struct {
	paths     []string
	delay     time.Duration
	armed     atomic.Bool
	cancelled atomic.Int32
	served    atomic.Int32
}

func (g *slowGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range g.paths {
			if r.URL.Path == p && g.armed.CompareAndSwap(true, false) {
				select {
				case <-time.After(g.delay):
					g.served.Add(1)
				case <-r.Context().Done():
					g.cancelled.Add(1)
					return
				}
				break
			}
		}
		next.ServeHTTP(w, r)
	})
}

// TestBugNavigationDuringSlowLoad: a page still loading must never replace
// the page the user moved to. Clicking Pins while the services list loads
// showed the list under the Pins address; opening a service while the list
// loaded and editing had the list cover the editor a moment later.
func TestBugNavigationDuringSlowLoad(t *testing.T) {
	gate := &slowGate{paths: []string{"/v1/services", "/v1/summary/services"}, delay: 1500 * time.Millisecond}
	c := startConsoleWith(t, gate.wrap)
	mustService(t, c, "orders", map[string]string{"app.json": appV1})
	b := newTab(t, startBrowser(t), c.url)

	gate.armed.Store(true)
	b.signIn(c.admin) // lands on the services list, whose load is held
	b.do(chromedp.Click(chromedp.CSS(`[data-nav=pins]`)))
	b.waitFor("the pins page", `document.querySelector('h1')?.textContent === 'Debug pins'`)
	time.Sleep(gate.delay + 500*time.Millisecond) // the held list answers (or was given up) meanwhile
	if h1 := b.text(`h1`); h1 != "Debug pins" || b.count(`[data-test=services]`) != 0 {
		t.Errorf("after moving to Pins during the list's load the page shows %q with %d services tables; want the pins page only", h1, b.count(`[data-test=services]`))
	}
	if hash := evalJS[string](b, `location.hash`); hash != "#/pins" {
		t.Errorf("address %q, want #/pins", hash)
	}
	if gate.cancelled.Load() != 1 {
		t.Errorf("the held list request was cancelled %d times, want once (the console aborts a left page's requests)", gate.cancelled.Load())
	}

	// Open a service while the list loads, and edit: the edit stays on screen.
	b.do(chromedp.Navigate(c.url + "#/pins"))
	b.waitFor("the pins page", `document.querySelector('h1')?.textContent === 'Debug pins'`)
	gate.armed.Store(true)
	b.do(chromedp.Navigate(c.url + "#/services"))
	b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	b.setEditor(appV2)
	time.Sleep(gate.delay + 500*time.Millisecond)
	if n := b.count(`[data-test=services]`); n != 0 {
		t.Error("the services list replaced the editor")
	}
	if got := b.editorText(); got != appV2 {
		t.Errorf("editor holds %q, want the unpublished edit %q", got, appV2)
	}
	if got := b.text(`[data-test=change-count]`); got != "1 unpublished change" {
		t.Errorf("change count %q, want the edit counted", got)
	}
}

// TestBugInstanceStatusConsistent: one classification of instances for every
// count and label. A rejected instance on the head revision showed a green
// "current" beside a red "rejected"; a record with zero times showed
// "739951 d ago"; "since" showed the last heartbeat ("just now") instead of
// since when the instance runs its revision.
func TestBugInstanceStatusConsistent(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	mustService(t, c, "orders", map[string]string{"app.json": appV1})
	rev, err := c.api.PutFile(ctx, configsvc.Service("orders"), "app.json", []byte(appV2))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	started := now.Add(-3 * time.Hour)
	for _, in := range []configsvc.Instance{
		{Service: "orders", ID: "cur", Addr: "127.0.0.1:9001", Revision: rev.Number, Status: configsvc.StatusApplied, Started: started, Updated: now},
		{Service: "orders", ID: "rej", Addr: "127.0.0.1:9002", Revision: rev.Number, Status: configsvc.StatusRejected, Rejected: rev.Number, Error: "port: out of range", Started: started, Updated: now},
		{Service: "orders", ID: "old", Addr: "127.0.0.1:9003", Revision: rev.Number - 1, Status: configsvc.StatusApplied},
		{Service: "orders", ID: "new", Addr: "127.0.0.1:9004", Status: configsvc.StatusStarting, Started: now, Updated: now},
	} {
		lease, err := c.store.Register(ctx, in)
		if err != nil {
			t.Fatalf("register %s: %v", in.ID, err)
		}
		t.Cleanup(func() { _ = lease.Close() })
	}
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/instances"), chromedp.WaitVisible(chromedp.CSS(`[data-instance=new]`)))
	want := map[string]string{"cur": "current", "rej": "rejected", "old": "older", "new": "starting"}
	for id, state := range want {
		row := b.text(fmt.Sprintf(`[data-instance=%q]`, id))
		got := b.text(fmt.Sprintf(`[data-instance=%q] [data-test=instance-state]`, id))
		if got != state {
			t.Errorf("instance %s shows state %q, want %q (row %q)", id, got, state, row)
		}
		for other := range map[string]bool{"current": true, "rejected": true, "older": true, "starting": true} {
			if other != state && strings.Contains(row, other) {
				t.Errorf("instance %s (%s) also reads %q: %q", id, state, other, row)
			}
		}
	}
	if got, want := b.text(`[data-test=instance-summary-text]`), fmt.Sprintf("4 instances · 1 on revision %d · 1 older · 1 rejected · 1 starting", rev.Number); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if row := b.text(`[data-instance=old]`); regexp.MustCompile(`\d{4,} d`).MatchString(row) {
		t.Errorf("an instance with zero times reads %q", row)
	}
	if cell := b.text(`[data-instance=cur] td:nth-child(6)`); strings.Contains(cell, "just now") || !strings.Contains(cell, "3 h ago") {
		t.Errorf("since = %q, want since when it runs (it started 3 h ago), not the last heartbeat", cell)
	}
	b.do(chromedp.Navigate(c.url+"#/services"), chromedp.WaitVisible(chromedp.CSS(`[data-service=orders]`)))
	row := b.text(`[data-service=orders]`)
	for _, w := range []string{"1 current", "1 older", "1 rejected", "1 starting"} {
		if !strings.Contains(row, w) {
			t.Errorf("services row %q lacks %q, the same counts as the instances tab", row, w)
		}
	}
}

// TestBugRemoveStaleInstance: an admin removes an instance that is gone from
// the console (DELETE the instance); before, there was no way to.
func TestBugRemoveStaleInstance(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	rev := mustService(t, c, "orders", map[string]string{"app.json": appV1})
	if _, err := c.api.PutInstance(ctx, configsvc.Instance{Service: "orders", ID: "gone-1", Addr: "127.0.0.1:9009", Revision: rev, Status: configsvc.StatusApplied}); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/instances"), chromedp.WaitVisible(chromedp.CSS(`[data-instance=gone-1]`)))
	// The list is drawn again when the live stream starts: click after that.
	b.waitFor("the live stream", `document.querySelector('[data-test=live-state]')?.textContent === 'live'`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=remove-gone-1]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=confirm-remove]`)),
		chromedp.Click(chromedp.CSS(`[data-test=confirm-remove]`)))
	b.waitFor("the row to go", `!document.querySelector('[data-instance=gone-1]')`)
	insts, err := c.api.Instances(ctx, "orders")
	if err != nil || len(insts) != 0 {
		t.Errorf("instances after removal: %+v, %v; want none", insts, err)
	}
}

// TestBugRouteSchemaErrorMarksLine: the route schema's refusal names a
// field and its line; the editor must mark that line, whether the review's
// dry run finds it or (when the dry run could not run) the publish's 422.
func TestBugRouteSchemaErrorMarksLine(t *testing.T) {
	var dry dryRunBreaker
	c := startConsoleWith(t, dry.wrap)
	mustService(t, c, configsvc.SystemService, nil)
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/routes/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=new-file]`)))
	b.typeInto(`[data-test=new-file]`, configsvc.RoutesFile)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=add-file]`)))
	// Valid YAML (the browser's check passes); balancer is wrong on line 5.
	b.setEditor("routes:\n  - name: api\n    match: {path_prefix: /api}\n    upstream: {static: [\"127.0.0.1:1\"]}\n    balancer: sideways\n")

	t.Run("dry run", func(t *testing.T) {
		b.waitFor("publish to be offered", `document.querySelector('[data-test=review]')?.disabled === false`)
		b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=dry-run-violations]`)))
		if !evalJS[bool](b, `document.querySelector('[data-test=confirm-publish]').disabled`) {
			t.Error("publish is enabled although the dry run found the route schema's refusal")
		}
		b.waitFor("a lint marker", `document.querySelector('[data-test=editor] .cm-lint-marker-error') !== null`)
		if got := b.lintLines(); got != "5" {
			t.Errorf("lint marks lines %q, want 5 (the route schema's error is at line 5: %q)", got, b.text(`[data-test=dry-run-violations]`))
		}
		b.do(chromedp.KeyEvent(keyEscape))
		b.waitFor("the dialog closed", `!document.querySelector('.modal')`)
	})

	t.Run("422", func(t *testing.T) {
		dry.on.Store(true)
		// An edit clears the marks; the text stays the same.
		b.setEditor("routes:\n  - name: api\n    match: {path_prefix: /api}\n    upstream: {static: [\"127.0.0.1:1\"]}\n    balancer: sideways\n")
		b.waitFor("the marks cleared", `document.querySelector('[data-test=editor] .cm-lint-marker-error') === null`)
		b.publish("bad balancer")
		b.waitFor("the refusal", `document.querySelector('[data-test=flash] .msg.error')?.textContent.includes('422')`)
		b.waitFor("a lint marker", `document.querySelector('[data-test=editor] .cm-lint-marker-error') !== null`)
		if got := b.lintLines(); got != "5" {
			t.Errorf("lint marks lines %q, want 5 (the route schema's error is at line 5: %q)", got, b.text(`[data-test=flash] .msg.error`))
		}
	})
	if n := headRevision(t, c.store, configsvc.SystemService); n != 0 {
		t.Errorf("routes published despite the refusal: revision %d", n)
	}
}

// TestBugErrorToasts: error toasts do not stack, leave by themselves well
// before 15 s, and do not follow the user to another page.
func TestBugErrorToasts(t *testing.T) {
	c := startConsole(t)
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	refuse := func() {
		// An audit filter the server refuses (400: not a service name).
		b.do(chromedp.Navigate(c.url + "#/audit"))
		b.typeInto(`[data-test=audit-service]`, "Not_A_Service")
		b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-filter]`)))
	}
	b.do(chromedp.Navigate(c.url+"#/audit"), chromedp.WaitVisible(chromedp.CSS(`[data-test=audit-service]`)))
	refuse()
	b.waitFor("an error", `document.querySelectorAll('[data-test=flash] .msg.error').length === 1`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-filter]`)))
	b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-filter]`)))
	time.Sleep(500 * time.Millisecond)
	if n := b.count(`[data-test=flash] .msg.error`); n != 1 {
		t.Errorf("%d error toasts after three refusals, want 1 (the newest)", n)
	}
	b.do(chromedp.Navigate(c.url+"#/services"), chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`)))
	if n := b.count(`[data-test=flash] .msg.error`); n != 0 {
		t.Errorf("%d error toasts followed to the services page", n)
	}
	refuse()
	b.waitFor("an error", `document.querySelectorAll('[data-test=flash] .msg.error').length === 1`)
	start := time.Now()
	ctx, cancel := context.WithTimeout(b.ctx, 12*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('[data-test=flash] .msg.error').length === 0`, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		t.Errorf("the error toast still shows after %s, want it gone well before 15 s", time.Since(start).Round(time.Second))
	}
}

// TestBugCreateNamePattern: the create field's pattern must compile under
// the v flag Chromium uses for pattern attributes (before, "[a-z0-9-]"
// did not, so the browser ignored it and logged an error), and a bad name is
// explained in the page without a request.
func TestBugCreateNamePattern(t *testing.T) {
	var puts atomic.Int32
	c := startConsoleWith(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/services/") {
				puts.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=new-name]`)))
	if err := evalJS[string](b, `(() => { try { new RegExp('^(?:' + document.querySelector('[data-test=new-name]').pattern + ')$', 'v'); return ''; } catch (e) { return String(e); } })()`); err != "" {
		t.Errorf("the name field's pattern does not compile with the v flag: %s", err)
	}
	b.typeInto(`[data-test=new-name]`, "Bad_Name")
	if evalJS[bool](b, `document.querySelector('[data-test=new-name]').validity.valid`) {
		t.Error("the field accepts Bad_Name")
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=create]`)))
	b.waitFor("the reason", `document.querySelector('[data-test=new-name-error]')?.textContent.length > 0`)
	if puts.Load() != 0 {
		t.Errorf("%d create requests for an invalid name, want none", puts.Load())
	}
	b.typeInto(`[data-test=new-name]`, "good-name")
	if !evalJS[bool](b, `document.querySelector('[data-test=new-name]').validity.valid`) {
		t.Error("the field refuses good-name")
	}
}

// TestBugRevertFileVisibleAfterEdit: "Revert file" shows as soon as a file
// is edited (before, only after selecting the file again).
func TestBugRevertFileVisibleAfterEdit(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, "orders", map[string]string{"app.json": appV1})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	if n := b.count(`[data-test=revert-file]`); n != 0 {
		t.Fatal("Revert file shows before any edit")
	}
	b.setEditor(appV2)
	b.waitFor("Revert file", `document.querySelector('[data-test=revert-file]') !== null`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=revert-file]`)))
	b.waitFor("the live content back", `document.querySelector('[data-test=change-count]')?.textContent === 'No unpublished changes'`)
	if got := b.editorText(); got != appV1 {
		t.Errorf("after Revert the editor holds %q, want %q", got, appV1)
	}
}

// TestBugWhitespaceOnlyDiff: a line that changed only in whitespace looked
// identical on both sides of the diff; it must be marked and its whitespace
// drawn.
func TestBugWhitespaceOnlyDiff(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, "orders", map[string]string{"app.yaml": "a: 1\nb: 2\n"})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/files"), chromedp.WaitVisible(chromedp.CSS(`[data-test=editor] .cm-content`)))
	b.setEditor("a: 1 \nb:\t2\n")
	b.waitFor("publish offered", `document.querySelector('[data-test=review]')?.disabled === false`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=publish-diff]`)))
	if n := b.count(`[data-test=publish-diff] tr.ws-only`); n != 4 {
		t.Errorf("%d diff rows marked as whitespace-only, want 4 (two lines, each removed and added)", n)
	}
	if n := b.count(`[data-test=publish-diff] tr.add .ws`); n < 2 {
		t.Errorf("%d whitespace runs drawn in the added lines, want the trailing space and the tab", n)
	}
	if n := b.count(`[data-test=publish-diff] tr.add .ws.tab`); n != 1 {
		t.Errorf("%d tabs drawn, want 1", n)
	}
}

// TestBugRoutesPageTabs: the routes page shows the tabs that mean something
// for sluice-system (files, history), not instances or shared groups.
func TestBugRoutesPageTabs(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, configsvc.SystemService, nil)
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/routes"), chromedp.WaitVisible(chromedp.CSS(`.tabs`)))
	if got := b.text(`.tabs`); !regexp.MustCompile(`^\s*Files\s*History\s*$`).MatchString(got) {
		t.Errorf("routes tabs %q, want Files and History only", got)
	}
}

// TestBugDocumentTitle: the window title names the page.
func TestBugDocumentTitle(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, "orders", map[string]string{"app.json": appV1})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	for hash, want := range map[string]string{
		"#/services":                  "Services · Sluice",
		"#/services/orders/history":   "orders · History · Sluice",
		"#/services/orders/instances": "orders · Instances · Sluice",
		"#/pins":                      "Debug pins · Sluice",
		"#/audit":                     "Audit log · Sluice",
		"#/tokens":                    "Tokens · Sluice",
	} {
		b.do(chromedp.Navigate(c.url + hash))
		b.waitFor("the title of "+hash, fmt.Sprintf(`document.title === %q`, want))
	}
}

// TestBugErrorNamesItsRequest: an error shows the server's message (written
// for users on a server with issue 17's messages) and the id of the request,
// under which the server logs the internals, so that a user can hand it to
// an operator; before, the console showed neither the id nor a way to find
// the details.
func TestBugErrorNamesItsRequest(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]string{} // path → X-Request-ID of the answer
	c := startConsoleWith(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			mu.Lock()
			ids[r.URL.Path] = w.Header().Get("X-Request-ID")
			mu.Unlock()
		})
	})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	// A page that cannot be shown: the service does not exist.
	b.do(chromedp.Navigate(c.url+"#/services/no-such-service"), chromedp.WaitVisible(chromedp.CSS(`[data-test=page-error]`)))
	mu.Lock()
	id := ids["/v1/services/no-such-service"]
	mu.Unlock()
	if id == "" {
		t.Fatal("the server gave no X-Request-ID")
	}
	if got := b.text(`[data-test=request-id]`); !strings.Contains(got, "404") || !strings.Contains(got, "request "+id) {
		t.Errorf("the page error names %q, want the status and request %s", got, id)
	}
	// A refusal in a toast.
	b.do(chromedp.Navigate(c.url+"#/audit"), chromedp.WaitVisible(chromedp.CSS(`[data-test=audit-service]`)))
	b.typeInto(`[data-test=audit-service]`, "Not_A_Service")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-filter]`)))
	b.waitFor("the refusal", `document.querySelector('[data-test=flash] .msg.error .code') !== null`)
	mu.Lock()
	id = ids["/v1/audit"]
	mu.Unlock()
	if got := b.text(`[data-test=flash] .msg.error .code`); got != "400 invalid · request "+id {
		t.Errorf("the toast's small print is %q, want %q", got, "400 invalid · request "+id)
	}
}

// holdGate holds the first request to path after arm until release, and
// says on holding when it holds one.
type holdGate struct {
	mu      sync.Mutex
	path    string
	holding chan struct{}
	release chan struct{}
}

func (g *holdGate) arm(path string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.path, g.holding, g.release = path, make(chan struct{}), make(chan struct{})
}

func (g *holdGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		hold := g.path != "" && r.URL.Path == g.path
		var holding, release chan struct{}
		if hold {
			g.path, holding, release = "", g.holding, g.release
		}
		g.mu.Unlock()
		if hold {
			close(holding)
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// TestBugGrayPageMissesMainMovingDuringRefresh: main moving while the
// gray's page was reading the gray again (after a report, say) was lost. The refresh that asked for the head too was folded into
// the running one, which did not read it, so the page kept the old head for
// good: "Compare with" stayed hidden and the diff stayed against the base,
// though the notice said main had changed (TestBrowserGrays failed on CI so).
func TestBugGrayPageMissesMainMovingDuringRefresh(t *testing.T) {
	gate := &holdGate{}
	c := startConsoleWith(t, gate.wrap)
	ctx := context.Background()
	orders := configsvc.Service("orders")
	rev := mustService(t, c, "orders", map[string]string{"limits.toml": limitsV1})
	gi := registerInstances(t, c, "orders", rev, map[string]map[string]string{"orders-1": {"zone": "a"}})
	g, err := c.api.CreateGray(ctx, orders, api.GrayRequest{Changes: []api.Change{api.PutChange("limits.toml", []byte("[limits]\nrps = 200\n"))},
		Selector: api.Selector{Percent: 50}})
	if err != nil {
		t.Fatal(err)
	}
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`)))
	goTo(b, "#/services/orders/grays/"+g.ID, `[data-test=gray-state]`)
	if b.count(`[data-test=main-changed]`) != 0 || evalJS[bool](b, `document.querySelector('[data-test=compare-with]')?.offsetParent !== null`) {
		t.Fatal("the page offers a comparison with main before main moved")
	}

	// A report makes the page read the gray again; that read is held, main
	// moves meanwhile, and the page hears of it while the read runs.
	gate.arm("/v1/services/orders/grays/" + g.ID)
	gi.report("orders-1", g.ID, configsvc.GrayApplied, "")
	select {
	case <-gate.holding:
	case <-time.After(20 * time.Second):
		t.Fatal("the page did not read the gray again after a report within 20 s")
	}
	if _, err := c.api.PutFile(ctx, orders, "limits.toml", []byte("[limits]\nrps = 150\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the revision event reaches the page while the read is held
	close(gate.release)
	b.waitFor("the comparison with main now", `document.querySelector('[data-test=main-changed]')?.textContent.includes('limits.toml') && document.querySelector('[data-test=compare-with]')?.offsetParent !== null`)
	b.waitFor("the diff against main now", `document.querySelector('[data-test=gray-changes]').textContent.includes('-rps = 150')`)
}
