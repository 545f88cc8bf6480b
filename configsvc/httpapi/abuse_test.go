package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/fanout"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// badNames are path segments that must never reach the store: encoded
// slashes (once and twice), dot segments, control characters, characters
// outside the allow-list, and over-long names.
var badNames = map[string]string{
	"encoded slash":        "a%2Fb",
	"double-encoded slash": "a%252Fb",
	"dot dot":              "..",
	"encoded dot dot":      "%2E%2E",
	"dot":                  ".",
	"NUL":                  "a%00b",
	"newline":              "a%0Ab",
	"space":                "a%20b",
	"backslash":            "a%5Cb",
	"non-ASCII":            "caf%C3%A9",
	"too long":             strings.Repeat("a", 300),
	"leading dash":         "-a",
}

// nameRoutes are the routes with a name in the path; {x} is where the bad
// name goes.
var nameRoutes = []struct {
	method, path string
	body         any
	ctype        string
}{
	{"GET", "/v1/services/{x}", nil, ""},
	{"PUT", "/v1/services/{x}", nil, ""},
	{"DELETE", "/v1/services/{x}", nil, ""},
	{"GET", "/v1/services/{x}/files/a.txt", nil, ""},
	{"GET", "/v1/services/orders/files/{x}", nil, ""},
	{"PUT", "/v1/services/{x}/files/a.txt", "x", "text/plain"},
	{"PUT", "/v1/services/orders/files/{x}", "x", "text/plain"},
	{"DELETE", "/v1/services/orders/files/{x}", nil, ""},
	{"POST", "/v1/services/{x}/revisions", map[string]any{"changes": []map[string]any{{"file": "a.txt", "content": "x"}}}, ""},
	{"GET", "/v1/services/{x}/revisions", nil, ""},
	{"GET", "/v1/services/orders/revisions/{x}", nil, ""},
	{"GET", "/v1/services/{x}/diff", nil, ""},
	{"POST", "/v1/services/{x}/rollback", map[string]any{"to_revision": 1}, ""},
	{"GET", "/v1/services/{x}/snapshot", nil, ""},
	{"GET", "/v1/services/{x}/watch", nil, ""},
	{"GET", "/v1/services/{x}/instances", nil, ""},
	{"GET", "/v1/services/{x}/instances/watch", nil, ""},
	{"PUT", "/v1/services/orders/instances/{x}", map[string]any{"addr": "x"}, ""},
	{"DELETE", "/v1/services/orders/instances/{x}", nil, ""},
	{"PUT", "/v1/services/{x}/links/common", nil, ""},
	{"PUT", "/v1/services/orders/links/{x}", nil, ""},
	{"DELETE", "/v1/services/orders/links/{x}", nil, ""},
	{"GET", "/v1/shared/{x}", nil, ""},
	{"PUT", "/v1/shared/{x}", nil, ""},
	{"PUT", "/v1/shared/common/files/{x}", "x", "text/plain"},
	{"GET", "/v1/shared/{x}/users", nil, ""},
	{"DELETE", "/v1/tokens/{x}", nil, ""},
	{"DELETE", "/v1/pins/{x}", nil, ""},
}

// checkSpec fails t unless the answer to method path is declared in
// openapi.json and matches its schema.
func checkSpec(t *testing.T, doc *spec, method, path string, resp *response) {
	t.Helper()
	op := doc.match(method, path)
	if op == "" {
		return // no such route: the 404/405 answers are the router's
	}
	if err := doc.checkResponse(op, resp.status, resp.header.Get("Content-Type"), resp.body); err != nil {
		t.Fatalf("answer does not match openapi.json: %v", err)
	}
}

func TestAbuseNamesRefusedBeforeStore(t *testing.T) {
	e := newMatrixEnv(t)
	doc := loadSpec(t)
	before := e.fingerprint(t)
	for _, r := range nameRoutes {
		for what, bad := range badNames {
			t.Run(r.method+" "+r.path+"/"+what, func(t *testing.T) {
				e := e.withT(t)
				path := strings.Replace(r.path, "{x}", bad, 1)
				resp := e.do(req{method: r.method, path: path, token: e.admin, body: r.body, contentType: r.ctype})
				if resp.status != http.StatusBadRequest || resp.errCode(t) != api.CodeInvalid {
					t.Fatalf("%s %s: status %d, want 400 invalid: %s", r.method, path, resp.status, resp.body)
				}
				checkSpec(t, doc, r.method, path, resp)
			})
		}
	}
	if after := e.fingerprint(t); after != before {
		t.Fatal("refused requests changed the store")
	}
}

