package webui_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Gray releases in the console (issue 13): publish as gray from the
// editor's review with a preview of the cohort, the gray's page with its
// live cohort, widen, promote (refused not_ready, then forced), abandon,
// and a rollout watched to its end.

// TestGraySelectorSameAsServer checks the console's port of the sticky
// hash and of the selector rule against configsvc's: SHA-256 over inputs
// of every length across the block boundaries, GrayBucket over random
// ids (long ones too), and Matches over selectors with ids, label maps and
// percents. The cohort previews are only right if these agree exactly.
func TestGraySelectorSameAsServer(t *testing.T) {
	c := startConsole(t)
	b := newTab(t, startBrowser(t), c.url)
	b.do(chromedp.Navigate(c.url), chromedp.WaitVisible(chromedp.CSS(`[data-test=token]`)))
	rnd := rand.New(rand.NewPCG(13, 17))

	// SHA-256: lengths 0 to 200 bytes, random content.
	var inputs []string
	var want []string
	for n := 0; n <= 200; n++ {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(rnd.IntN(256))
		}
		inputs = append(inputs, hex.EncodeToString(buf))
		sum := sha256.Sum256(buf)
		want = append(want, hex.EncodeToString(sum[:]))
	}
	in, _ := json.Marshal(inputs)
	var got []string
	if err := json.Unmarshal([]byte(evalJS[string](b, `import('./js/graysel.js').then((m) => JSON.stringify(`+string(in)+`.map((x) => {
		const bytes = new Uint8Array(x.length / 2);
		for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(x.slice(2 * i, 2 * i + 2), 16);
		return Array.from(m.sha256(bytes), (v) => v.toString(16).padStart(2, '0')).join('');
	})))`)), &got); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sha256 of %d bytes: console %s, Go %s", i, got[i], want[i])
		}
	}

	// GrayBucket and Matches.
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789-._ABC"
	word := func(n int) string {
		var sb strings.Builder
		sb.WriteByte('a')
		for range n - 1 {
			sb.WriteByte(chars[rnd.IntN(len(chars))])
		}
		return sb.String()
	}
	type pair struct {
		Gray string             `json:"gray"`
		ID   string             `json:"id"`
		Lbl  map[string]string  `json:"labels"`
		Sel  configsvc.Selector `json:"sel"`
	}
	var pairs []pair
	var buckets []int
	var matches []bool
	for i := range 400 {
		gray := configsvc.NewGrayID()
		id := word(1 + rnd.IntN(20))
		if i%10 == 0 {
			id = word(60 + rnd.IntN(70)) // two SHA-256 blocks with the gray id
		}
		lbl := map[string]string{"zone": string("abc"[rnd.IntN(3)])}
		if rnd.IntN(2) == 0 {
			lbl["canary"] = "true"
		}
		sel := configsvc.Selector{Percent: float64(rnd.IntN(10001)) / 100}
		switch rnd.IntN(4) {
		case 0:
			sel.Instances = []string{id, "other"}
		case 1:
			sel.Labels = []map[string]string{{"zone": "b", "canary": "true"}, {"zone": "c"}}
		case 2:
			sel.Percent = 0
		}
		pairs = append(pairs, pair{Gray: gray, ID: id, Lbl: lbl, Sel: sel})
		buckets = append(buckets, configsvc.GrayBucket(gray, id))
		matches = append(matches, sel.Matches(gray, configsvc.Instance{ID: id, Labels: lbl}))
	}
	// Boundaries of the percent: an instance exactly at the cut is out.
	for _, p := range pairs[:20] {
		bk := configsvc.GrayBucket(p.Gray, p.ID)
		for _, pct := range []float64{float64(bk) / 100, float64(bk+1) / 100} {
			sel := configsvc.Selector{Percent: pct}
			pairs = append(pairs, pair{Gray: p.Gray, ID: p.ID, Sel: sel})
			buckets = append(buckets, bk)
			matches = append(matches, sel.Matches(p.Gray, configsvc.Instance{ID: p.ID}))
		}
	}
	in, _ = json.Marshal(pairs)
	var res struct {
		Buckets []int  `json:"buckets"`
		Matches []bool `json:"matches"`
	}
	if err := json.Unmarshal([]byte(evalJS[string](b, `import('./js/graysel.js').then((m) => { const ps = `+string(in)+`;
		return JSON.stringify({ buckets: ps.map((p) => m.grayBucket(p.gray, p.id)), matches: ps.map((p) => m.selectorMatches(p.sel, p.gray, { id: p.id, labels: p.labels })) }); })`)), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Buckets) != len(pairs) || len(res.Matches) != len(pairs) {
		t.Fatalf("the console answered %d buckets and %d matches for %d cases", len(res.Buckets), len(res.Matches), len(pairs))
	}
	yes, no := 0, 0
	for i, p := range pairs {
		if res.Buckets[i] != buckets[i] {
			t.Errorf("bucket of (%s, %s): console %d, server %d", p.Gray, p.ID, res.Buckets[i], buckets[i])
		}
		if res.Matches[i] != matches[i] {
			t.Errorf("(%s, %s %v) under %+v: console %v, server %v", p.Gray, p.ID, p.Lbl, p.Sel, res.Matches[i], matches[i])
		}
		if matches[i] {
			yes++
		} else {
			no++
		}
	}
	if yes == 0 || no == 0 {
		t.Fatalf("the cases do not cover both answers: %d match, %d do not", yes, no)
	}
}

