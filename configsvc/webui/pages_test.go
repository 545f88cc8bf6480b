package webui_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// The pages issue 17 asks for: a file at any revision, the effective
// configuration, tokens, deleting a service or a group, search, and the audit
// log's filters and paging.

func TestPageFileAtRevision(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	mustService(t, c, "orders", map[string]string{"app.json": appV1, "limits.toml": limitsV1})
	if _, err := c.api.PutFile(ctx, configsvc.Service("orders"), "app.json", []byte(appV2)); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/history"), chromedp.WaitVisible(chromedp.CSS(`[data-test=view-1]`)),
		chromedp.Click(chromedp.CSS(`[data-test=view-1]`)))
	b.waitFor("revision 1's files", `document.querySelector('[data-test=revision-files]') !== null && document.querySelector('[data-test=editor]') !== null`)
	if got := b.editorText(); got != appV1 {
		t.Errorf("app.json at revision 1 shows %q, want %q", got, appV1)
	}
	if !b.editorReadOnly() {
		t.Error("an old revision is editable")
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=revision-files] [data-file="limits.toml"]`)))
	// The page before stays until the new one has loaded: wait for the
	// editor of the file asked for.
	b.waitFor("limits.toml at revision 1", `location.hash === '#/services/orders/revisions/1/limits.toml' &&
		document.querySelector('[data-test=editor] .cm-content')?.getAttribute('aria-label') === 'limits.toml at revision 1'`)
	if got := b.editorText(); got != limitsV1 {
		t.Errorf("limits.toml at 1 = %q", got)
	}
	// Any revision by address, and the next one differs.
	b.do(chromedp.Navigate(c.url + "#/services/orders/revisions/2/app.json"))
	b.waitFor("app.json at revision 2", `document.querySelector('[data-test=editor] .cm-content')?.getAttribute('aria-label') === 'app.json at revision 2'`)
	if got := b.editorText(); got != appV2 {
		t.Errorf("app.json at 2 = %q, want %q", got, appV2)
	}
	if got := evalJS[string](b, `document.title`); got != "orders · revision 2 · app.json · Sluice" {
		t.Errorf("title %q", got)
	}
	b.shot("20-file-at-revision")
}

func TestPageEffectiveConfig(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	mustService(t, c, "orders", map[string]string{"app.json": appV1})
	g := configsvc.Ref{Kind: configsvc.KindGroup, Name: "redis-common"}
	if _, _, err := c.api.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.PutFile(ctx, g, "redis.yaml", []byte("addr: 10.0.0.1:6379\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.Link(ctx, "orders", "redis-common"); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/services/orders/effective"), chromedp.WaitVisible(chromedp.CSS(`[data-test=effective-files]`)))
	files := evalJS[[]string](b, `[...document.querySelectorAll('[data-test=effective-files] [data-file]')].map((e) => e.dataset.file)`)
	if strings.Join(files, ",") != "app.json,redis-common/redis.yaml" {
		t.Errorf("effective files %v, want app.json and redis-common/redis.yaml", files)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-file="redis-common/redis.yaml"]`)))
	b.waitFor("the group's file", `document.querySelector('[data-test=tab-effective] .badge.info')?.textContent === 'from group redis-common'`)
	if got := b.editorText(); got != "addr: 10.0.0.1:6379\n" {
		t.Errorf("redis-common/redis.yaml shows %q", got)
	}
	if got := b.text(`[data-test=effective-revision]`); got != "redis-common at revision 1" {
		t.Errorf("the group file's revision reads %q", got)
	}
	b.shot("21-effective")
}