func TestAbuseBodiesAndQueries(t *testing.T) {
	e := newMatrixEnv(t)
	doc := loadSpec(t)
	before := e.fingerprint(t)
	big := strings.Repeat("a", configsvc.MaxFileSize+1)
	half := strings.Repeat("b", 500<<10)
	tests := []struct {
		name     string
		r        req
		want     int
		wantCode string
		limit    float64 // the limit a 413 must name
		field    string  // the field a 400 must name
	}{
		{name: "file over 512 KiB", r: req{method: "PUT", path: "/v1/services/orders/files/a.txt", body: big, contentType: "text/plain"}, want: 413, wantCode: api.CodeTooLarge, limit: configsvc.MaxFileSize},
		{name: "file over 512 KiB in a publish", r: req{method: "POST", path: "/v1/services/orders/revisions", body: map[string]any{"changes": []map[string]any{{"file": "a.txt", "content": big}}}}, want: 413, wantCode: api.CodeTooLarge, limit: configsvc.MaxFileSize},
		{name: "changeset over 900 KiB", r: req{method: "POST", path: "/v1/services/orders/revisions", body: map[string]any{"changes": []map[string]any{{"file": "a.txt", "content": half}, {"file": "b.txt", "content": half}}}}, want: 413, wantCode: api.CodeTooLarge, limit: configsvc.MaxChangesetSize},
		{name: "publish body over 2 MiB", r: req{method: "POST", path: "/v1/services/orders/revisions", body: `{"changes":[{"file":"a.txt","content":"` + strings.Repeat("x", MaxPublishBody) + `"}]}`, contentType: "application/json"}, want: 413, wantCode: api.CodeTooLarge, limit: MaxPublishBody},
		{name: "token body over 64 KiB", r: req{method: "POST", path: "/v1/tokens", body: `{"name":"` + strings.Repeat("x", MaxJSONBody) + `"}`, contentType: "application/json"}, want: 413, wantCode: api.CodeTooLarge, limit: MaxJSONBody},
		{name: "message over limit", r: req{method: "PUT", path: "/v1/services/orders/files/a.txt", body: "x", header: map[string]string{"X-Sluice-Message": strings.Repeat("m", configsvc.MaxMessageLen+1)}}, want: 413, wantCode: api.CodeTooLarge, limit: configsvc.MaxMessageLen},
		{name: "control characters in message", r: req{method: "POST", path: "/v1/services/orders/revisions", body: map[string]any{"message": "a\x1b[31mred", "changes": []map[string]any{{"file": "a.txt", "content": "x"}}}}, want: 400, wantCode: api.CodeInvalid, field: "message"},
		{name: "control characters in a rollback message", r: req{method: "POST", path: "/v1/services/orders/rollback", body: map[string]any{"to_revision": 1, "message": "a\x1b[31mred"}}, want: 400, wantCode: api.CodeInvalid, field: "message"},
		{name: "publish as text/plain", r: req{method: "POST", path: "/v1/services/orders/revisions", body: `{"changes":[]}`, contentType: "text/plain"}, want: 415, wantCode: api.CodeMediaType},
		{name: "publish without content type", r: req{method: "POST", path: "/v1/services/orders/revisions", body: `{"changes":[]}`}, want: 415, wantCode: api.CodeMediaType},
		{name: "file as form", r: req{method: "PUT", path: "/v1/services/orders/files/a.txt", body: "a=b", contentType: "application/x-www-form-urlencoded"}, want: 415, wantCode: api.CodeMediaType},
		{name: "file as multipart", r: req{method: "PUT", path: "/v1/services/orders/files/a.txt", body: "--x--", contentType: "multipart/form-data; boundary=x"}, want: 415, wantCode: api.CodeMediaType},
		{name: "unparsable content type", r: req{method: "POST", path: "/v1/pins", body: "{}", contentType: "application/json; ;="}, want: 415, wantCode: api.CodeMediaType},
		{name: "truncated JSON", r: req{method: "POST", path: "/v1/services/orders/revisions", body: `{"changes": [`, contentType: "application/json"}, want: 400, wantCode: api.CodeInvalid},
		{name: "two JSON values", r: req{method: "POST", path: "/v1/services/orders/rollback", body: `{"to_revision":1} {}`, contentType: "application/json"}, want: 400, wantCode: api.CodeInvalid},
		{name: "unknown field", r: req{method: "POST", path: "/v1/services/orders/rollback", body: `{"to_revision":1,"force":true}`, contentType: "application/json"}, want: 400, wantCode: api.CodeInvalid},
		{name: "wrong JSON type", r: req{method: "POST", path: "/v1/services/orders/revisions", body: `{"changes":"all"}`, contentType: "application/json"}, want: 400, wantCode: api.CodeInvalid},
		{name: "empty changeset", r: req{method: "POST", path: "/v1/services/orders/revisions", body: map[string]any{"changes": []any{}}}, want: 400, wantCode: api.CodeInvalid},
		{name: "change with content and delete", r: req{method: "POST", path: "/v1/services/orders/revisions", body: map[string]any{"changes": []map[string]any{{"file": "a.txt", "content": "x", "delete": true}}}}, want: 400, wantCode: api.CodeInvalid},
		{name: "traversal in changeset file", r: req{method: "POST", path: "/v1/services/orders/revisions", body: map[string]any{"changes": []map[string]any{{"file": "../etc/passwd", "content": "x"}}}}, want: 400, wantCode: api.CodeInvalid},
		{name: "traversal in rollback files", r: req{method: "POST", path: "/v1/services/orders/rollback", body: map[string]any{"to_revision": 1, "files": []string{"../a"}}}, want: 400, wantCode: api.CodeInvalid},
		{name: "garbage If-Match", r: req{method: "PUT", path: "/v1/services/orders/files/a.txt", body: "x", header: map[string]string{"If-Match": `"abc"`}}, want: 400, wantCode: api.CodeInvalid},
		{name: "bad grant", r: req{method: "POST", path: "/v1/tokens", body: map[string]any{"name": "x", "roles": []map[string]string{{"role": "editor", "pattern": "../*"}}}}, want: 400, wantCode: api.CodeInvalid},
		{name: "huge limit", r: req{method: "GET", path: "/v1/services/orders/revisions?limit=1000000"}, want: 400, wantCode: api.CodeInvalid},
		{name: "overflowing limit", r: req{method: "GET", path: "/v1/services/orders/revisions?limit=99999999999999999999999"}, want: 400, wantCode: api.CodeInvalid},
		{name: "negative limit", r: req{method: "GET", path: "/v1/services/orders/revisions?limit=-1"}, want: 400, wantCode: api.CodeInvalid},
		{name: "word limit", r: req{method: "GET", path: "/v1/services/orders/revisions?limit=all"}, want: 400, wantCode: api.CodeInvalid},
		{name: "negative before", r: req{method: "GET", path: "/v1/services/orders/revisions?before=-3"}, want: 400, wantCode: api.CodeInvalid},
		{name: "huge audit limit", r: req{method: "GET", path: "/v1/audit?limit=100000"}, want: 400, wantCode: api.CodeInvalid},
		{name: "bad audit since", r: req{method: "GET", path: "/v1/audit?since=yesterday"}, want: 400, wantCode: api.CodeInvalid},
		{name: "bad audit service", r: req{method: "GET", path: "/v1/audit?service=..%2F"}, want: 400, wantCode: api.CodeInvalid},
		{name: "bad revision query", r: req{method: "GET", path: "/v1/services/orders/files/a.txt?revision=0x1"}, want: 400, wantCode: api.CodeInvalid},
		{name: "bad diff range", r: req{method: "GET", path: "/v1/services/orders/diff?from=-1"}, want: 400, wantCode: api.CodeInvalid},
		{name: "watch since garbage", r: req{method: "GET", path: "/v1/services/orders/watch?since=x"}, want: 400, wantCode: api.CodeInvalid},
		{name: "watch Last-Event-ID garbage", r: req{method: "GET", path: "/v1/services/orders/watch", header: map[string]string{"Last-Event-ID": "x"}}, want: 400, wantCode: api.CodeInvalid},
		{name: "instance address that is a URL", r: req{method: "PUT", path: "/v1/services/orders/instances/o-1", body: map[string]any{"addr": "http://169.254.169.254/latest/meta-data"}}, want: 400, wantCode: api.CodeInvalid, field: "addr"},
		{name: "instance weight over the limit", r: req{method: "PUT", path: "/v1/services/orders/instances/o-1", body: map[string]any{"addr": "10.0.0.1:80", "labels": map[string]string{"weight": "9223372036854775807"}}}, want: 400, wantCode: api.CodeInvalid, field: "labels.weight"},
		{name: "bad bearer scheme", r: req{method: "GET", path: "/v1/whoami", header: map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}}, want: 401, wantCode: api.CodeUnauthorized},
		{name: "unknown route", r: req{method: "GET", path: "/v1/debug/vars"}, want: 404, wantCode: api.CodeNotFound},
		{name: "method not allowed", r: req{method: "PATCH", path: "/v1/services/orders"}, want: 405, wantCode: api.CodeMethod},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.withT(t)
			if tc.r.token == "" && tc.r.header["Authorization"] == "" {
				tc.r.token = e.admin
			}
			resp := e.do(tc.r)
			if resp.status != tc.want || resp.errCode(t) != tc.wantCode {
				t.Fatalf("status %d code %s, want %d %s: %.300s", resp.status, resp.errCode(t), tc.want, tc.wantCode, resp.body)
			}
			checkSpec(t, doc, tc.r.method, tc.r.path, resp)
			if tc.field != "" {
				var b api.ErrorBody
				resp.json(t, &b)
				if b.Error.Details["field"] != tc.field {
					t.Fatalf("400 does not name the field %q: %+v", tc.field, b.Error)
				}
			}
			if tc.limit != 0 {
				var b api.ErrorBody
				resp.json(t, &b)
				if b.Error.Details["limit"] != tc.limit || !strings.Contains(b.Error.Message, fmt.Sprint(int64(tc.limit))) {
					t.Fatalf("413 does not name the limit %v: %+v", tc.limit, b.Error)
				}
			}
		})
	}
	if after := e.fingerprint(t); after != before {
		t.Fatal("refused requests changed the store")
	}
}

