package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
)

// internalsInMessages are what a message written for users never holds:
// the package prefixes of the store, access and server errors, and Go's
// own error texts.
var internalsInMessages = []string{
	"boltstore:", "zkstore:", "access:", "httpapi:", "configsvc:", "api:", "format:", "routesfile:",
	"context deadline exceeded", "%!", "<nil>",
}

// errorChain matches a sentinel's text as a link of a Go error chain
// ("…: not found", "…: conflict: …").
var errorChain = regexp.MustCompile(`: (not found|conflict|invalid|forbidden|unauthenticated|store unavailable|` +
	`precondition failed|revision compacted|closed|too large|too many|CSRF check failed)($|[:;)])`)

// checkUserMessage fails t unless resp is an error answer of status whose
// message is written for users (none of internalsInMessages, every want
// phrase) and carries the request id of its X-Request-ID.
func checkUserMessage(t *testing.T, resp *response, status int, want ...string) *api.Error {
	t.Helper()
	var b api.ErrorBody
	resp.json(t, &b)
	if resp.status != status || b.Error == nil {
		t.Fatalf("status %d, want %d: %s", resp.status, status, resp.body)
	}
	msg := b.Error.Message
	if msg == "" {
		t.Fatalf("empty message: %s", resp.body)
	}
	for _, bad := range internalsInMessages {
		if strings.Contains(msg, bad) {
			t.Errorf("message %q shows internals (%q)", msg, bad)
		}
	}
	if m := errorChain.FindString(msg); m != "" {
		t.Errorf("message %q is a Go error chain (%q)", msg, m)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not say %q", msg, w)
		}
	}
	if id := resp.header.Get("X-Request-ID"); id == "" || b.Error.RequestID != id {
		t.Errorf("request_id %q, X-Request-ID %q: the answer must carry the request id", b.Error.RequestID, id)
	}
	return b.Error
}

// TestErrorMessagesForUsers sweeps the error paths of the API (not found,
// conflict, unauthorized, forbidden, invalid, precondition, media type,
// size, content, compacted, unavailable): every message is written for
// users, names what failed, and carries the request id, under which the
// server log holds the internal error.
func TestErrorMessagesForUsers(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		e.mustService("orders", map[string]string{"a.txt": "one"})
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "two", contentType: "text/plain"})
		e.mustGroup("common", map[string]string{"c.yaml": "x: 1\n"})
		e.mustGroup("other", nil)
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/common", token: e.admin})
		viewer := e.mustToken("viewer:orders")
		big := strings.Repeat("x", int(configsvc.MaxFileSize)+1)

		tests := []struct {
			name   string
			r      req
			status int
			want   []string
			logged bool // the log line of the request holds an internal error
		}{
			{"missing service", req{method: "GET", path: "/v1/services/no-such-service"}, 404, []string{"service no-such-service does not exist"}, true},
			{"missing file", req{method: "GET", path: "/v1/services/orders/files/nope.yaml"}, 404, []string{"service orders has no file nope.yaml"}, true},
			{"file past the head", req{method: "GET", path: "/v1/services/orders/files/a.txt?revision=99"}, 404, []string{"no file a.txt at revision 99", "newest revision is 2"}, true},
			{"missing revision", req{method: "GET", path: "/v1/services/orders/revisions/99"}, 404, []string{"service orders has no revision 99"}, true},
			{"missing group", req{method: "GET", path: "/v1/shared/nope/users"}, 404, []string{"shared group nope does not exist"}, true},
			{"file of a missing service", req{method: "GET", path: "/v1/services/gone/files/a.txt"}, 404, []string{"service gone does not exist"}, true},
			{"unlink what is not linked", req{method: "DELETE", path: "/v1/services/orders/links/other"}, 404, []string{"does not link shared group other"}, true},
			{"link a missing group", req{method: "PUT", path: "/v1/services/orders/links/nope"}, 404, []string{"shared group nope does not exist"}, true},
			{"missing token", req{method: "DELETE", path: "/v1/tokens/abcdef123456"}, 404, []string{"abcdef123456"}, true},
			{"missing pin", req{method: "DELETE", path: "/v1/pins/abcdef123456"}, 404, []string{"abcdef123456"}, true},
			{"missing instance", req{method: "DELETE", path: "/v1/services/orders/instances/i-9"}, 404, []string{"instance i-9 of service orders is not registered"}, true},
			{"no endpoint", req{method: "GET", path: "/v1/nope"}, 404, []string{"/v1/nope"}, false},
			{"wrong method", req{method: "PATCH", path: "/v1/services"}, 405, []string{"PATCH"}, false},
			{"stale base", req{method: "POST", path: "/v1/services/orders/revisions", body: map[string]any{"base_revision": 1, "changes": []map[string]any{{"file": "b.txt", "content": "b"}}}},
				409, []string{"service orders changed", "revision 2 now"}, true},
			{"group still linked", req{method: "DELETE", path: "/v1/shared/common"}, 409, []string{"shared group common is still linked by service orders"}, true},
			{"stale If-Match", req{method: "PUT", path: "/v1/services/orders/files/a.txt", body: "three", contentType: "text/plain", header: map[string]string{"If-Match": `"1"`}},
				412, []string{"revision 2"}, true},
			{"no token", req{method: "GET", path: "/v1/services", token: "-"}, 401, []string{"Authorization"}, false},
			{"unknown token", req{method: "GET", path: "/v1/services", token: "slc_bogus"}, 401, []string{"token was not accepted"}, true},
			{"not a bearer", req{method: "GET", path: "/v1/services", token: "-", header: map[string]string{"Authorization": "Basic eDp5"}}, 401, []string{"Bearer"}, false},
			{"forbidden", req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: viewer, body: "x", contentType: "text/plain"}, 403, []string{"publish", "ask an admin"}, true},
			{"bad name", req{method: "GET", path: "/v1/services/Bad_Name"}, 400, []string{"Bad_Name"}, true},
			{"bad limit", req{method: "GET", path: "/v1/services/orders/revisions?limit=0"}, 400, []string{"limit"}, true},
			{"bad JSON", req{method: "POST", path: "/v1/services/orders/revisions", body: "{", contentType: "application/json"}, 400, []string{"JSON"}, true},
			{"media type", req{method: "POST", path: "/v1/services/orders/revisions", body: "{}", contentType: "text/plain"}, 415, []string{"application/json"}, false},
			{"too large", req{method: "PUT", path: "/v1/services/orders/files/big.txt", body: big, contentType: "text/plain"}, 413, []string{"limit"}, true},
			{"content refused", req{method: "PUT", path: "/v1/services/orders/files/b.json", body: "{nope", contentType: "application/json"}, 422, []string{"b.json"}, true},
			{"nothing to roll back", req{method: "POST", path: "/v1/services/orders/rollback", body: map[string]any{"to_revision": 2}}, 400, []string{"nothing to roll back"}, true},
			{"roll back to no revision", req{method: "POST", path: "/v1/services/orders/rollback", body: map[string]any{"to_revision": 9}}, 404, []string{"no revision 9"}, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e := e.withT(t)
				r := tc.r
				switch r.token {
				case "":
					r.token = e.admin
				case "-":
					r.token = ""
				}
				resp := e.do(r)
				checkUserMessage(t, resp, tc.status, tc.want...)
				if tc.logged {
					id := resp.header.Get("X-Request-ID")
					if log := e.logText(); !strings.Contains(log, `"request_id":"`+id+`"`) || !strings.Contains(log, `"error":`) {
						t.Errorf("the server log has no line with request %s and its error:\n%s", id, log)
					}
				}
			})
		}
	})
}