func TestPageTokens(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/tokens"), chromedp.WaitVisible(chromedp.CSS(`[data-test=tokens] [data-token]`)))
	b.typeInto(`[data-test=token-name]`, "ci-deploy")
	b.choose(`[data-test=grant-role]`, "editor")
	b.typeInto(`[data-test=grant-pattern]`, "team-a-*")
	b.choose(`[data-test=token-ttl]`, "168h")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=token-create]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=token-value]`)))
	secret := b.text(`[data-test=token-value]`)
	if !strings.HasPrefix(secret, "slc_") {
		t.Fatalf("created token %q, want an slc_ token", secret)
	}
	b.shot("22-tokens")
	toks, err := c.api.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var made api.Token
	for _, tk := range toks {
		if tk.Name == "ci-deploy" {
			made = tk
		}
	}
	if made.ID == "" || len(made.Roles) != 1 || made.Roles[0].Role != access.RoleEditor || made.Roles[0].Pattern != "team-a-*" || made.Expires.IsZero() ||
		time.Until(made.Expires) < 167*time.Hour || time.Until(made.Expires) > 169*time.Hour {
		t.Fatalf("server has token %+v, want ci-deploy, editor on team-a-*, expiring in 7 days", made)
	}
	// The new token works (the console only showed it), and revoking it in the console ends it.
	client, err := api.New(api.Config{Servers: []string{strings.TrimSuffix(c.url, "/")}, Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Whoami(ctx); err != nil {
		t.Fatalf("whoami with the new token: %v", err)
	}
	row := fmt.Sprintf(`[data-token=%q]`, made.ID)
	if got := b.text(row); !strings.Contains(got, "editor on team-a-*") {
		t.Errorf("token row %q lacks its grant", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=revoke-token-`+made.ID+`]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=confirm-revoke-token]`)),
		chromedp.Click(chromedp.CSS(`[data-test=confirm-revoke-token]`)))
	b.waitFor("the row to go", fmt.Sprintf(`!document.querySelector(%q)`, row))
	if _, err := client.Whoami(ctx); err == nil {
		t.Error("the revoked token still works")
	}
}

func TestPageDeleteServiceAndGroup(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	rev := mustService(t, c, "doomed", map[string]string{"app.json": appV1})
	mustService(t, c, "orders", nil)
	g := configsvc.Ref{Kind: configsvc.KindGroup, Name: "old-group"}
	if _, _, err := c.api.Create(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.Link(ctx, "orders", "old-group"); err != nil {
		t.Fatal(err)
	}
	lease, err := c.store.Register(ctx, configsvc.Instance{Service: "doomed", ID: "doomed-1", Addr: "127.0.0.1:9100", Revision: rev, Status: configsvc.StatusApplied, Started: time.Now(), Updated: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lease.Close() })
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)

	b.do(chromedp.Navigate(c.url+"#/services/doomed"), chromedp.WaitVisible(chromedp.CSS(`[data-test=delete-service]`)),
		chromedp.Click(chromedp.CSS(`[data-test=delete-service]`)))
	b.waitFor("the blast radius", `document.querySelector('[data-test=blast-radius]')?.textContent.includes('doomed-1')`)
	if got := b.text(`[data-test=blast-radius]`); !strings.Contains(got, "1 live instance") {
		t.Errorf("blast radius %q, want the live instance", got)
	}
	if !evalJS[bool](b, `document.querySelector('[data-test=confirm-delete]').disabled`) {
		t.Error("delete is offered before the name is typed")
	}
	b.typeInto(`[data-test=confirm-name]`, "doome")
	if !evalJS[bool](b, `document.querySelector('[data-test=confirm-delete]').disabled`) {
		t.Error("delete is offered for a wrong name")
	}
	b.shot("23-delete-service")
	b.typeInto(`[data-test=confirm-name]`, "doomed")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-delete]`)))
	b.waitFor("the services list", `location.hash.startsWith('#/services') && !location.hash.includes('doomed')`)
	if _, err := c.api.Head(ctx, configsvc.Service("doomed")); err == nil {
		t.Error("doomed still exists")
	}

	b.do(chromedp.Navigate(c.url+"#/shared/old-group"), chromedp.WaitVisible(chromedp.CSS(`[data-test=delete-group]`)),
		chromedp.Click(chromedp.CSS(`[data-test=delete-group]`)))
	b.waitFor("the linking services", `document.querySelector('[data-test=blast-radius]')?.textContent.includes('orders')`)
	if got := b.text(`[data-test=blast-radius]`); !strings.Contains(got, "1 service links") {
		t.Errorf("blast radius %q, want orders named as linking the group", got)
	}
	b.typeInto(`[data-test=confirm-name]`, "old-group")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-delete]`)))
	// Whatever the store decides for a linked group, the console says it.
	b.waitFor("an outcome", `location.hash === '#/shared' || document.querySelector('[data-test=flash] .msg.error') !== null`)
	_, headErr := c.api.Head(ctx, g)
	onList := evalJS[string](b, `location.hash`) == "#/shared"
	if onList != (headErr != nil) {
		t.Errorf("console went to %s while the group's head answers %v", evalJS[string](b, `location.hash`), headErr)
	}
	// A viewer is not offered deletion.
	vw := newTab(t, startBrowser(t), c.url)
	vw.signIn(c.viewer)
	vw.do(chromedp.Navigate(c.url+"#/services/orders"), chromedp.WaitVisible(chromedp.CSS(`[data-test=title]`)))
	if n := vw.count(`[data-test^=delete-]`); n != 0 {
		t.Errorf("a viewer sees %d delete buttons", n)
	}
}

