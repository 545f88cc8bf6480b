package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
)

func TestPublishReadHistoryDiffRollback(t *testing.T) {
	e := newEnv(t)
	adm := e.admin
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders", token: adm})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders", token: adm}) // idempotent

	put := e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/db.json", token: adm,
		body: `{"pool": 5}`, contentType: "application/json", header: map[string]string{"X-Sluice-Message": "first"}})
	if got := put.header.Get("ETag"); got != `"1"` {
		t.Fatalf("ETag after first publish = %q, want \"1\"", got)
	}

	get := e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/files/db.json", token: adm})
	if string(get.body) != `{"pool": 5}` || get.header.Get("ETag") != `"1"` || get.header.Get("X-Sluice-Revision") != "1" {
		t.Fatalf("GET file = %q ETag %q", get.body, get.header.Get("ETag"))
	}

	t.Run("stale If-Match is 412", func(t *testing.T) {
		e := e.withT(t)
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/db.json", token: adm,
			body: `{"pool": 6}`, header: map[string]string{"If-Match": `"1"`}})
		r := e.must(http.StatusPreconditionFailed, req{method: "PUT", path: "/v1/services/orders/files/db.json", token: adm,
			body: `{"pool": 7}`, header: map[string]string{"If-Match": `"1"`}})
		if r.errCode(t) != api.CodePrecondition {
			t.Fatalf("code %s", r.errCode(t))
		}
		r = e.must(http.StatusPreconditionFailed, req{method: "POST", path: "/v1/services/orders/revisions", token: adm,
			header: map[string]string{"If-Match": `"1"`},
			body:   map[string]any{"changes": []map[string]any{{"file": "x.txt", "content": "x"}}}})
		if r.errCode(t) != api.CodePrecondition {
			t.Fatalf("code %s", r.errCode(t))
		}
	})

	t.Run("bad JSON is 422 with line and column", func(t *testing.T) {
		e := e.withT(t)
		r := e.must(http.StatusUnprocessableEntity, req{method: "PUT", path: "/v1/services/orders/files/db.json", token: adm,
			body: "{\n  \"pool\": ,\n}"})
		var b api.ErrorBody
		r.json(t, &b)
		if b.Error.Code != api.CodeInvalid || b.Error.Details["file"] != "db.json" || b.Error.Details["line"] != float64(2) || b.Error.Details["column"] == float64(0) {
			t.Fatalf("error = %+v", b.Error)
		}
	})

	t.Run("conflicting base revision is 409", func(t *testing.T) {
		e := e.withT(t)
		r := e.must(http.StatusConflict, req{method: "POST", path: "/v1/services/orders/revisions", token: adm,
			body: map[string]any{"base_revision": 1, "changes": []map[string]any{{"file": "x.txt", "content": "x"}}}})
		if r.errCode(t) != api.CodeConflict {
			t.Fatal(r.errCode(t))
		}
	})

	// Multi-file publish: revision 3.
	var rev api.Revision
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/services/orders/revisions", token: adm,
		body: map[string]any{"base_revision": 2, "message": "two files", "changes": []map[string]any{
			{"file": "db.json", "content": `{"pool": 9}`},
			{"file": "app.yaml", "content": "name: orders\n"},
		}}}).json(t, &rev)
	if rev.Revision != 3 || len(rev.Changes) != 2 || rev.Message != "two files" || rev.Author == "" {
		t.Fatalf("publish = %+v", rev)
	}

	var hist struct{ Revisions []api.Revision }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/revisions?limit=2", token: adm}).json(t, &hist)
	if len(hist.Revisions) != 2 || hist.Revisions[0].Revision != 3 || hist.Revisions[1].Revision != 2 {
		t.Fatalf("history = %+v", hist)
	}
	var r1 api.Revision
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/revisions/1", token: adm}).json(t, &r1)
	if len(r1.Changes) != 1 || r1.Changes[0].Content == nil || *r1.Changes[0].Content != `{"pool": 5}` || r1.Message != "first" {
		t.Fatalf("revision 1 = %+v", r1)
	}

	var d struct {
		From, To int64
		Files    []api.FileDiff
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/diff?from=1&to=3", token: adm}).json(t, &d)
	if d.From != 1 || d.To != 3 || len(d.Files) != 2 {
		t.Fatalf("diff = %+v", d)
	}
	if d.Files[0].File != "app.yaml" || d.Files[0].Status != "added" || d.Files[1].Status != "modified" ||
		!strings.Contains(d.Files[1].Diff, `-{"pool": 5}`) || !strings.Contains(d.Files[1].Diff, `+{"pool": 9}`) {
		t.Fatalf("diff files = %+v", d.Files)
	}

	// Rollback to 1: content equals revision 1 (db.json back, app.yaml gone).
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/services/orders/rollback", token: adm,
		body: map[string]any{"to_revision": 1}}).json(t, &rev)
	if rev.Revision != 4 || rev.RollbackOf != 1 {
		t.Fatalf("rollback = %+v", rev)
	}
	var snap api.Snapshot
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/snapshot", token: adm}).json(t, &snap)
	if snap.Revision != 4 || len(snap.Files) != 1 || snap.Files["db.json"] != `{"pool": 5}` {
		t.Fatalf("snapshot after rollback = %+v", snap)
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/snapshot?revision=3", token: adm}).json(t, &snap)
	if snap.Revision != 3 || snap.Files["app.yaml"] != "name: orders\n" {
		t.Fatalf("snapshot at 3 = %+v", snap)
	}

	// Delete a file, then the head shows no files.
	e.must(http.StatusOK, req{method: "DELETE", path: "/v1/services/orders/files/db.json", token: adm})
	var h api.Head
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders", token: adm}).json(t, &h)
	if h.Revision != 5 || len(h.Files) != 0 {
		t.Fatalf("head = %+v", h)
	}
	e.must(http.StatusNotFound, req{method: "GET", path: "/v1/services/orders/files/db.json", token: adm})
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/files/db.json?revision=4", token: adm})
}