// instanceAddr returns the address registered for instance id of svc.
func (e *testEnv) instanceAddr(svc, id string) string {
	e.t.Helper()
	list, err := e.store.Instances(context.Background(), svc)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, in := range list {
		if in.ID == id {
			return in.Addr
		}
	}
	return ""
}

// TestAttackInstanceHijack: any token allowed to register in a service
// could overwrite another's instance (pointing its traffic elsewhere) or
// remove it. An instance belongs to the token that registered it.
func TestAttackInstanceHijack(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	owner, thief := e.mustToken("agent:orders"), e.mustToken("editor:orders")
	path := "/v1/services/orders/instances/orders-1"
	var got configsvc.Instance
	e.must(http.StatusCreated, req{method: "PUT", path: path, token: owner, body: map[string]any{"addr": "10.0.0.7:8080"}}).json(t, &got)
	ownerID := access.HashToken(owner)[:12]
	if got.Owner != ownerID {
		t.Fatalf("registered instance has owner %q, want the registering token %s", got.Owner, ownerID)
	}
	for _, r := range []req{
		{method: "PUT", path: path, token: thief, body: map[string]any{"addr": "169.254.169.254:80"}},
		{method: "PUT", path: path, token: thief, body: map[string]any{"addr": "169.254.169.254:80", "owner": access.HashToken(thief)[:12]}},
		{method: "DELETE", path: path, token: thief},
	} {
		resp := e.do(r)
		if resp.status != http.StatusForbidden || resp.errCode(t) != api.CodeForbidden || !strings.Contains(string(resp.body), ownerID) {
			t.Fatalf("%s by another token: %d %s, want 403 naming the owner", r.method, resp.status, resp.body)
		}
	}
	if addr := e.instanceAddr("orders", "orders-1"); addr != "10.0.0.7:8080" {
		t.Fatalf("instance address is now %q", addr)
	}
	// The owner refreshes it; an admin may too, and the owner stays.
	e.must(http.StatusOK, req{method: "PUT", path: path, token: owner, body: map[string]any{"addr": "10.0.0.7:8081"}})
	e.must(http.StatusOK, req{method: "PUT", path: path, token: e.admin, body: map[string]any{"addr": "10.0.0.7:8082"}}).json(t, &got)
	if got.Owner != ownerID {
		t.Fatalf("an admin's refresh changed the owner to %q", got.Owner)
	}
	// Another server on the same store refuses the thief too (403, not a
	// conflict to wait out).
	b := newEnvOn(t, e.store)
	resp := b.do(req{method: "PUT", path: path, token: thief, body: map[string]any{"addr": "169.254.169.254:80"}})
	if resp.status != http.StatusForbidden {
		t.Fatalf("thief on another server: %d %s, want 403", resp.status, resp.body)
	}
	e.must(http.StatusNoContent, req{method: "DELETE", path: path, token: owner})
}

