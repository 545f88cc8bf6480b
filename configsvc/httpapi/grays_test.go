package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestGrayAPI runs the gray routes (issue 13) on both stores: create,
// the one-gray-per-file conflict, content validation, list and view with
// the cohort's reports and main_changed, selector changes, rollout start,
// abandon, promote refused while not ready and forced, the history of
// ended grays, the grays events of the watch stream, the audit of every
// change, and the same under /v1/shared. Every answer is checked against
// openapi.json.
func TestGrayAPI(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { testGrayAPI(t, newEnv(t)) })
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		testGrayAPI(t, newEnvOn(t, configsvc.Validating(mustZK(t, zk, "/sluice-grays"), format.Validator{})))
	})
}

// grayEnv is a testEnv with an API client and the OpenAPI document, whose
// requests check every answer against the document.
type grayEnv struct {
	*testEnv
	t    *testing.T
	c    *api.Client
	spec *spec
}

// call does r, fails unless the status is want, and checks the answer
// against openapi.json.
func (g *grayEnv) call(want int, r req) *response {
	g.t.Helper()
	if r.token == "" {
		r.token = g.admin
	}
	resp := g.do(r)
	if resp.status != want {
		g.t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, resp.status, want, resp.body)
	}
	path, _, _ := strings.Cut(r.path, "?")
	op := g.spec.match(r.method, path)
	if op == "" {
		g.t.Fatalf("%s %s: no operation in openapi.json", r.method, path)
	}
	if err := g.spec.checkResponse(op, resp.status, resp.header.Get("Content-Type"), resp.body); err != nil {
		g.t.Fatalf("%s %s: answer does not match openapi.json: %v\n%s", r.method, r.path, err, resp.body)
	}
	return resp
}

// gray reads one gray's view.
func (g *grayEnv) gray(base, id string) api.GrayView {
	g.t.Helper()
	var v api.GrayView
	g.call(http.StatusOK, req{method: "GET", path: base + "/grays/" + id}).json(g.t, &v)
	return v
}

// register registers (or refreshes) an instance of orders with labels and
// gray reports.
func (g *grayEnv) register(id string, labels map[string]string, grays map[string]configsvc.GrayStatus) {
	g.t.Helper()
	r := g.do(req{method: "PUT", path: "/v1/services/orders/instances/" + id, token: g.admin,
		body: configsvc.Instance{Addr: "127.0.0.1:1", Labels: labels, Status: configsvc.StatusApplied, Revision: 1, Grays: grays}})
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		g.t.Fatalf("register %s: %d %s", id, r.status, r.body)
	}
}