func TestSharedGroupsAndLinks(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "a"})
	e.mustGroup("redis-common", map[string]string{"redis.yaml": "addr: x\n"})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/redis-common", token: e.admin})

	var users struct{ Services []string }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/shared/redis-common/users", token: e.admin}).json(t, &users)
	if len(users.Services) != 1 || users.Services[0] != "orders" {
		t.Fatalf("users = %+v", users)
	}
	var snap api.Snapshot
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/snapshot", token: e.admin}).json(t, &snap)
	if len(snap.Links) != 1 || snap.Links[0] != "redis-common" {
		t.Fatalf("links = %v", snap.Links)
	}
	// An agent of orders reads the linked group, not an unlinked one.
	agent := e.mustToken("agent:orders")
	e.must(http.StatusOK, req{method: "GET", path: "/v1/shared/redis-common/files/redis.yaml", token: agent})
	e.mustGroup("other", nil)
	e.must(http.StatusForbidden, req{method: "GET", path: "/v1/shared/other", token: agent})
	// A group in use cannot be deleted.
	e.must(http.StatusConflict, req{method: "DELETE", path: "/v1/shared/redis-common", token: e.admin})
	e.must(http.StatusOK, req{method: "DELETE", path: "/v1/services/orders/links/redis-common", token: e.admin})
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/shared/redis-common", token: e.admin})

	var list struct{ Groups []string }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/shared", token: e.admin}).json(t, &list)
	if len(list.Groups) != 1 || list.Groups[0] != "other" {
		t.Fatalf("groups = %v", list.Groups)
	}
}

// sseEvent is one server-sent event, or a comment (name "comment").
type sseEvent struct{ id, name, data string }