// TestAttackFakeProxyRegisters: agents and editors granted on everything
// could register in sluice-system as "proxies", dividing every
// cluster-scoped rate limit among fakes; only admins and the proxy role may.
func TestAttackFakeProxyRegisters(t *testing.T) {
	e := newEnv(t)
	e.mustService(configsvc.SystemService, nil)
	path := "/v1/services/sluice-system/instances/proxy-fake"
	body := map[string]any{"addr": "127.0.0.1:7080", "labels": map[string]string{configsvc.ProxyRoleLabel: configsvc.ProxyRole}}
	for _, grant := range []string{"agent:*", "editor:*", "agent:sluice-system"} {
		resp := e.do(req{method: "PUT", path: path, token: e.mustToken(grant), body: body})
		if resp.status != http.StatusForbidden || !strings.Contains(string(resp.body), "proxies") {
			t.Fatalf("%s registers in sluice-system: %d %s, want 403 naming the proxy role", grant, resp.status, resp.body)
		}
	}
	if n := len(mustInstances(t, e, configsvc.SystemService)); n != 0 {
		t.Fatalf("%d instances in sluice-system after refused registrations", n)
	}
	e.must(http.StatusCreated, req{method: "PUT", path: path, token: e.mustToken("proxy:*"), body: body})
}

