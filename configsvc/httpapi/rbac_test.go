package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// The callers of the RBAC matrix.
const (
	whoNone      = "no token"
	whoViewer    = "viewer"
	whoEditorIn  = "editor in grant"
	whoEditorOut = "editor outside grant"
	whoAgent     = "agent"
	whoProxy     = "proxy"
	whoAdmin     = "admin"
)

var matrixCallers = []string{whoNone, whoViewer, whoEditorIn, whoEditorOut, whoAgent, whoProxy, whoAdmin}

// matrixEnv is a server with service "orders" (two revisions, instance
// orders-1 registered by the agent), group "common" linked to it, service
// "billing", the reserved service sluice-system with a routes.yaml, a
// victim token, a pin on orders, a gray on each of orders and common, and
// one token per caller.
type matrixEnv struct {
	*testEnv
	tokens      map[string]string
	victimID    string
	pinID       string
	changeID    string
	emergencyID string
	grays       map[string]string // gray id of "orders" and "common"
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	t.Helper()
	e := &matrixEnv{testEnv: newEnv(t)}
	e.mustService("orders", map[string]string{"a.txt": "one"})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "two"})
	e.mustService("billing", nil)
	e.mustGroup("common", map[string]string{"c.yaml": "x: 1\n"})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/common", token: e.admin})
	e.mustService(configsvc.SystemService, map[string]string{configsvc.RoutesFile: "routes: []\n"})
	e.tokens = map[string]string{
		whoNone:      "",
		whoViewer:    e.mustToken("viewer:orders"),
		whoEditorIn:  e.mustToken("editor:orders"),
		whoEditorOut: e.mustToken("editor:billing"),
		whoAgent:     e.mustToken("agent:orders"),
		whoProxy:     e.mustToken("proxy:*"),
		whoAdmin:     e.admin,
	}
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: e.tokens[whoAgent], body: map[string]any{"addr": "127.0.0.1:1"}})
	// proxy-1, a proxy the admin registered: no other token publishes its state.
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/sluice-system/instances/proxy-1", token: e.admin, body: map[string]any{"addr": "127.0.0.1:7081", "labels": map[string]string{"role": "proxy"}}})
	// orders-sdk registered straight in the store, as an SDK on ZooKeeper does.
	lease, err := e.store.Register(context.Background(), configsvc.Instance{Service: "orders", ID: "orders-sdk", Addr: "127.0.0.1:3", Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lease.Close() })
	var tok api.Token
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: e.admin, body: map[string]any{"name": "victim", "roles": []access.Grant{{Role: "viewer", Pattern: "x"}}}}).json(t, &tok)
	e.victimID = tok.ID
	var pin api.Pin
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin, body: map[string]any{"targets": map[string]string{"orders": "orders-1"}}}).json(t, &pin)
	e.pinID = pin.ID
	// Governance: a policy on billing, a change request its editor (the
	// editor outside orders' grant) submitted, and an emergency change the
	// admin made there.
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/policies/billing", token: e.admin, body: map[string]any{"pattern": "billing", "approvals": 1}})
	var cr api.ChangeRequest
	e.must(http.StatusAccepted, req{method: "PUT", path: "/v1/services/billing/files/x.txt", token: e.tokens[whoEditorOut], body: "x", contentType: "text/plain"}).json(t, &cr)
	e.changeID = cr.ID
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/billing/files/y.txt", token: e.admin, body: "y", contentType: "text/plain", header: map[string]string{api.EmergencyHeader: "matrix"}})
	var em api.EmergencyList
	e.must(http.StatusOK, req{method: "GET", path: "/v1/emergencies", token: e.admin}).json(t, &em)
	e.emergencyID = em.Emergencies[0].ID
	e.grays = map[string]string{}
	for _, g := range []struct{ path, file string }{{"/v1/services/orders", "a.txt"}, {"/v1/shared/common", "c.yaml"}} {
		var out api.Gray
		e.must(http.StatusCreated, req{method: "POST", path: g.path + "/grays", token: e.admin, body: map[string]any{
			"name": "matrix", "changes": []map[string]any{{"file": g.file, "content": "gray: 1\n"}},
			"selector": map[string]any{"instances": []string{"orders-9"}}}}).json(t, &out)
		e.grays[g.path] = out.ID
	}
	return e
}