// readEvents decodes an SSE body with api.Decoder into a channel until it
// ends.
func readEvents(body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		dec := api.NewDecoder(body)
		for {
			ev, err := dec.Next()
			if err != nil {
				return
			}
			if ev.Comment {
				ev.Name = "comment"
			}
			ch <- sseEvent{id: ev.ID, name: ev.Name, data: string(ev.Data)}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent, name string) sseEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended before a %q event", name)
			}
			if ev.name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %q event within 5s", name)
		}
	}
}

func openStream(t *testing.T, e *testEnv, path, token string, hdr map[string]string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hr, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+path, nil)
	hr.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		hr.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(hr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return readEvents(resp.Body), resp
}

func TestWatchStreamsRevisions(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "one"})
	viewer := e.mustToken("viewer:orders")

	t.Run("new revision and heartbeat", func(t *testing.T) {
		e := e.withT(t)
		events, _ := openStream(t, e, "/v1/services/orders/watch", viewer, nil)
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "two"})
		ev := nextEvent(t, events, "revision")
		if ev.id != "2" || !strings.Contains(ev.data, `"content":"two"`) {
			t.Fatalf("event = %+v", ev)
		}
		if c := nextEvent(t, events, "comment"); c.data != "ping" {
			t.Fatalf("heartbeat = %+v", c)
		}
	})
	t.Run("since replays", func(t *testing.T) {
		e := e.withT(t)
		events, _ := openStream(t, e, "/v1/services/orders/watch?since=0", viewer, nil)
		if ev := nextEvent(t, events, "revision"); ev.id != "1" {
			t.Fatalf("first replayed = %+v", ev)
		}
		if ev := nextEvent(t, events, "revision"); ev.id != "2" {
			t.Fatalf("second replayed = %+v", ev)
		}
	})
	t.Run("Last-Event-ID resumes", func(t *testing.T) {
		e := e.withT(t)
		events, _ := openStream(t, e, "/v1/services/orders/watch", viewer, map[string]string{"Last-Event-ID": "1"})
		if ev := nextEvent(t, events, "revision"); ev.id != "2" {
			t.Fatalf("resumed = %+v", ev)
		}
	})
	t.Run("Last-Event-ID wins over since", func(t *testing.T) {
		// What an EventSource opened on ?since=0 sends when it reconnects
		// after receiving revision 1.
		e := e.withT(t)
		events, _ := openStream(t, e, "/v1/services/orders/watch?since=0", viewer, map[string]string{"Last-Event-ID": "1"})
		if ev := nextEvent(t, events, "revision"); ev.id != "2" {
			t.Fatalf("resumed at %+v, want revision 2 (not a replay of 1)", ev)
		}
	})
	// A client that holds a revision past this store's head (read after a
	// sync) is told to wait or move on, never given the store's past: the
	// SDK once reloaded and applied an older snapshot after a 400 here.
	t.Run("a Last-Event-ID after the head is answered 503 behind", func(t *testing.T) {
		e := e.withT(t)
		r := e.must(http.StatusServiceUnavailable, req{method: "GET", path: "/v1/services/orders/watch?since=0", token: viewer,
			header: map[string]string{"Last-Event-ID": "99"}})
		var body api.ErrorBody
		r.json(t, &body)
		if body.Error.Code != api.CodeBehind || !strings.Contains(body.Error.Message, "Last-Event-ID 99") || r.header.Get("Retry-After") == "" {
			t.Fatalf("error %+v with Retry-After %q, want code behind naming Last-Event-ID 99, and a Retry-After", body.Error, r.header.Get("Retry-After"))
		}
	})
	t.Run("a since of another generation ends with rewritten", func(t *testing.T) {
		e := e.withT(t)
		events, _ := openStream(t, e, "/v1/services/orders/watch?since=99&generation=0123456789abcdef", viewer, nil)
		ev := nextEvent(t, events, api.EventError)
		if !strings.Contains(ev.data, `"code":"rewritten"`) {
			t.Fatalf("event = %+v, want a stream-error with code rewritten", ev)
		}
	})
	t.Run("a since whose publish id differs ends with rewritten", func(t *testing.T) {
		e := e.withT(t)
		var h api.Head
		e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders", token: viewer}).json(t, &h)
		if h.Generation == "" || h.PublishID == "" {
			t.Fatalf("head %+v carries no identity", h)
		}
		path := fmt.Sprintf("/v1/services/orders/watch?since=%d&generation=%s&publish_id=%s", h.Revision, h.Generation, "00ff")
		events, _ := openStream(t, e, path, viewer, nil)
		if ev := nextEvent(t, events, api.EventError); !strings.Contains(ev.data, `"code":"rewritten"`) {
			t.Fatalf("event = %+v, want a stream-error with code rewritten", ev)
		}
		// Before the head, the check is the next revision's parent.
		path = fmt.Sprintf("/v1/services/orders/watch?since=%d&generation=%s&publish_id=%s", h.Revision-1, h.Generation, "00ff")
		events, _ = openStream(t, e, path, viewer, nil)
		if ev := nextEvent(t, events, api.EventError); !strings.Contains(ev.data, `"code":"rewritten"`) {
			t.Fatalf("event = %+v, want a stream-error with code rewritten (revision %d's parent is not 00ff)", ev, h.Revision)
		}
		// With the head's own identity the stream carries on.
		path = fmt.Sprintf("/v1/services/orders/watch?since=%d&generation=%s&publish_id=%s", h.Revision, h.Generation, h.PublishID)
		events, _ = openStream(t, e, path, viewer, nil)
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: "next"})
		if ev := nextEvent(t, events, "revision"); ev.id != fmt.Sprint(h.Revision+1) || !strings.Contains(ev.data, `"parent":"`+h.PublishID+`"`) {
			t.Fatalf("event = %+v, want revision %d naming parent %s", ev, h.Revision+1, h.PublishID)
		}
	})
	t.Run("links event", func(t *testing.T) {
		e := e.withT(t)
		e.mustGroup("g1", nil)
		events, _ := openStream(t, e, "/v1/services/orders/watch", viewer, nil)
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/g1", token: e.admin})
		if ev := nextEvent(t, events, "links"); !strings.Contains(ev.data, "g1") {
			t.Fatalf("links = %+v", ev)
		}
	})
	t.Run("ends when the server closes", func(t *testing.T) {
		e := e.withT(t)
		events, _ := openStream(t, e, "/v1/services/orders/watch", viewer, nil)
		nextEvent(t, events, "comment")
		_ = e.srv.Close()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-events:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("stream still open 5s after Close")
			}
		}
	})
	e.must(http.StatusNotFound, req{method: "GET", path: "/v1/services/nope/watch", token: e.admin})
	e.must(http.StatusServiceUnavailable, req{method: "GET", path: "/v1/services/orders/watch?since=99", token: e.admin})
	e.must(http.StatusBadRequest, req{method: "GET", path: "/v1/services/orders/watch?since=x", token: e.admin})
	e.must(http.StatusBadRequest, req{method: "GET", path: "/v1/services/orders/watch?since=1&generation=XYZ", token: e.admin})
}

