package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestIdempotencyKeyPublishOnce: a publish without If-Match retried with
// the same Idempotency-Key (the client never saw the first answer) makes
// one revision; the retry gets the first answer (status, ETag, body) and
// writes nothing, not even an audit entry.
func TestIdempotencyKeyPublishOnce(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	auditBefore := e.auditCount()
	body := map[string]any{"message": "pool", "changes": []map[string]any{{"file": "db.yaml", "content": "pool: 5\n"}}}
	key := map[string]string{api.HeaderIdempotencyKey: "4b1f9c2e-publish"}
	first := e.do(req{method: "POST", path: "/v1/services/orders/revisions", token: e.admin, body: body, header: key})
	second := e.do(req{method: "POST", path: "/v1/services/orders/revisions", token: e.admin, body: body, header: key})
	if first.status != http.StatusCreated || second.status != http.StatusCreated {
		t.Fatalf("statuses %d, %d (%s); want 201 twice", first.status, second.status, second.body)
	}
	if !bytes.Equal(first.body, second.body) || first.header.Get("ETag") != `"1"` || second.header.Get("ETag") != `"1"` ||
		second.header.Get("X-Sluice-Revision") != "1" || second.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("replay = %s %v; want the first answer %s %v, marked replayed", second.body, second.header, first.body, first.header)
	}
	h, err := e.store.Head(context.Background(), configsvc.Service("orders"))
	if err != nil || h.Revision != 1 {
		t.Fatalf("head = %d, %v; want 1 revision", h.Revision, err)
	}
	if n := e.auditCount() - auditBefore; n != 1 {
		t.Fatalf("%d audit entries for a publish and its replay; want 1", n)
	}
	// Without a key the same request publishes again: keys are opt-in.
	if r := e.do(req{method: "POST", path: "/v1/services/orders/revisions", token: e.admin, body: body}); r.status != http.StatusCreated {
		t.Fatalf("publish without a key = %d %s", r.status, r.body)
	}
}

// TestIdempotencyKeyOtherRequest: the same key with another body (or
// message, or path) is refused with 422 naming the key, and writes nothing.
func TestIdempotencyKeyOtherRequest(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	key := map[string]string{api.HeaderIdempotencyKey: "reused-key"}
	r := e.do(req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "one", contentType: "text/plain", header: key})
	if r.status != http.StatusOK {
		t.Fatalf("first put = %d %s", r.status, r.body)
	}
	r = e.do(req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "two", contentType: "text/plain", header: key})
	var eb api.ErrorBody
	if r.status != http.StatusUnprocessableEntity || json.Unmarshal(r.body, &eb) != nil || eb.Error.Details["field"] != api.HeaderIdempotencyKey ||
		!strings.Contains(eb.Error.Message, "reused-key") {
		t.Fatalf("same key, other body = %d %s; want 422 naming the Idempotency-Key", r.status, r.body)
	}
	if got, _, err := e.store.File(context.Background(), configsvc.Service("orders"), "a.txt", 0); err != nil || string(got) != "one" {
		t.Fatalf("a.txt = %q, %v; want one (nothing written)", got, err)
	}
	// The key belongs to its path: another file is another request.
	r = e.do(req{method: "PUT", path: "/v1/services/orders/files/b.txt", token: e.admin, body: "two", contentType: "text/plain", header: key})
	if r.status != http.StatusOK {
		t.Fatalf("same key on another path = %d %s; want 200", r.status, r.body)
	}
	for _, bad := range []string{strings.Repeat("k", access.MaxIdempotencyKeyLen+1), "has space", "tab\tkey"} {
		r := e.do(req{method: "PUT", path: "/v1/services/orders/files/c.txt", token: e.admin, body: "x", contentType: "text/plain",
			header: map[string]string{api.HeaderIdempotencyKey: bad}})
		if r.status != http.StatusBadRequest || r.errCode(t) != api.CodeInvalid {
			t.Fatalf("key %q = %d %s; want 400", configsvc.Truncate(bad, 20), r.status, r.body)
		}
	}
}