// grayInstances registers live instances of a service and lets a test
// change what each reports about grays, as an SDK would.
type grayInstances struct {
	t      *testing.T
	c      *console
	insts  map[string]configsvc.Instance
	leases map[string]configsvc.Lease
}

func registerInstances(t *testing.T, c *console, svc string, rev int64, labels map[string]map[string]string) *grayInstances {
	t.Helper()
	gi := &grayInstances{t: t, c: c, insts: map[string]configsvc.Instance{}, leases: map[string]configsvc.Lease{}}
	now := time.Now().UTC()
	for id, l := range labels {
		in := configsvc.Instance{Service: svc, ID: id, Addr: "127.0.0.1:1", Labels: l, Revision: rev, Status: configsvc.StatusApplied, Started: now, Updated: now}
		lease, err := c.store.Register(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lease.Close() })
		gi.insts[id], gi.leases[id] = in, lease
	}
	return gi
}

// report makes instance id report status (and reason) about gray.
func (gi *grayInstances) report(id, gray string, status configsvc.GrayApplyStatus, reason string) {
	gi.t.Helper()
	in := gi.insts[id]
	if in.Grays == nil {
		in.Grays = map[string]configsvc.GrayStatus{}
	}
	in.Grays[gray] = configsvc.GrayStatus{Status: status, Reason: reason, Version: 1}
	in.Updated = time.Now().UTC()
	if err := gi.leases[id].Update(context.Background(), in); err != nil {
		gi.t.Fatalf("report of %s: %v", id, err)
	}
	gi.insts[id] = in
}

// ids returns the ids of the instances, sorted.
func (gi *grayInstances) ids() []string {
	out := make([]string, 0, len(gi.insts))
	for id := range gi.insts {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// cohortRows returns "id:status" of every row of the gray page's cohort, in order.
func cohortRows(b *tab) string {
	return evalJS[string](b, `[...document.querySelectorAll('[data-test=cohort] tr[data-instance]')].map((r) => r.dataset.instance + ':' + r.dataset.status).join(' ')`)
}

// grayFromPage returns the id of the gray the page shows (from its address).
func grayFromPage(b *tab) string {
	b.t.Helper()
	b.waitFor("a gray's page", `/#\/services\/[^/]+\/grays\/g-[0-9a-f]{12}$/.test(location.href) && document.querySelector('[data-test=cohort-panel] [data-test=selector]') !== null`)
	h := evalJS[string](b, `location.hash`)
	return h[strings.LastIndex(h, "/")+1:]
}

// openGrayReview edits file in the editor, opens the review and chooses "A gray".
func openGrayReview(b *tab, file, content string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(`.files [data-file="` + file + `"]`)))
	b.waitFor(file, `document.querySelector('.files [aria-current=true]')?.dataset.file === '`+file+`'`)
	b.setEditor(content)
	b.waitFor("publish offered", `document.querySelector('[data-test=review]')?.disabled === false`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=review]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=reach-gray]`)))
	b.do(chromedp.Click(chromedp.CSS(`[data-test=reach-gray]`)), chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=sel-preview]`)))
	if n := b.count(`[data-test=confirm-publish]:not([hidden])`); n != 0 {
		b.t.Errorf("the publish button still shows once a gray is chosen")
	}
}