func TestInstancesThroughServer(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.InstanceTTL = 30 * time.Second })
	e.mustService("orders", nil)
	agent := e.mustToken("agent:orders")
	body := map[string]any{"addr": "127.0.0.1:9000", "revision": 1, "status": "applied", "labels": map[string]string{"zone": "a"}}

	events, _ := openStream(t, e, "/v1/services/orders/instances/watch", agent, nil)
	if ev := nextEvent(t, events, "instances"); ev.data != `{"instances":[]}` {
		t.Fatalf("first list = %s", ev.data)
	}
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: agent, body: body})
	if ev := nextEvent(t, events, "instances"); !strings.Contains(ev.data, `"id":"orders-1"`) {
		t.Fatalf("list after register = %s", ev.data)
	}
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: agent, body: body})
	var list struct{ Instances []configsvc.Instance }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/instances", token: agent}).json(t, &list)
	if len(list.Instances) != 1 || list.Instances[0].Addr != "127.0.0.1:9000" || list.Instances[0].Status != configsvc.StatusApplied {
		t.Fatalf("instances = %+v", list)
	}
	e.must(http.StatusBadRequest, req{method: "PUT", path: "/v1/services/orders/instances/orders-2", token: agent,
		body: map[string]any{"id": "other", "addr": "x"}})

	// Not refreshed for longer than the TTL: the lease is dropped.
	e.clock.Advance(31 * time.Second)
	e.srv.sweepLeases()
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/instances", token: agent}).json(t, &list)
	if len(list.Instances) != 0 {
		t.Fatalf("instances after expiry = %+v", list)
	}
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: agent, body: body})
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/services/orders/instances/orders-1", token: agent})
	e.must(http.StatusNotFound, req{method: "DELETE", path: "/v1/services/orders/instances/orders-1", token: agent})

	// Registrations, refusals and deregistrations are audited; the refresh
	// (the second PUT, 200) is routine and is not.
	var audit struct{ Entries []access.Entry }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/audit?service=orders&limit=20", token: e.admin}).json(t, &audit)
	var got []string
	for _, en := range audit.Entries {
		if strings.HasPrefix(en.Action, "instance.") {
			got = append(got, fmt.Sprintf("%s %d", en.Action, en.Status))
		}
	}
	want := []string{"instance.deregister 404", "instance.deregister 204", "instance.register 201", "instance.register 400", "instance.register 201"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("instance audit =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestInstanceTimesInUTC: a client that sends its local time as started
// gets it back, and finds it listed, in UTC (RFC 3339 with Z).
func TestInstanceTimesInUTC(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	agent := e.mustToken("agent:orders")
	const local = "2026-03-04T10:30:00+05:30"
	body := map[string]any{"addr": "127.0.0.1:9000", "started": local}
	resp := e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: agent, body: body})
	var got map[string]any
	resp.json(t, &got)
	if got["started"] != "2026-03-04T05:00:00Z" || !strings.HasSuffix(fmt.Sprint(got["updated"]), "Z") {
		t.Fatalf("PUT answered started %v, updated %v; want 2026-03-04T05:00:00Z and a UTC time", got["started"], got["updated"])
	}
	listed := e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/instances", token: agent})
	if !strings.Contains(string(listed.body), `"started":"2026-03-04T05:00:00Z"`) || strings.Contains(string(listed.body), "+05:30") {
		t.Fatalf("instances = %s, want started in UTC", listed.body)
	}
}

