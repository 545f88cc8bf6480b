package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Tests of the gray routes (issue 13) against what main grew beside them:
// messages written for users, Idempotency-Key on every write, and the
// console's summary index.

// mustGray creates a gray of base (a /v1/services/… or /v1/shared/…
// path) writing file, for the instance ids given, and returns it.
func (e *testEnv) mustGray(base, file string, ids ...string) api.Gray {
	e.t.Helper()
	var g api.Gray
	e.must(http.StatusCreated, req{method: "POST", path: base + "/grays", token: e.admin, body: api.GrayRequest{Name: "try",
		Changes: []api.Change{api.PutChange(file, []byte("gray: 1\n"))}, Selector: api.Selector{Instances: ids}}}).json(e.t.(*testing.T), &g)
	return g
}

// TestGrayErrorMessagesForUsers: the refusals of the gray routes are
// worded for users like every API error (no store prefixes, no Go error
// chains), name the gray, the file or the state at fault, and carry the
// request id.
func TestGrayErrorMessagesForUsers(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		const base = "/v1/services/orders"
		e.mustService("orders", map[string]string{"a.yaml": "a: 1\n", "b.yaml": "b: 1\n", "c.yaml": "c: 1\n"})
		viewer := e.mustToken("viewer:orders")
		held := e.mustGray(base, "a.yaml", "orders-1")
		ended := e.mustGray(base, "b.yaml", "orders-1")
		e.must(http.StatusOK, req{method: "DELETE", path: base + "/grays/" + ended.ID, token: e.admin})
		driven := e.mustGray(base, "c.yaml", "orders-1")
		e.must(http.StatusAccepted, req{method: "POST", path: base + "/grays/" + driven.ID + "/rollout", token: e.admin,
			body: map[string]any{"steps": []map[string]any{{"percent": 5, "bake": "1m"}, {"percent": 100, "bake": "1m"}}}})
		// orders-1 is in the cohort of held and has not applied it.
		if _, err := e.store.Register(context.Background(), configsvc.Instance{Service: "orders", ID: "orders-1", Addr: "127.0.0.1:1", Status: configsvc.StatusApplied, Revision: 1}); err != nil {
			t.Fatal(err)
		}
		grayOn := func(file string) map[string]any {
			return map[string]any{"changes": []map[string]any{{"file": file, "content": "x: 2\n"}}, "selector": map[string]any{"percent": 10}}
		}

		tests := []struct {
			name   string
			r      req
			status int
			want   []string
		}{
			{"missing gray", req{method: "GET", path: base + "/grays/g-000000000000"}, 404, []string{"service orders has no gray g-000000000000"}},
			{"gray of a missing service", req{method: "GET", path: "/v1/services/gone/grays/g-000000000000"}, 404, []string{"service gone does not exist"}},
			{"bad gray id", req{method: "GET", path: base + "/grays/not-a-gray"}, 400, []string{"not-a-gray"}},
			{"file held by another gray", req{method: "POST", path: base + "/grays", body: grayOn("a.yaml")}, 409, []string{"a.yaml", held.ID}},
			{"stale base", req{method: "POST", path: base + "/grays", body: map[string]any{"base_revision": 0,
				"changes": []map[string]any{{"file": "d.yaml", "content": "d: 1\n"}}}}, 409, []string{"service orders changed", "revision 1 now"}},
			{"change an ended gray", req{method: "PUT", path: base + "/grays/" + ended.ID + "/selector", body: map[string]any{"selector": map[string]any{"percent": 50}}},
				409, []string{"gray " + ended.ID, "abandoned"}},
			{"promote an ended gray", req{method: "POST", path: base + "/grays/" + ended.ID + "/promote", body: map[string]any{}}, 409, []string{ended.ID, "abandoned"}},
			{"selector of a driven gray", req{method: "PUT", path: base + "/grays/" + driven.ID + "/selector", body: map[string]any{"selector": map[string]any{"percent": 50}}},
				409, []string{"rollout drives", driven.ID, "step 1 of 2"}},
			{"second rollout", req{method: "POST", path: base + "/grays/" + driven.ID + "/rollout", body: map[string]any{"steps": []map[string]any{{"percent": 5, "bake": "1m"}}}},
				409, []string{"rollout drives", driven.ID}},
			{"not ready", req{method: "POST", path: base + "/grays/" + held.ID + "/promote", body: map[string]any{}}, 409, []string{held.ID, "not applied", "orders-1", "force"}},
			{"bad selector", req{method: "POST", path: base + "/grays", body: map[string]any{"changes": []map[string]any{{"file": "d.yaml", "content": "d: 1\n"}},
				"selector": map[string]any{"percent": 101}}}, 400, []string{"percent"}},
			{"forbidden", req{method: "POST", path: base + "/grays", token: viewer, body: grayOn("d.yaml")}, 403, []string{"ask an admin"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e := e.withT(t)
				r := tc.r
				if r.token == "" {
					r.token = e.admin
				}
				checkUserMessage(t, e.do(r), tc.status, tc.want...)
			})
		}
	})
}