// withT returns a view of e whose helpers fail t.
func (e *matrixEnv) withT(t *testing.T) *matrixEnv {
	c := *e
	c.testEnv = e.testEnv.withT(t)
	return &c
}

// fingerprint summarizes everything a request could change, but the audit
// log and sessions.
func (e *matrixEnv) fingerprint(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var sb strings.Builder
	for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Service("billing"), configsvc.Group("common")} {
		h, err := e.store.Head(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(h)
		sb.Write(b)
	}
	for _, c := range []string{access.TokensCollection, access.PinsCollection} {
		recs, err := e.store.Records().List(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			sb.WriteString(r.ID + string(r.Data))
		}
	}
	in, _ := e.store.Instances(ctx, "orders")
	b, _ := json.Marshal(in)
	sb.Write(b)
	return sb.String()
}

type matrixRow struct {
	route  string // "METHOD /gin/pattern"
	path   string // concrete path; {victim} and {pin} are replaced
	body   any
	ctype  string
	stream bool
	// want maps callers to a status; callers not listed get deny.
	want map[string]int
	// deny is the status of callers not in want (403 for authenticated
	// callers; no token always gets 401 unless listed).
	deny int
}

var (
	readers = []string{whoViewer, whoEditorIn, whoAgent, whoAdmin}
	authed  = []string{whoViewer, whoEditorIn, whoEditorOut, whoAgent, whoProxy, whoAdmin}
	// listers may list and watch the instances of orders: its readers and
	// the proxy.
	listers = append(append([]string{}, readers...), whoProxy)
)

func allow(status int, who ...string) map[string]int {
	m := map[string]int{}
	for _, w := range who {
		m[w] = status
	}
	return m
}