func TestTokensWhoamiAudit(t *testing.T) {
	e := newEnv(t)
	var tok api.Token
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: e.admin,
		body: map[string]any{"name": "ci", "roles": []map[string]string{{"role": "editor", "pattern": "team-a-*"}}}}).json(t, &tok)
	if !strings.HasPrefix(tok.Secret, access.TokenPrefix) || tok.ID == "" {
		t.Fatalf("created = %+v", tok)
	}
	var who map[string]any
	e.must(http.StatusOK, req{method: "GET", path: "/v1/whoami", token: tok.Secret}).json(t, &who)
	if who["name"] != "ci" || who["admin"] != false {
		t.Fatalf("whoami = %v", who)
	}
	list := e.must(http.StatusOK, req{method: "GET", path: "/v1/tokens", token: e.admin})
	if strings.Contains(string(list.body), tok.Secret) || strings.Contains(string(list.body), access.HashToken(tok.Secret)) {
		t.Fatal("token list echoes a token or its hash")
	}
	// The audit merges its log with the sampled refusals by time: let the
	// clock move between the requests.
	e.must(http.StatusForbidden, req{method: "GET", path: "/v1/tokens", token: tok.Secret})
	e.clock.Advance(time.Second)
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/team-a-x", token: tok.Secret})
	e.clock.Advance(time.Second)
	e.must(http.StatusForbidden, req{method: "PUT", path: "/v1/services/team-b-x", token: tok.Secret})
	e.clock.Advance(time.Second)
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/tokens/" + tok.ID, token: e.admin})
	e.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/whoami", token: tok.Secret})

	var audit struct{ Entries []access.Entry }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/audit?limit=10", token: e.admin}).json(t, &audit)
	if len(audit.Entries) != 4 {
		t.Fatalf("audit has %d entries, want 4: %+v", len(audit.Entries), audit.Entries)
	}
	got := []string{}
	for _, en := range audit.Entries {
		got = append(got, en.Action+" "+en.Target+" "+en.Outcome)
		if en.RequestID == "" || en.Client != "127.0.0.1" || en.Time.IsZero() {
			t.Errorf("entry lacks request id, client or time: %+v", en)
		}
	}
	want := []string{"token.revoke token/" + tok.ID + " allowed", "create service/team-b-x refused", "create service/team-a-x allowed", "token.create token/" + tok.ID + " allowed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	e.must(http.StatusOK, req{method: "GET", path: "/v1/audit?service=team-b-x", token: e.admin}).json(t, &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].Status != http.StatusForbidden || !audit.Entries[0].Sampled || audit.Entries[0].Count != 1 {
		t.Fatalf("audit by service = %+v, want the refusal, sampled with count 1", audit.Entries)
	}
	if strings.Contains(e.logText(), tok.Secret) || strings.Contains(e.logText(), e.admin) {
		t.Fatal("the log contains a token")
	}
}