// TestGrayIdempotencyKeys: every gray write keeps the Idempotency-Key
// contract of the API. A create, promote, selector change, rollout start
// or abandon sent again under its key is answered with the first answer
// and changes nothing (one gray, one revision); the key with another body
// is 422.
func TestGrayIdempotencyKeys(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		const base = "/v1/services/orders"
		ctx := context.Background()
		orders := configsvc.Service("orders")
		e.mustService("orders", map[string]string{"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"})
		key := func(k string) map[string]string { return map[string]string{api.HeaderIdempotencyKey: k} }
		twice := func(r req, want int) *response {
			t.Helper()
			r.token = e.admin
			first, second := e.do(r), e.do(r)
			if first.status != want || second.status != want || !bytes.Equal(first.body, second.body) || second.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("%s %s twice under one key: %d %s, then %d %s (replayed %q); want %d and the same answer",
					r.method, r.path, first.status, first.body, second.status, second.body, second.header.Get("Idempotent-Replayed"), want)
			}
			return first
		}

		body := map[string]any{"name": "try", "changes": []map[string]any{{"file": "a.yaml", "content": "a: 2\n"}}, "selector": map[string]any{"percent": 10}}
		var g api.Gray
		twice(req{method: "POST", path: base + "/grays", body: body, header: key("create-1")}, http.StatusCreated).json(t, &g)
		if grays, err := e.store.Grays(ctx, orders); err != nil || len(grays) != 1 || grays[0].ID != g.ID {
			t.Fatalf("grays after a create sent twice: %+v, %v; want one", grays, err)
		}
		other := map[string]any{"changes": []map[string]any{{"file": "b.yaml", "content": "b: 2\n"}}}
		if r := e.do(req{method: "POST", path: base + "/grays", token: e.admin, body: other, header: key("create-1")}); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("the key with another body = %d %s; want 422", r.status, r.body)
		}

		twice(req{method: "PUT", path: base + "/grays/" + g.ID + "/selector", body: map[string]any{"selector": map[string]any{"percent": 20}}, header: key("widen-1")}, http.StatusOK)
		if got, _ := e.store.Gray(ctx, orders, g.ID); got.Version != 2 {
			t.Fatalf("version after a selector change sent twice = %d; want 2", got.Version)
		}
		var res api.PromoteResult
		twice(req{method: "POST", path: base + "/grays/" + g.ID + "/promote", body: map[string]any{"message": "go"}, header: key("promote-1")}, http.StatusCreated).json(t, &res)
		if h, _ := e.store.Head(ctx, orders); h.Revision != 2 || res.Revision != 2 {
			t.Fatalf("head %d, promote answered %d after a promote sent twice; want 2 and 2", h.Revision, res.Revision)
		}

		g2 := e.mustGray(base, "b.yaml")
		twice(req{method: "POST", path: base + "/grays/" + g2.ID + "/rollout", body: map[string]any{"steps": []map[string]any{{"percent": 5, "bake": "1m"}}}, header: key("rollout-1")}, http.StatusAccepted)
		twice(req{method: "DELETE", path: base + "/grays/" + g2.ID, header: key("abandon-1")}, http.StatusOK)
		if got, _ := e.store.Gray(ctx, orders, g2.ID); got.State != configsvc.GrayAbandoned || got.Version != 3 {
			t.Fatalf("gray after a rollout and an abandon sent twice: %s v%d; want abandoned v3", got.State, got.Version)
		}
	})
}

// TestGrayPromoteInSummary: a promote is a publish for the console's
// summary index too: this server's summary shows the revision it made at
// once.
func TestGrayPromoteInSummary(t *testing.T) {
	e := newEnv(t)
	const base = "/v1/services/orders"
	e.mustService("orders", map[string]string{"a.yaml": "a: 1\n"})
	if got := e.services(e.admin, ""); len(got.Items) != 1 || got.Items[0].Revision != 1 {
		t.Fatalf("summary = %+v", got)
	}
	g := e.mustGray(base, "b.yaml")
	e.must(http.StatusCreated, req{method: "POST", path: base + "/grays/" + g.ID + "/promote", token: e.admin, body: map[string]any{"message": "go"}})
	if got := e.services(e.admin, ""); got.Items[0].Revision != 2 || got.Items[0].Files != 2 {
		t.Fatalf("summary after the promote = %+v; want revision 2 with 2 files", got.Items[0])
	}
}

// TestOpenAPIWritesTakeIdempotencyKey: every mutating operation that
// authenticates (all but the sign-in) declares the Idempotency-Key header
// the server honours on it, the gray routes included.
func TestOpenAPIWritesTakeIdempotencyKey(t *testing.T) {
	s := loadSpec(t)
	for path, item := range s.doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			if !isMutating(strings.ToUpper(method)) || path == "/v1/session" {
				continue
			}
			found := false
			for _, p := range asSlice(o.(map[string]any)["parameters"]) {
				pm := s.resolve(p).(map[string]any)
				found = found || pm["in"] == "header" && pm["name"] == api.HeaderIdempotencyKey
			}
			if !found {
				t.Errorf("%s %s does not declare the %s header", strings.ToUpper(method), path, api.HeaderIdempotencyKey)
			}
		}
	}
}