func mustInstances(t *testing.T, e *testEnv, svc string) []configsvc.Instance {
	t.Helper()
	list, err := e.store.Instances(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestAttackRefusalFloodEvictsAudit: each refused request used to append an
// fsynced entry to the audit log, so enough of them pushed every real entry
// out. Refusals are counted in metrics and sampled apart from the log.
func TestAttackRefusalFloodEvictsAudit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AuditKeep = 50 })
	e.mustService("orders", nil)
	real := e.auditCount()
	const flood = 300 // six times the retention
	for i := 0; i < flood; i++ {
		tok := ""
		if i%2 == 1 {
			tok = "slc_" + strings.Repeat("x", 43) // well-formed, unknown
		}
		e.must(http.StatusUnauthorized, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: tok, body: "x", contentType: "text/plain"})
	}
	if n := e.auditCount(); n != real {
		t.Fatalf("the audit log went from %d to %d entries: refusals still fill it", real, n)
	}
	samples, err := e.store.Records().Scan(context.Background(), access.RefusalsCollection, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) == 0 || len(samples) > access.DefaultMaxRefusalEntries {
		t.Fatalf("%d sampled refusals, want 1 to %d", len(samples), access.DefaultMaxRefusalEntries)
	}
	m := string(e.must(http.StatusOK, req{method: "GET", path: "/metrics"}).body)
	if want := fmt.Sprintf(`sluice_http_refusals_total{reason="unauthenticated"} %d`, flood); !strings.Contains(m, want) {
		t.Fatalf("metrics lack %s", want)
	}
	// The window's summary is written when it ends (here: at Close); the
	// audit then shows the refusals with their count.
	_ = e.srv.Close()
	var audit api.AuditList
	e2 := newEnvOn(t, e.store)
	e2.must(http.StatusOK, req{method: "GET", path: "/v1/audit?limit=1000", token: e.admin}).json(t, &audit)
	var counted int64
	for _, en := range audit.Entries {
		if en.Sampled {
			if en.Outcome != access.OutcomeRefused || en.Client != "127.0.0.1" || en.Status != http.StatusUnauthorized {
				t.Fatalf("sampled entry %+v", en)
			}
			counted += en.Count
		}
	}
	if counted != flood {
		t.Fatalf("sampled entries count %d refusals, want %d", counted, flood)
	}
}

// TestAttackStreamOutlivesRevocation: a watch stream kept delivering every
// new revision to a token revoked after it opened. Streams re-check their
// credential and end within 5 s of a revocation made on any server of the
// store, of the token's expiry, or of the console session's end: streams
// reading a store's own watch (each re-checks its credential) and streams
// on shared watches (configsvc/fanout, as `sluice server` wires it: the
// server re-checks the credentials of all of them, credWatch).
func TestAttackStreamOutlivesRevocation(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "store watches", true: "shared watches"}[shared], func(t *testing.T) {
			testStreamOutlivesRevocation(t, shared)
		})
	}
}