func TestPins(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	e.mustService("payments", nil)
	ed := e.mustToken("editor:orders")
	body := map[string]any{"targets": map[string]string{"orders": "orders-7", "payments": "payments-2"}, "ttl": "1h", "note": "debug"}
	e.must(http.StatusForbidden, req{method: "POST", path: "/v1/pins", token: ed, body: body})
	ed2 := e.mustToken("editor:orders", "editor:payments")
	var pin api.Pin
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: ed2, body: body}).json(t, &pin)
	if !strings.HasPrefix(pin.Secret, access.PinTokenPrefix) || pin.State != "active" || pin.Expires.Sub(pin.Created) != time.Hour {
		t.Fatalf("pin = %+v", pin)
	}
	data, err := e.store.Records().Get(context.Background(), access.PinsCollection, access.HashToken(pin.Secret))
	if err != nil || strings.Contains(string(data), pin.Secret) {
		t.Fatalf("stored pin: %s, %v", data, err)
	}
	for name, b := range map[string]map[string]any{
		"ttl too long": {"targets": map[string]string{"orders": "o-1"}, "ttl": "25h"},
		"bad ttl":      {"targets": map[string]string{"orders": "o-1"}, "ttl": "soon"},
		"no targets":   {"targets": map[string]string{}},
		"bad instance": {"targets": map[string]string{"orders": "../x"}},
	} {
		t.Run(name, func(t *testing.T) {
			e := e.withT(t)
			e.must(http.StatusBadRequest, req{method: "POST", path: "/v1/pins", token: ed2, body: b})
		})
	}
	var list struct{ Pins []api.Pin }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/pins", token: ed}).json(t, &list)
	if len(list.Pins) != 1 || list.Pins[0].Secret != "" {
		t.Fatalf("pins = %+v", list)
	}
	e.must(http.StatusForbidden, req{method: "DELETE", path: "/v1/pins/" + pin.ID, token: ed})
	e.must(http.StatusOK, req{method: "DELETE", path: "/v1/pins/" + pin.ID, token: ed2})
	e.must(http.StatusOK, req{method: "GET", path: "/v1/pins", token: ed}).json(t, &list)
	if list.Pins[0].State != "revoked" || !list.Pins[0].Revoked {
		t.Fatalf("after revoke = %+v", list.Pins[0])
	}
}