func matrixRows() []matrixRow {
	publish := map[string]any{"changes": []map[string]any{{"file": "b.txt", "content": "b"}}}
	inst := map[string]any{"addr": "127.0.0.1:2"}
	proxyState := map[string]any{"addr": "127.0.0.1:7080", "updated": time.Now().UTC(), "revision": 1, "peers": 1, "routes": []any{}}
	rows := []matrixRow{
		{route: "GET /healthz", path: "/healthz", want: allow(200, append(authed, whoNone)...)},
		{route: "GET /readyz", path: "/readyz", want: allow(200, append(authed, whoNone)...)},
		{route: "GET /metrics", path: "/metrics", want: allow(200, append(authed, whoNone)...)},
		{route: "GET /v1/openapi.json", path: "/v1/openapi.json", want: allow(200, append(authed, whoNone)...)},
		{route: "POST /v1/session", path: "/v1/session", body: "session", want: allow(200, authed...)},
		{route: "DELETE /v1/session", path: "/v1/session", want: allow(204, authed...)},
		{route: "GET /v1/whoami", path: "/v1/whoami", want: allow(200, authed...)},
		{route: "GET /v1/tokens", path: "/v1/tokens", want: allow(200, whoAdmin)},
		{route: "POST /v1/tokens", path: "/v1/tokens", body: map[string]any{"name": "n", "roles": []access.Grant{{Role: "admin"}}}, want: allow(201, whoAdmin)},
		{route: "DELETE /v1/tokens/:id", path: "/v1/tokens/{victim}", want: allow(204, whoAdmin)},
		{route: "GET /v1/audit", path: "/v1/audit", want: allow(200, whoAdmin)},
		{route: "GET /v1/pins", path: "/v1/pins", want: allow(200, authed...)},
		{route: "POST /v1/pins", path: "/v1/pins", body: map[string]any{"targets": map[string]string{"orders": "orders-1"}}, want: allow(201, whoEditorIn, whoAdmin)},
		{route: "DELETE /v1/pins/:id", path: "/v1/pins/{pin}", want: allow(200, whoEditorIn, whoAdmin)},
		// Pins with their record keys, for proxies resolving tokens: admins and proxies only.
		{route: "GET /v1/pins/watch", path: "/v1/pins/watch", stream: true, want: allow(200, whoProxy, whoAdmin)},
		// The live route tables need read on sluice-system: the admin and the proxy.
		{route: "GET /v1/routes", path: "/v1/routes", want: allow(200, whoProxy, whoAdmin)},
		// A proxy publishes its state under an id no other token registered.
		{route: "PUT /v1/routes/proxies/:id", path: "/v1/routes/proxies/proxy-8", body: proxyState, want: allow(204, whoProxy, whoAdmin)},
		{route: "PUT /v1/routes/proxies/:id", path: "/v1/routes/proxies/proxy-1", body: proxyState, want: allow(204, whoAdmin)},
		{route: "DELETE /v1/routes/proxies/:id", path: "/v1/routes/proxies/proxy-8", want: allow(404, whoProxy, whoAdmin)},
		{route: "GET /v1/services", path: "/v1/services", want: allow(200, authed...)},
		// Summaries and search answer every caller with what it may read.
		{route: "GET /v1/summary/services", path: "/v1/summary/services", want: allow(200, authed...)},
		{route: "GET /v1/summary/shared", path: "/v1/summary/shared?sort=-updated", want: allow(200, authed...)},
		{route: "GET /v1/search", path: "/v1/search?q=one", want: allow(200, authed...)},
		{route: "GET /v1/services/:svc/effective", path: "/v1/services/orders/effective", want: allow(200, readers...)},
		{route: "GET /v1/shared", path: "/v1/shared", want: allow(200, authed...)},
		{route: "GET /v1/shared/:group/users", path: "/v1/shared/common/users", want: allow(200, readers...)},
		// Linking needs a direct grant on the group, which no editor here has.
		{route: "PUT /v1/services/:svc/links/:group", path: "/v1/services/orders/links/common", want: allow(200, whoAdmin)},
		{route: "DELETE /v1/services/:svc/links/:group", path: "/v1/services/orders/links/common", want: allow(200, whoEditorIn, whoAdmin)},
		{route: "GET /v1/services/:svc/instances", path: "/v1/services/orders/instances", want: allow(200, listers...)},
		{route: "GET /v1/services/:svc/instances/watch", path: "/v1/services/orders/instances/watch", stream: true, want: allow(200, listers...)},
		{route: "PUT /v1/services/:svc/instances/:id", path: "/v1/services/orders/instances/orders-2", body: inst, want: allow(201, whoAgent, whoEditorIn, whoAdmin)},
		// orders-1 is the agent's: only it and the admin may refresh or remove it.
		{route: "PUT /v1/services/:svc/instances/:id", path: "/v1/services/orders/instances/orders-1", body: inst, want: allow(200, whoAgent, whoAdmin)},
		{route: "DELETE /v1/services/:svc/instances/:id", path: "/v1/services/orders/instances/orders-1", want: allow(204, whoAgent, whoAdmin)},
		// orders-sdk is not held by this server: only an admin removes its record.
		{route: "DELETE /v1/services/:svc/instances/:id", path: "/v1/services/orders/instances/orders-sdk",
			want: map[string]int{whoAdmin: 204, whoAgent: 404, whoEditorIn: 404}},
		// sluice-system: the proxy reads routes.yaml and registers; only admins and proxies may register there.
		{route: "GET /v1/services/:svc/files/:file", path: "/v1/services/sluice-system/files/routes.yaml", want: allow(200, whoProxy, whoAdmin)},
		{route: "GET /v1/services/:svc/watch", path: "/v1/services/sluice-system/watch", stream: true, want: allow(200, whoProxy, whoAdmin)},
		{route: "GET /v1/services/:svc/instances", path: "/v1/services/sluice-system/instances", want: allow(200, whoProxy, whoAdmin)},
		{route: "PUT /v1/services/:svc/instances/:id", path: "/v1/services/sluice-system/instances/proxy-9", body: map[string]any{"addr": "127.0.0.1:7080", "labels": map[string]string{"role": "proxy"}}, want: allow(201, whoProxy, whoAdmin)},
		{route: "PUT /v1/services/:svc/files/:file", path: "/v1/services/sluice-system/files/routes.yaml", body: "routes: []\n", ctype: "text/plain", want: allow(200, whoAdmin)},
		// A proxy creates sluice-system, empty, to watch it before the first routes (it exists here: 200).
		{route: "PUT /v1/services/:svc", path: "/v1/services/sluice-system", want: allow(200, whoProxy, whoAdmin)},
		// Data keys of secret files: only a secrets grant, which no caller
		// here holds; admin does not imply it.
		{route: "POST /v1/services/:svc/datakey", path: "/v1/services/orders/datakey", body: map[string]any{"header": "{}"}, want: allow(200)},
		{route: "POST /v1/shared/:group/datakey", path: "/v1/shared/common/datakey", body: map[string]any{"header": "{}"}, want: allow(200)},
		// Governance: policies are admin-only; change requests and
		// emergencies are for their service's readers, and who of them may
		// review, apply or rebase is the policy's and the author's business.
		{route: "GET /v1/policies", path: "/v1/policies", want: allow(200, whoAdmin)},
		{route: "GET /v1/policies/:name", path: "/v1/policies/billing", want: allow(200, whoAdmin)},
		{route: "PUT /v1/policies/:name", path: "/v1/policies/other", body: map[string]any{"pattern": "x-*", "approvals": 2}, want: allow(201, whoAdmin)},
		{route: "DELETE /v1/policies/:name", path: "/v1/policies/billing", want: allow(204, whoAdmin)},
		{route: "GET /v1/changes", path: "/v1/changes", want: allow(200, authed...)},
		{route: "GET /v1/emergencies", path: "/v1/emergencies", want: allow(200, authed...)},
		// The admin made the emergency change: someone else reviews it.
		{route: "POST /v1/emergencies/:id/review", path: "/v1/emergencies/{emergency}/review", body: map[string]any{"comment": "ok"}, want: allow(200, whoEditorOut)},
		{route: "GET /v1/services/:svc/changes", path: "/v1/services/billing/changes", want: allow(200, whoEditorOut, whoAdmin)},
		{route: "GET /v1/services/:svc/changes/:id", path: "/v1/services/billing/changes/{change}", want: allow(200, whoEditorOut, whoAdmin)},
		// The author may not approve their own change under the policy.
		{route: "POST /v1/services/:svc/changes/:id/approve", path: "/v1/services/billing/changes/{change}/approve", body: map[string]any{"comment": "ok"}, want: allow(200, whoAdmin)},
		{route: "POST /v1/services/:svc/changes/:id/decline", path: "/v1/services/billing/changes/{change}/decline", body: map[string]any{"comment": "no"}, want: allow(200, whoEditorOut, whoAdmin)},
		// Without an approval nobody eligible can apply it yet.
		{route: "POST /v1/services/:svc/changes/:id/apply", path: "/v1/services/billing/changes/{change}/apply", want: allow(409, whoEditorOut, whoAdmin)},
		{route: "POST /v1/services/:svc/changes/:id/rebase", path: "/v1/services/billing/changes/{change}/rebase", want: allow(200, whoEditorOut)},
		{route: "GET /v1/shared/:group/changes", path: "/v1/shared/common/changes", want: allow(200, readers...)},
		{route: "GET /v1/shared/:group/changes/:id", path: "/v1/shared/common/changes/0123456789abcdef", want: allow(404, readers...)},
		{route: "POST /v1/shared/:group/changes/:id/approve", path: "/v1/shared/common/changes/0123456789abcdef/approve", want: allow(404, readers...)},
		{route: "POST /v1/shared/:group/changes/:id/decline", path: "/v1/shared/common/changes/0123456789abcdef/decline", want: allow(404, readers...)},
		{route: "POST /v1/shared/:group/changes/:id/apply", path: "/v1/shared/common/changes/0123456789abcdef/apply", want: allow(404, readers...)},
		{route: "POST /v1/shared/:group/changes/:id/rebase", path: "/v1/shared/common/changes/0123456789abcdef/rebase", want: allow(404, whoAdmin)},
	}
	for _, k := range []struct{ prefix, pattern, name string }{
		{"/v1/services", "/v1/services/:svc", "orders"},
		{"/v1/shared", "/v1/shared/:group", "common"},
	} {
		base := k.prefix + "/" + k.name
		writers := []string{whoEditorIn, whoAdmin}
		deleteStatus := 204
		if k.name == "common" {
			writers = []string{whoAdmin} // grants name services; "common" matches no editor's pattern
			deleteStatus = 409           // still linked from orders
		}
		rows = append(rows,
			matrixRow{route: "GET " + k.pattern, path: base, want: allow(200, readers...)},
			matrixRow{route: "PUT " + k.pattern, path: base, want: allow(200, writers...)},
			matrixRow{route: "DELETE " + k.pattern, path: base, want: allow(deleteStatus, whoAdmin)},
			matrixRow{route: "GET " + k.pattern + "/files/:file", path: base + "/files/" + map[string]string{"orders": "a.txt", "common": "c.yaml"}[k.name], want: allow(200, readers...)},
			matrixRow{route: "PUT " + k.pattern + "/files/:file", path: base + "/files/new.txt", body: "content", ctype: "text/plain", want: allow(200, writers...)},
			matrixRow{route: "DELETE " + k.pattern + "/files/:file", path: base + "/files/" + map[string]string{"orders": "a.txt", "common": "c.yaml"}[k.name], want: allow(200, writers...)},
			matrixRow{route: "GET " + k.pattern + "/revisions", path: base + "/revisions", want: allow(200, readers...)},
			matrixRow{route: "POST " + k.pattern + "/revisions", path: base + "/revisions", body: publish, want: allow(201, writers...)},
			matrixRow{route: "GET " + k.pattern + "/revisions/:n", path: base + "/revisions/1", want: allow(200, readers...)},
			matrixRow{route: "GET " + k.pattern + "/diff", path: base + "/diff", want: allow(200, readers...)},
			matrixRow{route: "GET " + k.pattern + "/snapshot", path: base + "/snapshot", want: allow(200, readers...)},
			matrixRow{route: "GET " + k.pattern + "/watch", path: base + "/watch", stream: true, want: allow(200, readers...)},
		)
		gray := base + "/grays/{gray:" + k.name + "}"
		rows = append(rows,
			matrixRow{route: "GET " + k.pattern + "/grays", path: base + "/grays", want: allow(200, readers...)},
			matrixRow{route: "POST " + k.pattern + "/grays", path: base + "/grays", body: map[string]any{"changes": []map[string]any{{"file": "new.txt", "content": "n"}}, "selector": map[string]any{"percent": 10}}, want: allow(201, writers...)},
			matrixRow{route: "GET " + k.pattern + "/grays/:gray", path: gray, want: allow(200, readers...)},
			matrixRow{route: "DELETE " + k.pattern + "/grays/:gray", path: gray, want: allow(200, writers...)},
			matrixRow{route: "PUT " + k.pattern + "/grays/:gray/selector", path: gray + "/selector", body: map[string]any{"selector": map[string]any{"percent": 50}}, want: allow(200, writers...)},
			// The cohort (orders-9) is not live: nothing keeps the promote back.
			matrixRow{route: "POST " + k.pattern + "/grays/:gray/promote", path: gray + "/promote", body: map[string]any{"message": "m"}, want: allow(201, writers...)},
			matrixRow{route: "POST " + k.pattern + "/grays/:gray/rollout", path: gray + "/rollout", body: map[string]any{"steps": []map[string]any{{"percent": 5, "bake": "1m"}}}, want: allow(202, writers...)},
		)
		if k.name == "orders" {
			rows = append(rows, matrixRow{route: "POST " + k.pattern + "/rollback", path: base + "/rollback", body: map[string]any{"to_revision": 1}, want: allow(201, writers...)})
		} else {
			rows = append(rows, matrixRow{route: "POST " + k.pattern + "/rollback", path: base + "/rollback", body: map[string]any{"to_revision": 1, "files": []string{"c.yaml"}}, want: allow(400, writers...)}) // nothing to roll back: c.yaml is unchanged
		}
	}
	return rows
}