// TestErrorMessagesCompactedAndUnavailable: a revision removed by history
// retention (410) and a store that cannot be reached (503) are worded for
// users too.
func TestErrorMessagesCompactedAndUnavailable(t *testing.T) {
	t.Run("compacted", func(t *testing.T) {
		e := newEnvOn(t, configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{Retention: 2}), format.Validator{}))
		e.mustService("orders", map[string]string{"a.txt": "1"})
		for i := 2; i <= 4; i++ {
			e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: fmt.Sprint(i), contentType: "text/plain"})
		}
		resp := e.do(req{method: "GET", path: "/v1/services/orders/revisions/1", token: e.admin})
		checkUserMessage(t, resp, http.StatusGone, "revision 1 of service orders", "retention")
	})
	t.Run("unavailable", func(t *testing.T) {
		e := newEnvOn(t, downStore{configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), format.Validator{})})
		resp := e.do(req{method: "GET", path: "/v1/services", token: e.admin})
		checkUserMessage(t, resp, http.StatusServiceUnavailable, "cannot be reached", "try again")
		if log := e.logText(); !strings.Contains(log, "boltstore: list services: disk on fire") {
			t.Errorf("the log does not hold the store's error:\n%s", log)
		}
	})
	t.Run("outcome unknown", func(t *testing.T) {
		e := newEnvOn(t, lostAnswerStore{configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), format.Validator{})})
		resp := e.do(req{method: "PUT", path: "/v1/services/orders", token: e.admin})
		checkUserMessage(t, resp, http.StatusServiceUnavailable, "whether it was applied could not be learnt", "before writing again")
	})
}

// lostAnswerStore is a store whose Create loses the store's answer.
type lostAnswerStore struct{ configsvc.Store }

func (lostAnswerStore) Create(context.Context, configsvc.Ref) error {
	return fmt.Errorf("zkstore: create service/orders: connection closed: %w", configsvc.ErrOutcomeUnknown)
}

// downStore is a store whose List fails as an unreachable store does.
type downStore struct{ configsvc.Store }

func (downStore) List(context.Context, configsvc.Kind) ([]string, error) {
	return nil, fmt.Errorf("boltstore: list services: disk on fire: %w", configsvc.ErrUnavailable)
}