func TestConsoleSession(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	ed := e.mustToken("editor:orders")
	resp := e.must(http.StatusOK, req{method: "POST", path: "/v1/session", body: map[string]string{"token": ed}})
	var session, csrf *http.Cookie
	for _, c := range (&http.Response{Header: resp.header}).Cookies() {
		switch c.Name {
		case SessionCookie:
			session = c
		case CSRFCookie:
			csrf = c
		}
	}
	if session == nil || csrf == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || csrf.HttpOnly {
		t.Fatalf("cookies: session %+v csrf %+v", session, csrf)
	}
	if strings.Contains(string(resp.body), ed) {
		t.Fatal("session answer echoes the token")
	}
	cookies := SessionCookie + "=" + session.Value + "; " + CSRFCookie + "=" + csrf.Value
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   any
		want   int
	}{
		{"read with cookie", "GET", "/v1/whoami", map[string]string{"Cookie": cookies}, nil, 200},
		{"write without CSRF header", "PUT", "/v1/services/orders/files/a.txt", map[string]string{"Cookie": cookies}, "x", 403},
		{"write with wrong CSRF header", "PUT", "/v1/services/orders/files/a.txt", map[string]string{"Cookie": cookies, CSRFHeader: "slx_" + strings.Repeat("A", 43)}, "x", 403},
		{"write with CSRF header", "PUT", "/v1/services/orders/files/a.txt", map[string]string{"Cookie": cookies, CSRFHeader: csrf.Value}, "x", 200},
		{"spoofed header grants nothing", "GET", "/v1/whoami", map[string]string{"User-Agent": "Nacos-Server", "X-Sluice-User": "admin"}, nil, 401},
		{"bad session cookie", "GET", "/v1/whoami", map[string]string{"Cookie": SessionCookie + "=sls_" + strings.Repeat("A", 43)}, nil, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.withT(t)
			e.must(tc.want, req{method: tc.method, path: tc.path, header: tc.hdr, body: tc.body})
		})
	}
	e.must(http.StatusUnauthorized, req{method: "POST", path: "/v1/session", body: map[string]string{"token": "slc_wrong"}})
	e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/session", header: map[string]string{"Cookie": cookies, CSRFHeader: csrf.Value}})
	e.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/whoami", header: map[string]string{"Cookie": cookies}})
}

// TestStoreValidationIs422: content the store's validators refuse (a
// schema check behind the format check, as the sluice command wires for
// routes.yaml) is answered 422 with the validator's details; content that
// does not parse never reaches the schema check.
func TestStoreValidationIs422(t *testing.T) {
	var seen []string
	schema := configsvc.EachFile(func(ref configsvc.Ref, file string, content []byte) error {
		seen = append(seen, ref.String()+"/"+file)
		if ref.Name == configsvc.SystemService && file == configsvc.RoutesFile && strings.Contains(string(content), "bogus") {
			return &configsvc.ParseError{File: file, Format: configsvc.FormatYAML, Line: 3, Column: 5, Msg: "unknown balancer \"bogus\""}
		}
		if strings.Contains(string(content), "random") {
			return &configsvc.FieldError{Field: "routes[0].upstream.balancer", Value: "random", Msg: "must be round_robin, least_requests or weighted"}
		}
		return nil
	})
	e := newEnvOn(t, configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), configsvc.Validators(format.Validator{}, schema)))
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/sluice-system", token: e.admin})
	r := e.must(http.StatusUnprocessableEntity, req{method: "PUT", path: "/v1/services/sluice-system/files/routes.yaml", token: e.admin, body: "routes:\n  - match: {}\n    balancer: bogus\n"})
	var b api.ErrorBody
	r.json(t, &b)
	if b.Error.Details["line"] != float64(3) || !strings.Contains(b.Error.Message, "bogus") {
		t.Fatalf("error = %+v", b.Error)
	}
	// A schema error (a FieldError, not a ParseError) is a 422 naming the field.
	r = e.must(http.StatusUnprocessableEntity, req{method: "PUT", path: "/v1/services/sluice-system/files/routes.yaml", token: e.admin, body: "routes:\n  - balancer: random\n"})
	r.json(t, &b)
	if b.Error.Details["field"] != "routes[0].upstream.balancer" {
		t.Fatalf("schema error = %+v", b.Error)
	}
	// Content that does not even parse is refused before the schema check runs.
	e.must(http.StatusUnprocessableEntity, req{method: "PUT", path: "/v1/services/sluice-system/files/routes.yaml", token: e.admin, body: "routes: [\n"})
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/sluice-system/files/routes.yaml", token: e.admin, body: "routes: []\n"})
	if len(seen) != 3 {
		t.Fatalf("schema check saw %v; want the three well-formed publishes", seen)
	}
	// Editors, even with a "*" grant, cannot edit the reserved service.
	ed := e.mustToken("editor:*")
	e.must(http.StatusForbidden, req{method: "PUT", path: "/v1/services/sluice-system/files/routes.yaml", token: ed, body: "routes: []\n"})
	e.must(http.StatusOK, req{method: "GET", path: "/v1/services/sluice-system/files/routes.yaml", token: ed})
}

