package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
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