// doMatrix performs row as caller on e and returns the response; a
// stream's body is left unread.
func (e *matrixEnv) doMatrix(t *testing.T, row matrixRow, caller string) *response {
	t.Helper()
	path := strings.NewReplacer("{victim}", e.victimID, "{pin}", e.pinID, "{change}", e.changeID, "{emergency}", e.emergencyID,
		"{gray:orders}", e.grays["/v1/services/orders"], "{gray:common}", e.grays["/v1/shared/common"]).Replace(row.path)
	method, _, _ := strings.Cut(row.route, " ")
	body := row.body
	if body == "session" {
		body = map[string]string{"token": e.tokens[caller]}
	}
	if row.stream {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hr, _ := http.NewRequestWithContext(ctx, method, e.http.URL+path, nil)
		if tok := e.tokens[caller]; tok != "" {
			hr.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := e.http.Client().Do(hr)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out := &response{status: resp.StatusCode, header: resp.Header}
		if resp.StatusCode != http.StatusOK { // an error answer, not a stream
			out.body, _ = io.ReadAll(resp.Body)
		}
		return out
	}
	return e.do(req{method: method, path: path, token: e.tokens[caller], body: body, contentType: row.ctype})
}

func TestRBACMatrix(t *testing.T) {
	rows := matrixRows()
	shared := newMatrixEnv(t)
	api := loadSpec(t)

	// Every registered route has a row, and every row a route.
	registered := map[string]bool{}
	for _, r := range shared.srv.Routes() {
		registered[r] = true
	}
	covered := map[string]bool{}
	for _, row := range rows {
		if !registered[row.route] {
			t.Errorf("matrix row for unregistered route %s", row.route)
		}
		covered[row.route] = true
	}
	var missing []string
	for r := range registered {
		if !covered[r] {
			missing = append(missing, r)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("routes without an RBAC matrix row:\n%s", strings.Join(missing, "\n"))
	}

	before := shared.fingerprint(t)
	for _, row := range rows {
		for _, caller := range matrixCallers {
			want, allowed := row.want[caller]
			if !allowed {
				want = http.StatusForbidden
				if caller == whoNone {
					want = http.StatusUnauthorized
				}
			}
			method, _, _ := strings.Cut(row.route, " ")
			t.Run(row.route+"/"+caller, func(t *testing.T) {
				e := shared.withT(t)
				if allowed && isMutating(method) {
					e = newMatrixEnv(t) // an allowed write changes state: give it its own
				}
				resp := e.doMatrix(t, row, caller)
				if resp.status != want {
					t.Fatalf("status %d, want %d: %s", resp.status, want, resp.body)
				}
				// Every answer, allowed or refused, is what openapi.json says.
				if row.stream && resp.status == http.StatusOK {
					return
				}
				method, path, _ := strings.Cut(row.route, " ")
				if err := api.checkResponse(method+" "+ginToOpenAPI(path), resp.status, resp.header.Get("Content-Type"), resp.body); err != nil {
					t.Fatalf("response does not match openapi.json: %v\n%s", err, resp.body)
				}
			})
		}
	}
	if after := shared.fingerprint(t); after != before {
		t.Fatalf("refused and read-only requests changed the store:\nbefore %s\nafter  %s", before, after)
	}
}