func TestSweepRecords(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", nil)
	var old, fresh api.Pin
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin, body: map[string]any{"targets": map[string]string{"orders": "o-1"}, "ttl": "1h"}}).json(t, &old)
	e.must(http.StatusOK, req{method: "POST", path: "/v1/session", body: map[string]string{"token": e.admin}})
	e.clock.Advance(24 * time.Hour)
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin, body: map[string]any{"targets": map[string]string{"orders": "o-1"}, "ttl": "1h"}}).json(t, &fresh)
	e.clock.Advance(2 * time.Hour) // old expired 25h ago, fresh 1h ago
	if err := e.srv.sweepRecords(context.Background()); err != nil {
		t.Fatal(err)
	}
	var list struct{ Pins []api.Pin }
	e.must(http.StatusOK, req{method: "GET", path: "/v1/pins", token: e.admin}).json(t, &list)
	if len(list.Pins) != 1 || list.Pins[0].ID != fresh.ID || list.Pins[0].State != "expired" {
		t.Fatalf("pins after sweep = %+v; want only the recently expired one", list.Pins)
	}
	sessions, err := e.store.Records().List(context.Background(), access.SessionsCollection)
	if err != nil || len(sessions) != 0 {
		t.Fatalf("sessions after sweep: %d, %v", len(sessions), err)
	}
}

func TestWatchErrorsEndTheStream(t *testing.T) {
	e := newEnvOn(t, bolttest.MustOpen(t, boltstore.Options{Retention: 2}))
	e.mustService("orders", map[string]string{"a.txt": "1"})
	for _, v := range []string{"2", "3", "4"} {
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: e.admin, body: v})
	}
	drain := func(t *testing.T, events <-chan sseEvent) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-events:
				if !ok {
					return
				}
			case <-timeout:
				t.Fatal("stream still open 5s after its final error")
			}
		}
	}
	t.Run("compacted", func(t *testing.T) {
		events, _ := openStream(t, e, "/v1/services/orders/watch?since=0", e.admin, nil)
		// Literally "stream-error", never "error": an EventSource fires
		// "error" for its own connection failures.
		if ev := nextEvent(t, events, "stream-error"); !strings.Contains(ev.data, `"code":"compacted"`) {
			t.Fatalf("error event = %+v", ev)
		}
		drain(t, events)
	})
	t.Run("deleted", func(t *testing.T) {
		events, _ := openStream(t, e, "/v1/services/orders/watch", e.admin, nil)
		nextEvent(t, events, "comment")
		e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/services/orders", token: e.admin})
		if ev := nextEvent(t, events, api.EventError); !strings.Contains(ev.data, `"code":"not_found"`) {
			t.Fatalf("error event = %+v", ev)
		}
		drain(t, events)
	})
}