func cohortOf(v api.GrayView) string {
	var parts []string
	for _, m := range v.Cohort {
		s := m.ID + ":" + string(m.Status)
		if m.Reason != "" {
			s += "(" + m.Reason + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func testGrayAPI(t *testing.T, e *testEnv) {
	e = e.withT(t)
	c, err := api.New(api.Config{Servers: []string{e.http.URL}, Token: e.admin, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	g := &grayEnv{testEnv: e, t: t, c: c, spec: loadSpec(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orders := configsvc.Service("orders")
	const base = "/v1/services/orders"
	e.mustService("orders", map[string]string{"a.yaml": "pool: 10\n", "b.json": `{"v":1}`, "c.txt": "notes"})
	g.register("orders-1", map[string]string{"zone": "a"}, nil)
	g.register("orders-2", map[string]string{"zone": "b"}, nil)
	g.register("orders-3", map[string]string{"zone": "b"}, nil)

	// The watch stream opens with the active grays (none yet).
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events := c.Watch(wctx, orders, 1)
	nextGrays := func(what string) []configsvc.GraySummary {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.GraysChanged {
					return ev.Grays
				}
			case <-timeout:
				t.Fatalf("no grays event %s", what)
			}
		}
	}
	if got := nextGrays("when the stream opens"); len(got) != 0 {
		t.Fatalf("grays when the stream opens: %+v, want none", got)
	}

	// Create: 201 with the gray, without content; main does not move.
	var g1 api.Gray
	g.call(http.StatusCreated, req{method: "POST", path: base + "/grays", body: api.GrayRequest{Name: "bigger pool", Message: "try 50",
		Changes:  []api.Change{api.PutChange("a.yaml", []byte("pool: 50\n")), api.DeleteChange("c.txt")},
		Selector: api.Selector{Labels: []map[string]string{{"zone": "b"}}}}}).json(t, &g1)
	if configsvc.ValidateGrayID(g1.ID) != nil || g1.Ref != "service/orders" || g1.State != "active" || g1.Version != 1 || g1.BaseRevision != 1 ||
		!slices.Equal(g1.Files, []string{"a.yaml", "c.txt"}) || g1.Author == "" || g1.Name != "bigger pool" || g1.Changes[0].Content != nil || len(g1.MainChanged) != 0 {
		t.Fatalf("created gray %+v", g1)
	}
	if h, _ := e.store.Head(ctx, orders); h.Revision != 1 {
		t.Fatalf("creating a gray moved main to %d", h.Revision)
	}
	if got := nextGrays("after the create"); len(got) != 1 || got[0].ID != g1.ID || !slices.Equal(got[0].Files, g1.Files) {
		t.Fatalf("grays event after the create: %+v", got)
	}

	// One active gray per file: 409 naming the file and the gray.
	r := g.call(http.StatusConflict, req{method: "POST", path: base + "/grays", body: api.GrayRequest{
		Changes: []api.Change{api.PutChange("a.yaml", []byte("pool: 70\n"))}, Selector: api.Selector{Percent: 5}}})
	if _, err := c.CreateGray(ctx, orders, api.GrayRequest{Changes: []api.Change{api.PutChange("a.yaml", []byte("pool: 70\n"))}}); !errors.Is(err, configsvc.ErrConflict) ||
		!strings.Contains(string(r.body), `"file":"a.yaml"`) || !strings.Contains(string(r.body), `"gray":"`+g1.ID+`"`) {
		t.Fatalf("second gray on a.yaml: %s; client: %v", r.body, err)
	}
	// Content is validated as a publish of it would be: 422 with the position.
	if r := g.call(http.StatusUnprocessableEntity, req{method: "POST", path: base + "/grays", body: api.GrayRequest{
		Changes: []api.Change{api.PutChange("b.json", []byte(`{"v":`))}}}); !strings.Contains(string(r.body), `"line"`) {
		t.Fatalf("bad JSON in a gray: %s", r.body)
	}
	g.call(http.StatusBadRequest, req{method: "POST", path: base + "/grays", body: api.GrayRequest{
		Changes: []api.Change{api.PutChange("b.json", []byte(`{}`))}, Selector: api.Selector{Percent: 101}}})
	g.call(http.StatusBadRequest, req{method: "GET", path: base + "/grays/not-a-gray"})
	g.call(http.StatusNotFound, req{method: "GET", path: base + "/grays/g-000000000000"})

	// The view: content, and the cohort (zone b) with its reports.
	v := g.gray(base, g1.ID)
	if cohortOf(v) != "orders-2:pending orders-3:pending" || v.Changes[0].Content == nil || *v.Changes[0].Content != "pool: 50\n" || !v.Changes[1].Delete {
		t.Fatalf("view: cohort %q, changes %+v", cohortOf(v), v.Changes)
	}
	g.register("orders-2", map[string]string{"zone": "b"}, map[string]configsvc.GrayStatus{g1.ID: {Status: configsvc.GrayApplied, Version: 1}})
	g.register("orders-3", map[string]string{"zone": "b"}, map[string]configsvc.GrayStatus{g1.ID: {Status: configsvc.GrayRejected, Reason: "pool too big", Version: 1}})
	if v := g.gray(base, g1.ID); cohortOf(v) != "orders-2:applied orders-3:rejected(pool too big)" {
		t.Fatalf("cohort after the reports: %q", cohortOf(v))
	}
	// Promote is refused while an instance rejected it: 409 not_ready naming it.
	r = g.call(http.StatusConflict, req{method: "POST", path: base + "/grays/" + g1.ID + "/promote", body: api.PromoteRequest{}})
	if code := r.errCode(t); code != api.CodeNotReady || !strings.Contains(string(r.body), `"id":"orders-3"`) || strings.Contains(string(r.body), `"id":"orders-2"`) {
		t.Fatalf("promote while rejected: %s", r.body)
	}
	_, err = c.PromoteGray(ctx, orders, g1.ID, api.PromoteRequest{})
	if nr := api.NotReadyInstances(err); !errors.Is(err, configsvc.ErrConflict) || len(nr) != 1 || nr[0].ID != "orders-3" || nr[0].Status != configsvc.GrayRejected {
		t.Fatalf("client promote while rejected: %v, instances %+v", err, nr)
	}

	// Main moves underneath: the view names the gray's files main changed.
	e.must(http.StatusOK, req{method: "PUT", path: base + "/files/a.yaml", token: e.admin, body: "pool: 20\n", contentType: "text/plain"})
	if v := g.gray(base, g1.ID); !slices.Equal(v.MainChanged, []string{"a.yaml"}) {
		t.Fatalf("main_changed after main wrote a.yaml: %v", v.MainChanged)
	}

	// Narrow the selector to orders-1: 200, version 2, new cohort.
	var sel api.Gray
	g.call(http.StatusOK, req{method: "PUT", path: base + "/grays/" + g1.ID + "/selector",
		body: api.SelectorRequest{Selector: api.Selector{Instances: []string{"orders-1"}}}}).json(t, &sel)
	if sel.Version != 2 || !slices.Equal(sel.Selector.Instances, []string{"orders-1"}) || len(sel.Selector.Labels) != 0 {
		t.Fatalf("after the selector change: %+v", sel)
	}
	if v := g.gray(base, g1.ID); cohortOf(v) != "orders-1:pending" {
		t.Fatalf("cohort after the selector change: %q", cohortOf(v))
	}
	if got := nextGrays("after the selector change"); len(got) != 1 || got[0].Version != 2 || !slices.Equal(got[0].Selector.Instances, []string{"orders-1"}) {
		t.Fatalf("grays event after the selector change: %+v", got)
	}
	g.call(http.StatusBadRequest, req{method: "PUT", path: base + "/grays/" + g1.ID + "/selector",
		body: api.SelectorRequest{Selector: api.Selector{Labels: []map[string]string{{}}}}})

	// Start a rollout: 202; the first step's percent is the selector's.
	rollout := api.RolloutRequest{Steps: []api.RolloutStep{{Percent: 5, Bake: configsvc.Duration(2 * time.Minute)}, {Percent: 100, Bake: configsvc.Duration(time.Minute)}},
		MaxErrorRate: 0.02}
	var ro api.Gray
	g.call(http.StatusAccepted, req{method: "POST", path: base + "/grays/" + g1.ID + "/rollout", body: rollout}).json(t, &ro)
	if ro.Rollout == nil || ro.Rollout.State.State != configsvc.RolloutApplying || ro.Rollout.State.Step != 0 || ro.Rollout.State.Percent != 5 ||
		ro.Selector.Percent != 5 || time.Duration(ro.Rollout.ApplyTimeout) != configsvc.DefaultRolloutApplyTimeout {
		t.Fatalf("after starting the rollout: %+v rollout %+v", ro, ro.Rollout)
	}
	if got := nextGrays("after the rollout start"); len(got) != 1 || got[0].Version != 3 || got[0].Selector.Percent != 5 {
		t.Fatalf("grays event after the rollout start: %+v", got)
	}
	g.call(http.StatusConflict, req{method: "POST", path: base + "/grays/" + g1.ID + "/rollout", body: rollout})
	g.call(http.StatusConflict, req{method: "PUT", path: base + "/grays/" + g1.ID + "/selector", body: api.SelectorRequest{Selector: api.Selector{Percent: 50}}})
	g.call(http.StatusBadRequest, req{method: "POST", path: base + "/grays/" + g1.ID + "/rollout", body: api.RolloutRequest{
		Steps: []api.RolloutStep{{Percent: 50}, {Percent: 10}}}})

	// Abandon: 200, abandoned, its rollout aborted; a second time is 409.
	var ab api.Gray
	g.call(http.StatusOK, req{method: "DELETE", path: base + "/grays/" + g1.ID}).json(t, &ab)
	if ab.State != "abandoned" || ab.Ended == nil || !strings.HasPrefix(ab.EndReason, "abandoned by ") || ab.Rollout == nil || ab.Rollout.State.State != configsvc.RolloutAborted {
		t.Fatalf("abandoned gray %+v", ab)
	}
	g.call(http.StatusConflict, req{method: "DELETE", path: base + "/grays/" + g1.ID})
	if v := g.gray(base, g1.ID); len(v.Cohort) != 0 || v.State != "abandoned" {
		t.Fatalf("view of the abandoned gray: cohort %q, state %s", cohortOf(v), v.State)
	}
	if got := nextGrays("after the abandon"); len(got) != 0 {
		t.Fatalf("grays event after the abandon: %+v", got)
	}

	// Promote once the cohort applied it: 201 with main's new revision,
	// main + the gray's changes.
	g2, err := c.CreateGray(ctx, orders, api.GrayRequest{Name: "second", Changes: []api.Change{api.PutChange("a.yaml", []byte("pool: 60\n")), api.DeleteChange("c.txt")},
		Selector: api.Selector{Instances: []string{"orders-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	g.register("orders-1", map[string]string{"zone": "a"}, map[string]configsvc.GrayStatus{g2.ID: {Status: configsvc.GrayApplied, Version: 1}})
	view, err := c.GrayView(ctx, orders, g2.ID)
	if err != nil || cohortOf(view) != "orders-1:applied" {
		t.Fatalf("GrayView: %q, %v", cohortOf(view), err)
	}
	var pr api.PromoteResult
	g.call(http.StatusCreated, req{method: "POST", path: base + "/grays/" + g2.ID + "/promote", body: api.PromoteRequest{Message: "bigger pool for all"}}).json(t, &pr)
	if pr.Revision != 3 || pr.Gray.State != "promoted" || pr.Gray.EndedRevision != 3 {
		t.Fatalf("promote: %+v", pr)
	}
	snap, err := c.Snapshot(ctx, orders, 0)
	if err != nil || snap.Revision != 3 || string(snap.Files["a.yaml"]) != "pool: 60\n" || snap.Files["c.txt"] != nil || string(snap.Files["b.json"]) != `{"v":1}` {
		t.Fatalf("main after the promote: %v %v", snap, err)
	}
	if rev, err := c.Revision(ctx, orders, 3); err != nil || rev.Message != "bigger pool for all" || rev.Author == "" {
		t.Fatalf("promote revision %+v, %v", rev, err)
	}

	// Force promotes a gray whose cohort has not applied it.
	g3, err := c.CreateGray(ctx, orders, api.GrayRequest{Changes: []api.Change{api.PutChange("b.json", []byte(`{"v":3}`))}, Selector: api.Selector{Percent: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PromoteGray(ctx, orders, g3.ID, api.PromoteRequest{}); len(api.NotReadyInstances(err)) != 3 {
		t.Fatalf("promote with three pending instances: %v", err)
	}
	if pr, err := c.PromoteGray(ctx, orders, g3.ID, api.PromoteRequest{Force: true}); err != nil || pr.Revision != 4 || !strings.Contains(pr.Gray.EndReason, "forced") {
		t.Fatalf("forced promote: %+v, %v", pr, err)
	}

	// History: ended grays stay listed, newest first.
	var list api.GrayList
	g.call(http.StatusOK, req{method: "GET", path: base + "/grays"}).json(t, &list)
	var got []string
	for _, x := range list.Grays {
		got = append(got, x.ID+":"+x.State)
	}
	if want := []string{g3.ID + ":promoted", g2.ID + ":promoted", g1.ID + ":abandoned"}; !slices.Equal(got, want) {
		t.Fatalf("list %v, want %v", got, want)
	}
	if l, err := c.Grays(ctx, orders); err != nil || len(l) != 3 || l[0].Ref != orders || l[0].State != configsvc.GrayPromoted {
		t.Fatalf("client Grays: %+v, %v", l, err)
	}

	// Every change was audited, with its target and the promote's revision.
	var audit api.AuditList
	e.must(http.StatusOK, req{method: "GET", path: "/v1/audit?service=orders&limit=100", token: e.admin}).json(t, &audit)
	seen := map[string]int64{}
	for _, en := range audit.Entries {
		if strings.HasPrefix(en.Action, "gray.") && en.Outcome == access.OutcomeAllowed && en.Status < 400 {
			seen[en.Action+" "+strings.TrimPrefix(en.Target, "service/orders/grays/")] = en.Revision
		}
	}
	for _, want := range []string{"gray.create " + g1.ID, "gray.selector " + g1.ID, "gray.rollout " + g1.ID, "gray.abandon " + g1.ID,
		"gray.create " + g2.ID, "gray.promote " + g2.ID, "gray.promote " + g3.ID} {
		if _, ok := seen[want]; !ok {
			t.Errorf("audit lacks %q; has %v", want, seen)
		}
	}
	if seen["gray.promote "+g2.ID] != 3 {
		t.Errorf("audit of the promote names revision %d, want 3", seen["gray.promote "+g2.ID])
	}

	// Shared groups: the same routes; the cohort is the linking services'.
	e.mustGroup("common", map[string]string{"redis.yaml": "port: 1\n"})
	e.must(http.StatusOK, req{method: "PUT", path: base + "/links/common", token: e.admin})
	var sg api.Gray
	g.call(http.StatusCreated, req{method: "POST", path: "/v1/shared/common/grays", body: api.GrayRequest{
		Changes: []api.Change{api.PutChange("redis.yaml", []byte("port: 2\n"))}, Selector: api.Selector{Labels: []map[string]string{{"zone": "a"}}}}}).json(t, &sg)
	if sg.Ref != "group/common" {
		t.Fatalf("group gray %+v", sg)
	}
	if v := g.gray("/v1/shared/common", sg.ID); cohortOf(v) != "orders-1:pending" || v.Cohort[0].Service != "orders" {
		t.Fatalf("group gray cohort %q", cohortOf(v))
	}
	g.register("orders-1", map[string]string{"zone": "a"}, map[string]configsvc.GrayStatus{sg.ID: {Status: configsvc.GrayApplied, Version: 1}})
	g.call(http.StatusCreated, req{method: "POST", path: "/v1/shared/common/grays/" + sg.ID + "/promote", body: api.PromoteRequest{}})
	if fc, err := c.File(ctx, configsvc.Group("common"), "redis.yaml", 0); err != nil || string(fc.Content) != "port: 2\n" {
		t.Fatalf("group file after the promote: %q, %v", fc.Content, err)
	}
}