func testStreamOutlivesRevocation(t *testing.T, shared bool) {
	store := bolttest.MustOpen(t, boltstore.Options{})
	serverStore := func() configsvc.Store {
		if !shared {
			return store
		}
		st := fanout.New(store, fanout.Options{Linger: -1})
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	// No heartbeat within the test: a stream on a shared watch ends because
	// the server's credential check wakes it.
	quiet := func(c *Config) {
		if shared {
			c.Heartbeat = time.Hour
		}
	}
	a := newEnvOn(t, serverStore(), quiet)
	b := newEnvOn(t, serverStore(), quiet)
	a.mustService("orders", map[string]string{"a.txt": "one"})
	ended := func(t *testing.T, events <-chan sseEvent, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		sawError := false
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					if !sawError {
						t.Fatal("stream ended without an error event")
					}
					return
				}
				if ev.name == api.EventError {
					if !strings.Contains(ev.data, api.CodeUnauthorized) {
						t.Fatalf("error event %s, want code unauthorized", ev.data)
					}
					sawError = true
				}
			case <-deadline:
				t.Fatalf("stream still open %v after its credential ended", within)
			}
		}
	}
	t.Run("revoked on another server", func(t *testing.T) {
		var tok api.Token
		a.withT(t).must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: a.admin,
			body: map[string]any{"name": "watcher", "roles": []access.Grant{{Role: "viewer", Pattern: "orders"}}}}).json(t, &tok)
		events, _ := openStream(t, b.withT(t), "/v1/services/orders/watch", tok.Secret, nil)
		instances, _ := openStream(t, b.withT(t), "/v1/services/orders/instances/watch", tok.Secret, nil)
		a.withT(t).must(http.StatusNoContent, req{method: "DELETE", path: "/v1/tokens/" + tok.ID, token: a.admin})
		a.withT(t).must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: a.admin, body: "secret after revocation"})
		ended(t, events, 5*time.Second)
		ended(t, instances, 5*time.Second)
	})
	t.Run("expired", func(t *testing.T) {
		var tok api.Token
		a.withT(t).must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: a.admin,
			body: map[string]any{"name": "short", "ttl": "1h", "roles": []access.Grant{{Role: "viewer", Pattern: "orders"}}}}).json(t, &tok)
		events, _ := openStream(t, b.withT(t), "/v1/services/orders/watch", tok.Secret, nil)
		a.clock.Advance(time.Hour)
		b.clock.Advance(time.Hour)
		ended(t, events, 5*time.Second)
	})
	t.Run("session closed", func(t *testing.T) {
		viewer := a.withT(t).mustToken("viewer:orders")
		resp := a.withT(t).must(http.StatusOK, req{method: "POST", path: "/v1/session", body: map[string]string{"token": viewer}})
		var sid, csrf string
		for _, ck := range (&http.Response{Header: resp.header}).Cookies() {
			switch ck.Name {
			case SessionCookie:
				sid = ck.Value
			case CSRFCookie:
				csrf = ck.Value
			}
		}
		events, _ := openStream(t, b.withT(t), "/v1/services/orders/watch", "", map[string]string{"Authorization": "", "Cookie": SessionCookie + "=" + sid})
		a.withT(t).must(http.StatusNoContent, req{method: "DELETE", path: "/v1/session", header: map[string]string{"Cookie": SessionCookie + "=" + sid, CSRFHeader: csrf}})
		ended(t, events, 5*time.Second)
	})
}

// TestAttackStreamFlood: one token could hold any number of event streams
// (each a goroutine and a store watch); past MaxStreamsPerToken it gets 429
// naming the limit.
func TestAttackStreamFlood(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxStreamsPerToken = 2 })
	e.mustService("orders", nil)
	viewer := e.mustToken("viewer:orders")
	_, first := openStream(t, e, "/v1/services/orders/watch", viewer, nil)
	openStream(t, e, "/v1/services/orders/instances/watch", viewer, nil)
	resp := e.do(req{method: "GET", path: "/v1/services/orders/watch", token: viewer})
	if resp.status != http.StatusTooManyRequests || resp.errCode(t) != api.CodeTooMany || !strings.Contains(string(resp.body), settingStreams) || resp.header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d %s, want 429 naming %s with Retry-After", resp.status, resp.body, settingStreams)
	}
	checkSpec(t, loadSpec(t), "GET", "/v1/services/orders/watch", resp)
	openStream(t, e, "/v1/services/orders/watch", e.admin, nil) // another token's streams are its own
	first.Body.Close()
	e.do(req{method: "GET", path: "/v1/services/orders/snapshot", token: viewer})
	testkit.Eventually(t, 5*time.Second, "a closed stream's slot given back", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hr, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/v1/services/orders/watch", nil)
		hr.Header.Set("Authorization", "Bearer "+viewer)
		r, err := e.http.Client().Do(hr)
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", r.StatusCode)
		}
		return nil
	})
}

