package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/sluicehq/sluice/configsvc/api"
)

// TestIfMatchRFC9110 runs every route that takes If-Match through the
// rules of RFC 9110 §13.1.1: strong comparison (a weak tag never matches:
// 412), "*" means the target exists, a list matches when one of its tags
// does, a stale tag is 412, a malformed header 400. The routes share one
// implementation (checkIfMatch); each is checked, so a route that skips it
// fails here.
func TestIfMatchRFC9110(t *testing.T) {
	type route struct {
		name  string
		write func(svc string, ifMatch string) req
	}
	routes := []route{
		{"PUT file", func(svc, im string) req {
			return req{method: "PUT", path: "/v1/services/" + svc + "/files/a.txt", body: "new", header: map[string]string{"If-Match": im}}
		}},
		{"DELETE file", func(svc, im string) req {
			return req{method: "DELETE", path: "/v1/services/" + svc + "/files/a.txt", header: map[string]string{"If-Match": im}}
		}},
		{"POST revisions", func(svc, im string) req {
			return req{method: "POST", path: "/v1/services/" + svc + "/revisions", header: map[string]string{"If-Match": im},
				body: map[string]any{"message": "m", "changes": []map[string]any{{"file": "b.txt", "content": "b"}}}}
		}},
		{"POST rollback", func(svc, im string) req {
			return req{method: "POST", path: "/v1/services/" + svc + "/rollback", header: map[string]string{"If-Match": im},
				body: map[string]any{"to_revision": 1}}
		}},
		{"PUT shared file", func(svc, im string) req {
			return req{method: "PUT", path: "/v1/shared/" + svc + "/files/a.txt", body: "new", header: map[string]string{"If-Match": im}}
		}},
	}
	// Each case runs on a fresh service whose head is revision 2 and which
	// holds a.txt.
	cases := []struct {
		name    string
		ifMatch func(head int64) string
		want    int
	}{
		{"strong tag of the head", func(h int64) string { return strconv.Quote(fmt.Sprint(h)) }, 0},
		{"weak tag of the head is refused", func(h int64) string { return `W/"` + fmt.Sprint(h) + `"` }, http.StatusPreconditionFailed},
		{"stale strong tag", func(h int64) string { return strconv.Quote(fmt.Sprint(h - 1)) }, http.StatusPreconditionFailed},
		{"star: the target exists", func(int64) string { return "*" }, 0},
		{"list holding the head", func(h int64) string { return fmt.Sprintf(`"%d", "%d"`, h-1, h) }, 0},
		{"list holding the head only weakly", func(h int64) string { return fmt.Sprintf(`"%d", W/"%d"`, h-1, h) }, http.StatusPreconditionFailed},
		{"malformed", func(int64) string { return `"two"` }, http.StatusBadRequest},
		{"weak without quotes", func(h int64) string { return "W/" + fmt.Sprint(h) }, http.StatusBadRequest},
	}
	e := newEnv(t)
	n := 0
	for _, rt := range routes {
		for _, tc := range cases {
			t.Run(rt.name+"/"+tc.name, func(t *testing.T) {
				e := e.withT(t)
				n++
				name := fmt.Sprintf("s%d", n)
				r := rt.write(name, "")
				if r.path[4:10] == "shared" {
					e.mustGroup(name, map[string]string{"a.txt": "one"})
					e.must(http.StatusOK, req{method: "PUT", path: "/v1/shared/" + name + "/files/a.txt", token: e.admin, body: "two"})
				} else {
					e.mustService(name, map[string]string{"a.txt": "one"})
					e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/" + name + "/files/a.txt", token: e.admin, body: "two"})
				}
				r = rt.write(name, tc.ifMatch(2))
				r.token = e.admin
				resp := e.do(r)
				want := tc.want
				if want == 0 && resp.status/100 == 2 {
					want = resp.status
				}
				if resp.status != want {
					t.Fatalf("If-Match %s: status %d (%s), want %d", r.header["If-Match"], resp.status, resp.body, want)
				}
				switch want {
				case http.StatusPreconditionFailed:
					if code := resp.errCode(t); code != api.CodePrecondition {
						t.Errorf("code %q, want %q", code, api.CodePrecondition)
					}
				case http.StatusBadRequest:
					var b api.ErrorBody
					resp.json(t, &b)
					if b.Error.Details["field"] != "If-Match" {
						t.Errorf("error %+v does not name If-Match", b.Error)
					}
				}
			})
		}
	}
}