// TestIdempotencyKeyDeleteRetried: a DELETE that succeeded, retried with
// its key, answers as the first time instead of 422 ("cannot delete a file
// that does not exist") or 404.
func TestIdempotencyKeyDeleteRetried(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	if r := e.do(req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "x", contentType: "text/plain"}); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	key := map[string]string{api.HeaderIdempotencyKey: "delete-a"}
	for i := range 2 {
		r := e.do(req{method: "DELETE", path: "/v1/services/orders/files/a.txt", token: e.admin, header: key})
		if r.status != http.StatusOK || r.header.Get("ETag") != `"2"` {
			t.Fatalf("delete attempt %d = %d %s (ETag %s); want 200 at revision 2", i+1, r.status, r.body, r.header.Get("ETag"))
		}
	}
	if r := e.do(req{method: "DELETE", path: "/v1/services/orders", token: e.admin, header: key}); r.status != http.StatusNoContent {
		t.Fatalf("delete service = %d %s", r.status, r.body)
	}
	if r := e.do(req{method: "DELETE", path: "/v1/services/orders", token: e.admin, header: key}); r.status != http.StatusNoContent {
		t.Fatalf("delete service again under its key = %d %s; want the first 204", r.status, r.body)
	}
}

// TestIdempotencyKeyAcrossServers: two servers on one store share the kept
// answers, so a retry that reaches the other server is answered the same.
// The kept answer of a token creation, which holds the new token, is
// sealed: the store never holds it in the clear.
func TestIdempotencyKeyAcrossServers(t *testing.T) {
	a := newEnv(t)
	b := newEnvOn(t, a.store)
	a.mustService("orders", nil)
	key := map[string]string{api.HeaderIdempotencyKey: "across-servers"}
	body := map[string]any{"changes": []map[string]any{{"file": "a.txt", "content": "x"}}}
	first := a.do(req{method: "POST", path: "/v1/services/orders/revisions", token: a.admin, body: body, header: key})
	second := b.do(req{method: "POST", path: "/v1/services/orders/revisions", token: a.admin, body: body, header: key})
	if first.status != http.StatusCreated || second.status != http.StatusCreated || !bytes.Equal(first.body, second.body) || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("through two servers: %d %s, then %d %s; want the same 201, replayed", first.status, first.body, second.status, second.body)
	}
	if h, _ := a.store.Head(context.Background(), configsvc.Service("orders")); h.Revision != 1 {
		t.Fatalf("head = %d, want 1", h.Revision)
	}
	// Another credential's retry with the same key is another request.
	editor := a.mustToken("editor:orders")
	if r := b.do(req{method: "POST", path: "/v1/services/orders/revisions", token: editor, body: body, header: key}); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("same key, other token = %d %s; want a new publish", r.status, r.body)
	}

	tkey := map[string]string{api.HeaderIdempotencyKey: "token-create"}
	tbody := map[string]any{"name": "ci", "roles": []map[string]string{{"role": "viewer", "pattern": "orders"}}}
	t1 := a.do(req{method: "POST", path: "/v1/tokens", token: a.admin, body: tbody, header: tkey})
	t2 := b.do(req{method: "POST", path: "/v1/tokens", token: a.admin, body: tbody, header: tkey})
	var tok1, tok2 api.Token
	t1.json(t, &tok1)
	t2.json(t, &tok2)
	if t1.status != http.StatusCreated || tok1.Secret == "" || tok1.Secret != tok2.Secret || tok1.ID != tok2.ID {
		t.Fatalf("token create and its replay: %s / %s; want the same token", t1.body, t2.body)
	}
	for i := range 256 {
		recs, err := a.store.Records().List(context.Background(), fmt.Sprintf("idempotency-%02x", i))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if bytes.Contains(r.Data, []byte(tok1.Secret)) {
				t.Fatalf("kept answer %s holds the token in the clear", r.ID)
			}
		}
	}
}

// TestIdempotencyRefusalNotKept: an answer that wrote nothing for a reason
// that may pass (403 here) is not kept: once the caller may, the retry
// with the same key runs.
func TestIdempotencyRefusalNotKept(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	viewer := e.mustToken("viewer:orders")
	key := map[string]string{api.HeaderIdempotencyKey: "refused-then-run"}
	r := e.do(req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: viewer, body: "x", contentType: "text/plain", header: key})
	if r.status != http.StatusForbidden {
		t.Fatalf("viewer put = %d", r.status)
	}
	r = e.do(req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: viewer, body: "x", contentType: "text/plain", header: key})
	if r.status != http.StatusForbidden || r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("viewer put again = %d (replayed %q); want 403 decided afresh", r.status, r.header.Get("Idempotent-Replayed"))
	}
}