// TestAttackInstanceFlood: a token could register instances without bound
// (each an ephemeral node and a lease every server refreshes); past the
// per-token and per-service limits it gets 429 naming the limit.
func TestAttackInstanceFlood(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxInstancesPerToken = 3; c.MaxInstancesPerService = 5 })
	e.mustService("orders", nil)
	agent := e.mustToken("agent:orders")
	put := func(tok, id string) *response {
		return e.do(req{method: "PUT", path: "/v1/services/orders/instances/" + id, token: tok, body: map[string]any{"addr": "127.0.0.1:1"}})
	}
	for i := 0; i < 3; i++ {
		if r := put(agent, fmt.Sprintf("a-%d", i)); r.status != http.StatusCreated {
			t.Fatalf("instance %d: %d %s", i, r.status, r.body)
		}
	}
	if r := put(agent, "a-3"); r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), settingInstancesToken) {
		t.Fatalf("fourth instance of one token: %d %s, want 429 naming %s", r.status, r.body, settingInstancesToken)
	}
	if r := put(agent, "a-0"); r.status != http.StatusOK {
		t.Fatalf("refresh at the limit: %d %s", r.status, r.body)
	}
	other := e.mustToken("agent:orders")
	for i := 0; i < 2; i++ {
		if r := put(other, fmt.Sprintf("b-%d", i)); r.status != http.StatusCreated {
			t.Fatalf("other token's instance %d: %d %s", i, r.status, r.body)
		}
	}
	time.Sleep(instanceCountTTL) // the service's count is re-listed
	if r := put(other, "b-2"); r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), settingInstancesService) {
		t.Fatalf("sixth instance of the service: %d %s, want 429 naming %s", r.status, r.body, settingInstancesService)
	}
	if n := len(mustInstances(t, e, "orders")); n != 5 {
		t.Fatalf("%d instances registered, want 5", n)
	}
}

// TestAttackSessionFloodHTTP: POST /v1/session past the per-token limit is
// 429 naming it.
func TestAttackSessionFloodHTTP(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxSessionsPerToken = 2 })
	viewer := e.mustToken("viewer:orders")
	for i := 0; i < 2; i++ {
		e.must(http.StatusOK, req{method: "POST", path: "/v1/session", body: map[string]string{"token": viewer}})
	}
	resp := e.do(req{method: "POST", path: "/v1/session", body: map[string]string{"token": viewer}})
	if resp.status != http.StatusTooManyRequests || !strings.Contains(string(resp.body), settingSessions) {
		t.Fatalf("third session: %d %s, want 429 naming %s", resp.status, resp.body, settingSessions)
	}
	checkSpec(t, loadSpec(t), "POST", "/v1/session", resp)
}

// TestAttackServiceGrowsWithoutBound: publishes of at most 900 KiB each
// could grow a service without limit (every SDK holds all of it); the total
// is bounded on every publish path, rollback included.
func TestAttackServiceGrowsWithoutBound(t *testing.T) {
	const limit = 1 << 20
	e := newEnvOn(t, configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), configsvc.Validators(format.Validator{}, configsvc.ServiceBytesValidator(limit))))
	e.mustService("orders", nil)
	big := strings.Repeat("x", 400<<10)
	put := func(file string) *response {
		return e.do(req{method: "PUT", path: "/v1/services/orders/files/" + file, token: e.admin, body: big, contentType: "text/plain"})
	}
	for _, f := range []string{"a.txt", "b.txt"} {
		if r := put(f); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", f, r.status, r.body)
		}
	}
	tooLarge := func(what string, r *response) {
		t.Helper()
		var b api.ErrorBody
		r.json(t, &b)
		if r.status != http.StatusRequestEntityTooLarge || b.Error.Details["limit"] != float64(limit) {
			t.Fatalf("%s: %d %s, want 413 naming the limit %d", what, r.status, r.body, limit)
		}
	}
	tooLarge("third file", put("c.txt"))
	tooLarge("publish", e.do(req{method: "POST", path: "/v1/services/orders/revisions", token: e.admin,
		body: map[string]any{"changes": []map[string]any{{"file": "c.txt", "content": big}}}}))
	// Replacing a file by one of the same size does not grow the service.
	if r := put("a.txt"); r.status != http.StatusOK {
		t.Fatalf("rewrite: %d %s", r.status, r.body)
	}
	// Rollback: a.txt of revision 1 back beside the c.txt added since
	// would be over the limit.
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/services/orders/revisions", token: e.admin,
		body: map[string]any{"changes": []map[string]any{{"file": "a.txt", "delete": true}, {"file": "c.txt", "content": big}}}})
	tooLarge("rollback", e.do(req{method: "POST", path: "/v1/services/orders/rollback", token: e.admin,
		body: map[string]any{"to_revision": 1, "files": []string{"a.txt"}}}))
}