func TestPageSearch(t *testing.T) {
	c := startConsole(t)
	mustService(t, c, "orders", map[string]string{"db.yaml": "host: redis.internal\nport: 6379\n", "app.json": appV1})
	mustService(t, c, "payments", map[string]string{"cache.env": "CACHE=redis.internal:6379\n"})
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/search"), chromedp.WaitVisible(chromedp.CSS(`[data-test=config-search]`)))
	b.typeInto(`[data-test=config-search]`, "REDIS.internal")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=search-go]`)))
	b.waitFor("two hits", `document.querySelectorAll('[data-test=search-results] .hit').length === 2`)
	if got := evalJS[string](b, `location.hash`); got != "#/search?q=REDIS.internal" {
		t.Errorf("address %q, want the query in it", got)
	}
	b.shot("24-search")
	b.do(chromedp.Click(chromedp.CSS(`[data-file="cache.env"] .hit`)))
	b.waitFor("the file at its line", `location.hash.startsWith('#/services/payments/files') && document.querySelector('[data-test=editor] .cm-content') !== null`)
	if got := evalJS[string](b, `document.querySelector('.files [aria-current=true]')?.dataset.file`); got != "cache.env" {
		t.Errorf("search opened %q, want cache.env", got)
	}
	// Reloading the address repeats the search.
	b.do(chromedp.Navigate(c.url + "#/search?q=6379"))
	b.waitFor("the hits for 6379", `document.querySelectorAll('[data-test=search-results] .hit').length === 2`)
}

func TestPageAuditFiltersAndPaging(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	audit := access.NewAudit(c.store.Records(), 0)
	base := time.Now().Add(-time.Hour).UTC()
	const n = 1100
	for i := range n {
		e := access.Entry{Time: base.Add(time.Duration(i) * time.Second), Actor: "robot", Action: "publish", Target: "service/orders", Service: "orders",
			Revision: int64(i + 1), Outcome: access.OutcomeAllowed, Status: 200, Client: "127.0.0.1", RequestID: fmt.Sprintf("r%04d", i)}
		switch {
		case i%10 == 3:
			e.Action, e.Target, e.Revision = "session.open", "session", 0
		case i%10 == 7:
			e.Outcome, e.Status, e.Reason = access.OutcomeRefused, 409, "conflict"
		}
		if _, err := audit.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.Navigate(c.url+"#/audit"), chromedp.WaitVisible(chromedp.CSS(`[data-test=audit] tbody tr[data-seq]`)))
	if n := b.count(`[data-test=audit] tbody tr[data-seq] td:nth-child(3)`); n == 0 {
		t.Fatal("no entries")
	}
	if got := evalJS[int](b, `[...document.querySelectorAll('[data-test=audit] tbody tr[data-seq]')].filter((r) => r.textContent.includes('session.')).length`); got != 0 {
		t.Errorf("%d sign-in entries shown by default, want them hidden", got)
	}
	if title := evalJS[string](b, `document.querySelector('[data-test=audit] time')?.title`); !strings.HasSuffix(title, " UTC") {
		t.Errorf("time's hover text %q, want the absolute UTC time", title)
	}
	// Page back past 1,000 entries.
	for range 6 {
		if evalJS[bool](b, `document.querySelector('[data-test=audit-older]').hidden`) {
			break
		}
		before := b.count(`[data-test=audit] tbody tr[data-seq]`)
		b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-older]`)))
		b.waitFor("older entries", fmt.Sprintf(`document.querySelectorAll('[data-test=audit] tbody tr[data-seq]').length > %d`, before))
	}
	if got, want := b.text(`[data-test=audit-status]`), auditTotal(t, c); !strings.Contains(got, fmt.Sprintf("of %d loaded", want)) {
		t.Errorf("status %q, want all %d entries the server lists loaded", got, want)
	}
	if got := evalJS[string](b, `document.querySelector('[data-test=audit] tbody tr[data-seq]:last-child td:last-child').textContent`); got != "r0000" {
		t.Errorf("the oldest entry shown is %q, want r0000 (paged to the start of the log)", got)
	}
	// Filters go to the address and come back from it.
	b.choose(`[data-test=audit-outcome]`, "refused")
	b.waitFor("refused only", `[...document.querySelectorAll('[data-test=audit] tbody tr[data-seq]')].every((r) => r.textContent.includes('refused'))`)
	b.typeInto(`[data-test=audit-action]`, "publish")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-filter]`)))
	b.waitFor("the address", `location.hash.includes('outcome=refused') && location.hash.includes('action=publish')`)
	hash := evalJS[string](b, `location.hash`)
	b.do(chromedp.Navigate(c.url+"#/services"), chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`)))
	b.do(chromedp.Navigate(c.url + hash))
	b.waitFor("the filters restored", `document.querySelector('[data-test=audit-outcome]')?.value === 'refused' && document.querySelector('[data-test=audit-action]').value === 'publish'`)
	b.waitFor("refused publishes only", `(() => { const rows = [...document.querySelectorAll('[data-test=audit] tbody tr[data-seq]')];
		return rows.length > 0 && rows.every((r) => r.textContent.includes('refused') && r.textContent.includes('publish')); })()`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-sessions]`)))
	b.choose(`[data-test=audit-outcome]`, "")
	b.typeInto(`[data-test=audit-action]`, "session.*")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=audit-filter]`)))
	b.waitFor("sign-ins when asked for", `(() => { const rows = [...document.querySelectorAll('[data-test=audit] tbody tr[data-seq]')];
		return rows.length > 0 && rows.every((r) => r.textContent.includes('session.open')); })()`)
	b.shot("25-audit-filters")
}