// TestBrowserGrays is the gray release flow of issue 13 in the console.
func TestBrowserGrays(t *testing.T) {
	c := startConsoleOpts(t, consoleOpts{rollouts: true})
	ctx := context.Background()
	orders := configsvc.Service("orders")
	rev := mustService(t, c, "orders", map[string]string{"app.json": appV1, "db.yaml": "pool: 10\n", "limits.toml": limitsV1})
	gi := registerInstances(t, c, "orders", rev, map[string]map[string]string{
		"orders-1": {"zone": "a"}, "orders-2": {"zone": "b"}, "orders-3": {"zone": "b", "canary": "true"}, "orders-4": {"zone": "c"},
	})
	browser := startBrowser(t)
	b := newTab(t, browser, c.url)
	b.signIn(c.admin)
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`)))

	t.Log("a gray by labels from the editor, with the preview of its cohort")
	goTo(b, "#/services/orders/files", `[data-test=editor] .cm-content`)
	openGrayReview(b, "db.yaml", "pool: 50\n")
	b.waitFor("the preview of 4 instances", `document.querySelector('[data-test=sel-summary]')?.textContent.startsWith('0 of 4 live instances match')`)
	b.typeInto(`.modal [data-test=sel-labels]`, "zone=b")
	b.waitFor("the preview of zone=b", `document.querySelector('[data-test=sel-summary]').textContent.startsWith('2 of 4 live instances match')`)
	if got := evalJS[string](b, `[...document.querySelectorAll('[data-test=sel-preview] tr[data-in=true]')].map((r) => r.dataset.instance).join(' ')`); got != "orders-2 orders-3" {
		t.Errorf("the preview puts %q in the cohort, want orders-2 orders-3", got)
	}
	b.typeInto(`.modal [data-test=gray-name]`, "bigger pool")
	b.typeInto(`.modal [data-test=message]`, "pool 10 → 50")
	b.shot("gray-create-labels")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-gray]`)))
	g1 := grayFromPage(b)
	if h := headRevision(t, c.store, "orders"); h != rev {
		t.Fatalf("creating a gray moved main to revision %d", h)
	}
	g, err := c.api.GrayView(ctx, orders, g1)
	if err != nil || g.Name != "bigger pool" || g.Message != "pool 10 → 50" || g.BaseRevision != rev || !slices.Equal(g.Files, []string{"db.yaml"}) ||
		len(g.Selector.Labels) != 1 || g.Selector.Labels[0]["zone"] != "b" || len(g.Changes) != 1 || *g.Changes[0].Content != "pool: 50\n" {
		t.Fatalf("gray created from the console: %+v, %v", g, err)
	}
	b.waitFor("the cohort pending", `document.querySelector('[data-test=cohort-summary]')?.textContent.includes('2 live instances in the cohort: 0 applied, 2 pending, 0 rejected')`)
	if got := cohortRows(b); got != "orders-2:pending orders-3:pending" {
		t.Errorf("cohort rows %q", got)
	}
	// The file list marks the file the gray holds, and the files tab names the gray.
	goTo(b, "#/services/orders/files", `[data-test=active-grays]`)
	if got := b.text(`[data-test=active-grays]`); !strings.Contains(got, g1+" (db.yaml)") {
		t.Errorf("active grays notice %q", got)
	}
	if got := b.text(`.files [data-file="db.yaml"] .badge`); got != "gray" {
		t.Errorf("db.yaml is marked %q, want gray", got)
	}
	// A second gray on the file is not offered: the review names the gray that holds it.
	openGrayReview(b, "db.yaml", "pool: 70\n")
	if got := b.text(`[data-test=gray-held]`); !strings.Contains(got, "db.yaml is held by active gray "+g1) {
		t.Errorf("held notice %q", got)
	}
	if !evalJS[bool](b, `document.querySelector('[data-test=confirm-gray]').disabled`) {
		t.Error("a gray on a file another gray holds is offered")
	}
	b.do(chromedp.KeyEvent(keyEscape))
	b.waitFor("the dialog closed", `!document.querySelector('.modal')`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=revert-file]`)))

	t.Log("the cohort's reports arrive live")
	goTo(b, "#/services/orders/grays/"+g1, `[data-test=cohort]`)
	gi.report("orders-2", g1, configsvc.GrayApplied, "")
	gi.report("orders-3", g1, configsvc.GrayRejected, "pool: 50 is above the limit of 40")
	b.waitFor("the reports", `document.querySelector('[data-test=cohort-summary]')?.textContent.includes('1 applied, 0 pending, 1 rejected')`)
	if got := b.text(`[data-test=cohort] tr[data-instance=orders-3]`); !strings.Contains(got, "rejected") || !strings.Contains(got, "pool: 50 is above the limit of 40") {
		t.Errorf("orders-3's row %q, want rejected with the reason", got)
	}
	if got := b.text(`[data-test=gray-changes]`); !strings.Contains(got, "-pool: 10") || !strings.Contains(got, "+pool: 50") {
		t.Errorf("the gray's diff against main %q", got)
	}

	t.Log("widen: orders-1 by id joins")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=widen]`)), chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=pick-orders-1]`)))
	b.do(chromedp.Click(chromedp.CSS(`.modal [data-test=pick-orders-1]`)))
	b.waitFor("orders-1 joins", `document.querySelector('[data-test=sel-preview] tr[data-instance=orders-1] [data-test=joins]') !== null && document.querySelector('[data-test=sel-summary]').textContent.includes('1 join, 0 leave')`)
	if got := evalJS[string](b, `document.querySelector('.modal [data-test=sel-instances]').value`); got != "orders-1" {
		t.Errorf("ticking orders-1 wrote %q into the ids", got)
	}
	b.shot("gray-widen")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-selector]`)))
	b.waitFor("the wider cohort", `document.querySelector('[data-test=cohort-summary]')?.textContent.startsWith('3 live instances')`)
	if got := cohortRows(b); got != "orders-1:pending orders-2:applied orders-3:rejected" {
		t.Errorf("cohort rows after widening %q", got)
	}
	if g, _ := c.api.GrayView(ctx, orders, g1); !slices.Equal(g.Selector.Instances, []string{"orders-1"}) || g.Version != 2 {
		t.Errorf("selector after widening: %+v (version %d)", g.Selector, g.Version)
	}

	t.Log("promote: refused not_ready, then forced")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=promote]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=confirm-promote]`)))
	if got := b.text(`[data-test=promote-readiness]`); !strings.Contains(got, "2 of 3 cohort instances have not applied it") {
		t.Errorf("readiness %q", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-promote]`)))
	b.waitFor("the refusal", `document.querySelectorAll('[data-test=not-ready] li').length === 2`)
	if got := b.text(`[data-test=not-ready]`); !strings.Contains(got, "orders-1") || !strings.Contains(got, "pending") || !strings.Contains(got, "orders-3") || !strings.Contains(got, "pool: 50 is above the limit of 40") {
		t.Errorf("not ready list %q", got)
	}
	if h := headRevision(t, c.store, "orders"); h != rev {
		t.Fatalf("a refused promote moved main to %d", h)
	}
	if !evalJS[bool](b, `document.querySelector('[data-test=confirm-promote]').disabled`) {
		t.Error("after the refusal the promote button is enabled before force is ticked")
	}
	b.shotAsIs("gray-promote-not-ready")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=force]`)))
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-promote]`)))
	b.waitFor("the promoted gray", `document.querySelector('[data-test=gray-state]')?.textContent === 'promoted' && document.querySelector('[data-test=gray-ended]') !== null`)
	if h := headRevision(t, c.store, "orders"); h != rev+1 || fileAt(t, c.store, "orders", "db.yaml", rev+1) != "pool: 50\n" {
		t.Fatalf("after the forced promote main is at %d with db.yaml %q", h, fileAt(t, c.store, "orders", "db.yaml", h))
	}
	if got := b.text(`[data-test=gray-ended]`); !strings.Contains(got, "revision "+strconv.FormatInt(rev+1, 10)) || !strings.Contains(got, "(forced)") {
		t.Errorf("ended notice %q", got)
	}
	if n := b.count(`[data-test=gray-actions]`); n != 0 {
		t.Error("an ended gray still offers its actions")
	}
	rev++

	t.Log("a gray by percent: the expected count before, the exact cohort after")
	goTo(b, "#/services/orders/files", `[data-test=editor] .cm-content`)
	openGrayReview(b, "limits.toml", "[limits]\nrps = 200\n")
	b.typeInto(`.modal [data-test=sel-percent]`, "50")
	b.waitFor("the expected count", `document.querySelector('[data-test=sel-summary]').textContent.startsWith('about 2 of 4 live instances by 50 %')`)
	if n := b.count(`[data-test=sel-preview] tr[data-in=true]`); n != 0 {
		t.Errorf("%d instances are shown in a cohort decided by a gray id not known yet", n)
	}
	b.shot("gray-create-percent")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-gray]`)))
	g2 := grayFromPage(b)
	var want []string
	for _, id := range gi.ids() {
		if configsvc.GrayBucket(g2, id) < 5000 {
			want = append(want, id+":pending")
		}
	}
	b.waitFor("the exact cohort", fmt.Sprintf(`[...document.querySelectorAll('[data-test=cohort] tr[data-instance]')].map((r) => r.dataset.instance + ':' + r.dataset.status).join(' ') === %q`, strings.Join(want, " ")))
	// Main moves underneath: the page says which of the gray's files main
	// changed, live, and compares with main now or with the gray's base.
	if _, err := c.api.PutFile(ctx, orders, "limits.toml", []byte("[limits]\nrps = 150\n")); err != nil {
		t.Fatal(err)
	}
	rev++
	b.waitFor("main_changed", `document.querySelector('[data-test=main-changed]')?.textContent.includes('limits.toml') && document.querySelector('[data-test=compare-with]')?.offsetParent !== null`)
	b.waitFor("the diff against main now", `document.querySelector('[data-test=gray-changes]').textContent.includes('-rps = 150')`)
	b.choose(`[data-test=compare-with]`, "base")
	b.waitFor("the diff against the gray's base", `document.querySelector('[data-test=gray-changes]').textContent.includes('-rps = 100')`)

	// Widening to 100 %: the preview is exact now; the rest join.
	b.do(chromedp.Click(chromedp.CSS(`[data-test=widen]`)), chromedp.WaitVisible(chromedp.CSS(`.modal [data-test=sel-percent]`)))
	b.typeInto(`.modal [data-test=sel-percent]`, "100")
	b.waitFor("everyone in", `document.querySelectorAll('[data-test=sel-preview] tr[data-in=true]').length === 4`)
	if got, want := b.count(`[data-test=sel-preview] [data-test=joins]`), 4-len(want); got != want {
		t.Errorf("%d instances join at 100 %%, want %d", got, want)
	}
	b.do(chromedp.KeyEvent(keyEscape))
	b.waitFor("the dialog closed", `!document.querySelector('.modal')`)

	t.Log("abandon with a typed confirmation")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=abandon]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=confirm-abandon-id]`)))
	if !evalJS[bool](b, `document.querySelector('[data-test=confirm-abandon]').disabled`) {
		t.Error("abandon is enabled before the id is typed")
	}
	b.typeInto(`[data-test=confirm-abandon-id]`, g2)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-abandon]`)))
	b.waitFor("the abandoned gray", `document.querySelector('[data-test=gray-state]')?.textContent === 'abandoned'`)
	if g, err := c.store.Gray(ctx, orders, g2); err != nil || g.State != configsvc.GrayAbandoned || headRevision(t, c.store, "orders") != rev {
		t.Fatalf("after abandon: %+v, %v", g.State, err)
	}

	t.Log("a rollout started from the page, watched to its promote")
	g3, err := c.api.CreateGray(ctx, orders, api.GrayRequest{Name: "new port", Changes: []api.Change{api.PutChange("app.json", []byte(appV3))},
		Selector: api.Selector{Labels: []map[string]string{{"zone": "b"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range gi.ids() {
		gi.report(id, g3.ID, configsvc.GrayApplied, "")
	}
	goTo(b, "#/services/orders/grays/"+g3.ID, `[data-test=start-rollout]`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=start-rollout]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=steps-editor]`)))
	if got := evalJS[string](b, `[...document.querySelectorAll('[data-test=steps-editor] tbody tr')].map((r) => r.querySelector('input').value + '%:' + r.querySelectorAll('input')[1].value).join(',')`); got != "5%:2m,25%:5m,100%:2m" {
		t.Errorf("default steps %q", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-test=remove-step-1]`)))
	b.typeInto(`[data-test=step-percent-0]`, "50")
	b.typeInto(`[data-test=step-bake-0]`, "2s")
	b.typeInto(`[data-test=step-bake-1]`, "2s")
	b.typeInto(`[data-test=step-percent-1]`, "40")
	b.waitFor("the ascending rule", `document.querySelector('[data-test=rollout-problem]').textContent.includes('percents ascend')`)
	b.typeInto(`[data-test=step-percent-1]`, "100")
	b.waitFor("no problem", `document.querySelector('[data-test=rollout-problem]').textContent === ''`)
	if got := b.text(`[data-test=step-cohort-1]`); got != "4" {
		t.Errorf("cohort at 100 %% = %q, want 4", got)
	}
	b.shot("gray-rollout-start")
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-rollout]`)))
	b.waitFor("the bake", `document.querySelector('[data-test=rollout-state]')?.textContent === 'baking'`)
	b.shot("gray-rollout-baking")
	b.waitFor("the promote by the rollout", `document.querySelector('[data-test=rollout-state]')?.textContent === 'promoted' && document.querySelector('[data-test=gray-state]')?.textContent === 'promoted'`)
	if got := evalJS[string](b, `[...document.querySelectorAll('[data-test=rollout-steps] tbody tr')].map((r) => r.lastElementChild.textContent).join(',')`); got != "done,done" {
		t.Errorf("steps after the promote %q", got)
	}
	if h := headRevision(t, c.store, "orders"); h != rev+1 || fileAt(t, c.store, "orders", "app.json", h) != appV3 {
		t.Fatalf("after the rollout main is at %d", h)
	}
	rev++

	t.Log("a rollout aborted by the acks gate shows the gate, its instances and figures")
	g4, err := c.api.CreateGray(ctx, orders, api.GrayRequest{Changes: []api.Change{api.PutChange("db.yaml", []byte("pool: 60\n"))},
		Selector: api.Selector{Labels: []map[string]string{{"canary": "true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	gi.report("orders-3", g4.ID, configsvc.GrayRejected, "pool: 60 is above the limit of 40")
	goTo(b, "#/services/orders/grays/"+g4.ID, `[data-test=start-rollout]`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=start-rollout]`)), chromedp.WaitVisible(chromedp.CSS(`[data-test=confirm-rollout]`)))
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-rollout]`)))
	b.waitFor("the failed gate", `document.querySelector('[data-test=failed-gate]') !== null && document.querySelector('[data-test=gray-state]')?.textContent === 'abandoned'`)
	if got := b.text(`[data-test=failed-gate]`); !strings.Contains(got, "The acks gate failed on orders-3") {
		t.Errorf("failed gate %q", got)
	}
	if got := evalJS[string](b, `[...document.querySelectorAll('[data-test=gate-figures] tr')].map((r) => r.cells[0].textContent + '=' + r.cells[1].textContent).join(' ')`); got != "max_rejected=0 rejected=1" {
		t.Errorf("gate figures %q, want max_rejected=0 rejected=1", got)
	}
	if got := b.text(`[data-test=rollout-state]`); got != "aborted" {
		t.Errorf("rollout state %q, want aborted", got)
	}
	b.shot("gray-rollout-aborted")

	t.Log("a gray of a shared group reaches the instances of the services that link it")
	grp := configsvc.Group("common")
	if _, _, err := c.api.Create(ctx, grp); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.PutFile(ctx, grp, "log.yaml", []byte("level: info\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.Link(ctx, "orders", "common"); err != nil {
		t.Fatal(err)
	}
	goTo(b, "#/shared/common/files", `[data-test=editor] .cm-content`)
	openGrayReview(b, "log.yaml", "level: debug\n")
	b.waitFor("the instances of orders", `document.querySelectorAll('.modal [data-test=sel-preview] tr[data-instance]').length === 4`)
	b.do(chromedp.Click(chromedp.CSS(`.modal [data-test=pick-orders-4]`)))
	b.waitFor("orders-4 in", `document.querySelector('[data-test=sel-preview] tr[data-instance=orders-4]').dataset.in === 'true'`)
	b.do(chromedp.Click(chromedp.CSS(`[data-test=confirm-gray]`)))
	b.waitFor("the group's gray", `/#\/shared\/common\/grays\/g-[0-9a-f]{12}$/.test(location.href) && document.querySelector('[data-test=cohort] tr[data-instance=orders-4]') !== null`)
	if got := evalJS[string](b, `[...document.querySelector('[data-test=cohort] tr[data-instance=orders-4]').cells].map((c) => c.textContent).join('|')`); !strings.HasPrefix(got, "orders|orders-4|zone=c|pending|") {
		t.Errorf("the group's cohort row %q, want service orders and instance orders-4", got)
	}
	if gs, err := c.api.Grays(ctx, grp); err != nil || len(gs) != 1 || !slices.Equal(gs[0].Selector.Instances, []string{"orders-4"}) {
		t.Fatalf("the group's grays: %+v, %v", gs, err)
	}
	// A viewer sees the gray and its cohort, and no control that changes it.
	vw := newTab(t, browser, c.url)
	vw.signIn(c.viewer)
	vw.do(chromedp.WaitVisible(chromedp.CSS(`[data-test=services]`)))
	goTo(vw, evalJS[string](b, `location.hash`), `[data-test=cohort] tr[data-instance=orders-4]`)
	if n := vw.count(`[data-test=gray-actions], [data-test=widen], [data-test=promote], [data-test=abandon], [data-test=start-rollout]`); n != 0 {
		t.Errorf("a viewer is offered %d controls that change the gray", n)
	}

	t.Log("the grays tab and history list the ended grays with their state")
	goTo(b, "#/services/orders/grays", `[data-test=ended-grays]`)
	b.waitFor("four ended grays", `document.querySelectorAll('[data-test=ended-grays] tr[data-gray]').length === 4`)
	states := evalJS[string](b, `[...document.querySelectorAll('[data-test=ended-grays] tr[data-gray]')].map((r) => r.dataset.gray + ':' + r.querySelector('[data-test=gray-state]').textContent).join(' ')`)
	for _, w := range []string{g1 + ":promoted", g2 + ":abandoned", g3.ID + ":promoted", g4.ID + ":abandoned"} {
		if !strings.Contains(states, w) {
			t.Errorf("ended grays %q lack %s", states, w)
		}
	}
	if n := b.count(`[data-test=active-gray-list] tr[data-gray]`); n != 0 {
		t.Errorf("%d active grays listed, want none", n)
	}
	goTo(b, "#/services/orders/history", `[data-test=history-grays] [data-test=ended-grays]`)
	b.waitFor("the promotes in history", `document.querySelectorAll('[data-test=promoted-gray]').length === 2`)
	if got := b.text(`[data-revision="` + strconv.FormatInt(rev, 10) + `"] [data-test=promoted-gray]`); got != "promotes gray "+g3.ID {
		t.Errorf("revision %d names %q", rev, got)
	}
}