// TestAttackDiffRunsPastDeadline: a diff of two 512 KiB files with
// pathological content kept a CPU busy for minutes after the request had
// timed out; it now stops at the request's deadline.
func TestAttackDiffRunsPastDeadline(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RequestTimeout = time.Second })
	a, b := pathologicalPair()
	e.mustService("orders", map[string]string{"a.txt": string(a)})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: b, contentType: "text/plain"})
	start := time.Now()
	resp := e.do(req{method: "GET", path: "/v1/services/orders/diff", token: e.admin})
	took := time.Since(start)
	if resp.status != http.StatusServiceUnavailable || !strings.Contains(string(resp.body), "deadline") {
		t.Fatalf("diff: %d %.200s, want 503 at the deadline", resp.status, resp.body)
	}
	if took > 2*time.Second {
		t.Fatalf("diff answered after %v, past its 1s deadline", took)
	}
}

// TestAttackPinListShowsHiddenTargets: GET /v1/pins listed a pin whole when
// the caller could read one of its targets, naming instances of services
// the caller may not see. Only visible targets are listed now.
func TestAttackPinListShowsHiddenTargets(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	e.mustService("payments", nil)
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin,
		body: map[string]any{"targets": map[string]string{"orders": "orders-7", "payments": "payments-secret-2"}}})
	var list api.PinList
	resp := e.must(http.StatusOK, req{method: "GET", path: "/v1/pins", token: e.mustToken("viewer:orders")})
	resp.json(t, &list)
	if len(list.Pins) != 1 || len(list.Pins[0].Targets) != 1 || list.Pins[0].Targets["orders"] != "orders-7" || list.Pins[0].HiddenTargets != 1 {
		t.Fatalf("viewer of orders sees %+v, want only the orders target and one hidden", list.Pins)
	}
	if strings.Contains(string(resp.body), "payments") {
		t.Fatalf("the list names the hidden target: %s", resp.body)
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/pins", token: e.mustToken("viewer:billing")}).json(t, &list)
	if len(list.Pins) != 0 {
		t.Fatalf("a caller who sees no target sees %+v", list.Pins)
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/pins", token: e.admin}).json(t, &list)
	if len(list.Pins) != 1 || len(list.Pins[0].Targets) != 2 || list.Pins[0].HiddenTargets != 0 {
		t.Fatalf("admin sees %+v, want the whole pin", list.Pins)
	}
}

func TestTokenTTL(t *testing.T) {
	e := newEnv(t)
	var tok api.Token
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: e.admin,
		body: map[string]any{"name": "ci", "ttl": "24h", "roles": []access.Grant{{Role: "viewer", Pattern: "orders"}}}}).json(t, &tok)
	if want := e.clock.Now().Add(24 * time.Hour); !tok.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", tok.Expires, want)
	}
	var list api.TokenList
	e.must(http.StatusOK, req{method: "GET", path: "/v1/tokens", token: e.admin}).json(t, &list)
	found := false
	for _, lt := range list.Tokens {
		found = found || lt.ID == tok.ID && lt.Expires.Equal(tok.Expires)
	}
	if !found {
		t.Fatalf("token list does not show the expiry: %+v", list.Tokens)
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/whoami", token: tok.Secret})
	e.clock.Advance(24 * time.Hour)
	e.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/whoami", token: tok.Secret})
	if err := e.srv.sweepRecords(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/tokens", token: e.admin}).json(t, &list)
	for _, lt := range list.Tokens {
		if lt.ID == tok.ID {
			t.Fatal("the expired token was not swept")
		}
	}
	resp := e.do(req{method: "POST", path: "/v1/tokens", token: e.admin, body: map[string]any{"name": "x", "ttl": "-1h", "roles": []access.Grant{{Role: "admin"}}}})
	if resp.status != http.StatusBadRequest || !strings.Contains(string(resp.body), "ttl") {
		t.Fatalf("negative ttl: %d %s", resp.status, resp.body)
	}
}