// auditTotal counts the entries the server lists for the console's first
// query (no filters), paging through the log: the generated ones and the
// test's own (the viewer token, the sign-in). A server that leaves console
// sign-ins out unless asked (issue 17) leaves them out here too.
func auditTotal(t *testing.T, c *console) int {
	t.Helper()
	n, before := 0, int64(0)
	for {
		es, err := c.api.Audit(context.Background(), access.Query{Limit: 500, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		n += len(es)
		if len(es) < 500 {
			return n
		}
		for _, e := range es {
			if before == 0 || e.Seq < before {
				before = e.Seq
			}
		}
	}
}

// TestServicesThousand: the services page makes one request per page, with
// 1,000 services, and sorts, filters and pages on the server.
func TestServicesThousand(t *testing.T) {
	var summaries, others atomic.Int32
	c := startConsoleWith(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/v1/summary/services":
				summaries.Add(1)
			case strings.HasPrefix(r.URL.Path, "/v1/services"):
				others.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	for i := range 1000 {
		name := fmt.Sprintf("svc-%04d", i)
		if i%100 == 0 {
			name = fmt.Sprintf("team-a-%04d", i)
		}
		if err := c.store.Create(ctx, configsvc.Service(name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.store.Publish(ctx, configsvc.Service("svc-0501"), configsvc.Changeset{Base: 0, Author: "ann", Message: "newest",
		Changes: []configsvc.Change{{File: "a.json", Content: []byte("{}")}}}); err != nil {
		t.Fatal(err)
	}
	lease, err := c.store.Register(ctx, configsvc.Instance{Service: "svc-0777", ID: "bad-1", Addr: "127.0.0.1:9", Status: configsvc.StatusRejected, Rejected: 1, Error: "nope", Started: time.Now(), Updated: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lease.Close() })

	b := newTab(t, startBrowser(t), c.url)
	b.signIn(c.admin)
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-service]`)))
	// Leave and come back: the list is one request again, timed to its first row.
	b.do(chromedp.Navigate(c.url+"#/pins"), chromedp.WaitVisible(chromedp.CSS(`[data-test=pins]`)))
	summaries.Store(0)
	others.Store(0)
	start := time.Now()
	b.do(chromedp.Navigate(c.url+"#/services"), chromedp.WaitVisible(chromedp.CSS(`[data-service]`)))
	t.Logf("1,000 services: first row %s after navigating to the list", time.Since(start).Round(time.Millisecond))
	if n := b.count(`[data-service]`); n != 50 {
		t.Errorf("%d rows, want a page of 50", n)
	}
	if s, o := summaries.Load(), others.Load(); s != 1 || o != 0 {
		t.Errorf("the services page made %d summary and %d other service requests, want one request", s, o)
	}
	if got := b.text(`[data-test=list-status]`); got != "Showing 1–50 of 1000" {
		t.Errorf("status %q", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=next-page]`)))
	b.waitFor("page 2", `document.querySelector('[data-test=list-status]').textContent === 'Showing 51–100 of 1000'`)
	if first := evalJS[string](b, `document.querySelector('[data-service]').dataset.service`); first != "svc-0051" {
		t.Errorf("page 2 starts with %q", first)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=prev-page]`)))
	b.waitFor("page 1", `document.querySelector('[data-test=list-status]').textContent === 'Showing 1–50 of 1000'`)
	b.choose(`[data-test=sort]`, "-updated")
	b.waitFor("newest first", `document.querySelector('[data-service]')?.dataset.service === 'svc-0501'`)
	b.typeInto(`[data-test=search]`, "team-a-*")
	b.waitFor("the glob filter", `document.querySelectorAll('[data-service]').length === 10 && [...document.querySelectorAll('[data-service]')].every((r) => r.dataset.service.startsWith('team-a-'))`)
	evalJS[bool](b, `(() => { const q = document.querySelector('[data-test=search]'); q.value = ''; q.dispatchEvent(new Event('input')); return true; })()`)
	b.waitFor("all services again", `document.querySelector('[data-test=list-status]').textContent === 'Showing 1–50 of 1000'`)
	// The owner filter: a grant pattern; a bad one is explained, not sent.
	asked := summaries.Load()
	b.typeInto(`[data-test=owner]`, "Team_A")
	b.waitFor("the owner hint", `document.querySelector('#owner-hint').textContent.length > 0`)
	time.Sleep(400 * time.Millisecond)
	if summaries.Load() != asked {
		t.Error("an invalid owner pattern was sent to the server")
	}
	b.typeInto(`[data-test=owner]`, "team-a-*")
	b.waitFor("the owner filter", `document.querySelectorAll('[data-service]').length === 10 && [...document.querySelectorAll('[data-service]')].every((r) => r.dataset.service.startsWith('team-a-'))`)
	if got := evalJS[string](b, `location.hash`); !strings.Contains(got, "owner=team-a-*") && !strings.Contains(got, "owner=team-a-%2A") {
		t.Errorf("address %q, want the owner filter in it", got)
	}
	evalJS[bool](b, `(() => { const q = document.querySelector('[data-test=owner]'); q.value = ''; q.dispatchEvent(new Event('input')); return true; })()`)
	b.waitFor("all services again", `document.querySelector('[data-test=list-status]').textContent === 'Showing 1–50 of 1000'`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=filter-rejected]`)))
	b.waitFor("services with rejected instances", `document.querySelectorAll('[data-service]').length === 1 && document.querySelector('[data-service]').dataset.service === 'svc-0777'`)
	if got := evalJS[string](b, `location.hash`); !strings.Contains(got, "rejected=true") || !strings.Contains(got, "sort=-updated") {
		t.Errorf("address %q, want the filters in it", got)
	}
	b.shot("09b-services-filtered")
	if s := summaries.Load(); s > 16 {
		t.Errorf("%d summary requests for 10 list changes", s)
	}
	if o := others.Load(); o != 0 {
		t.Errorf("%d per-service requests from the list", o)
	}
}