// TestIfMatchStarOnAMissingFile: "*" asks for an existing target, and the
// target of the file routes is the file.
func TestIfMatchStarOnAMissingFile(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "one"})
	star := map[string]string{"If-Match": "*"}
	e.must(http.StatusPreconditionFailed, req{method: "PUT", path: "/v1/services/orders/files/new.txt", token: e.admin, body: "x", header: star})
	e.must(http.StatusPreconditionFailed, req{method: "DELETE", path: "/v1/services/orders/files/new.txt", token: e.admin, header: star})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "x", header: star})
	// Without the header a new file is simply created.
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/new.txt", token: e.admin, body: "x"})
}

// TestIfMatchBaseRevisionDisagreeing: an If-Match that holds and a stale
// base_revision in the body is the body's conflict (409), not a failed
// precondition.
func TestIfMatchBaseRevisionDisagreeing(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "one"})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "two"})
	e.must(http.StatusConflict, req{method: "POST", path: "/v1/services/orders/revisions", token: e.admin,
		header: map[string]string{"If-Match": `"2"`},
		body:   map[string]any{"base_revision": 1, "message": "m", "changes": []map[string]any{{"file": "b.txt", "content": "b"}}}})
	e.must(http.StatusConflict, req{method: "POST", path: "/v1/services/orders/rollback", token: e.admin,
		header: map[string]string{"If-Match": `"2"`}, body: map[string]any{"to_revision": 1, "base_revision": 1}})
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/services/orders/rollback", token: e.admin,
		header: map[string]string{"If-Match": `"2"`}, body: map[string]any{"to_revision": 1, "base_revision": 2}})
}

// TestIfNoneMatch: every GET that carries an ETag answers 304 Not
// Modified, with the ETag and no body, when If-None-Match names it (weak
// comparison, RFC 9110 §13.1.2) or is "*"; 200 with the content otherwise.
func TestIfNoneMatch(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "one"})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "two"})
	paths := []struct {
		path string
		etag string // the ETag the GET answers
	}{
		{"/v1/services/orders/files/a.txt", `"2"`},
		{"/v1/services/orders/files/a.txt?revision=1", `"1"`},
		{"/v1/services/orders", `"2"`},
		{"/v1/services/orders/snapshot", `"2"`},
		{"/v1/services/orders/revisions/1", `"1"`},
	}
	for _, p := range paths {
		t.Run(p.path, func(t *testing.T) {
			e := e.withT(t)
			full := e.must(http.StatusOK, req{method: "GET", path: p.path, token: e.admin})
			if got := full.header.Get("ETag"); got != p.etag {
				t.Fatalf("ETag %q, want %q", got, p.etag)
			}
			for _, inm := range []string{p.etag, "W/" + p.etag, "*", `"999", ` + p.etag} {
				r := e.must(http.StatusNotModified, req{method: "GET", path: p.path, token: e.admin, header: map[string]string{"If-None-Match": inm}})
				if r.header.Get("ETag") != p.etag || len(r.body) != 0 {
					t.Errorf("If-None-Match %s: 304 with ETag %q and %d body bytes; want ETag %s and no body", inm, r.header.Get("ETag"), len(r.body), p.etag)
				}
			}
			changed := e.must(http.StatusOK, req{method: "GET", path: p.path, token: e.admin, header: map[string]string{"If-None-Match": `"999"`}})
			if string(changed.body) != string(full.body) {
				t.Errorf("If-None-Match of another revision: body %q, want the full %q", changed.body, full.body)
			}
			e.must(http.StatusBadRequest, req{method: "GET", path: p.path, token: e.admin, header: map[string]string{"If-None-Match": "garbage"}})
		})
	}
	// A new revision changes the head's ETag: the old one no longer matches.
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "three"})
	r := e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/files/a.txt", token: e.admin, header: map[string]string{"If-None-Match": `"2"`}})
	if string(r.body) != "three" || r.header.Get("ETag") != `"3"` {
		t.Fatalf("after a publish: %q with ETag %q", r.body, r.header.Get("ETag"))
	}
	// Authorization comes first: a 304 tells nothing to a caller who may not read.
	other := e.mustToken("viewer:billing")
	e.must(http.StatusForbidden, req{method: "GET", path: "/v1/services/orders/files/a.txt", token: other, header: map[string]string{"If-None-Match": "*"}})
}
