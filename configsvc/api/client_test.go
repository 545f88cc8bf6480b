package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc/testkit"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/httpapi"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

// env is a real admin server (httpapi on bbolt in a temp dir) on loopback
// and a Client of it with the bootstrap admin token.
type env struct {
	store configsvc.Store
	srv   *httpapi.Server
	url   string
	admin string
	c     *api.Client
}

func newEnv(t *testing.T, opts boltstore.Options) *env {
	t.Helper()
	st := bolttest.MustOpen(t, opts)
	srv, err := httpapi.New(httpapi.Config{Store: st, RequestTimeout: 5 * time.Second, Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	admin, err := srv.Bootstrap(context.Background())
	if err != nil || admin == "" {
		t.Fatalf("bootstrap: %q, %v", admin, err)
	}
	e := &env{store: st, srv: srv, url: ts.URL, admin: admin}
	e.c = e.client(t, admin)
	return e
}

// client returns a Client of the server with token, closed at cleanup.
func (e *env) client(t *testing.T, token string) *api.Client {
	t.Helper()
	return mustClient(t, api.Config{Servers: []string{e.url}, Token: token})
}

func mustClient(t *testing.T, cfg api.Config) *api.Client {
	t.Helper()
	c, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustIs fails t unless err matches every target.
func mustIs(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("%s: err = %v, want it to match %q", what, err, target)
		}
	}
}

func TestFilesRevisionsDiffRollback(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx, c, orders := ctxT(t), e.c, configsvc.Service("orders")

	h, created, err := c.Create(ctx, orders)
	if err != nil || !created || h.Ref != orders || h.Revision != 0 {
		t.Fatalf("Create = %+v, %v, %v", h, created, err)
	}
	if _, created, err = c.Create(ctx, orders); err != nil || created {
		t.Fatalf("second Create: created %v, %v; want an idempotent success", created, err)
	}
	rev, err := c.PutFile(ctx, orders, "db.json", []byte(`{"pool": 5}`), api.WithMessage("first"))
	if err != nil || rev.Number != 1 || rev.Message != "first" || rev.Author == "" || len(rev.Changes) != 1 || rev.Changes[0].Content != nil {
		t.Fatalf("PutFile = %+v, %v", rev, err)
	}
	f, err := c.File(ctx, orders, "db.json", 0)
	if err != nil || string(f.Content) != `{"pool": 5}` || f.Revision != 1 || f.FileRevision != 1 {
		t.Fatalf("File = %+v (%q), %v", f, f.Content, err)
	}

	_, err = c.PutFile(ctx, orders, "db.json", []byte(`{"pool": 6}`), api.IfMatch(0))
	mustIs(t, "stale If-Match", err, api.ErrPrecondition, configsvc.ErrConflict)
	_, err = c.PutFile(ctx, orders, "db.json", []byte("{\n  \"pool\": ,\n}"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || ae.Details["line"] != float64(2) || !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("bad JSON: %v", err)
	}

	base := int64(1)
	rev, err = c.Publish(ctx, orders, api.PublishRequest{BaseRevision: &base, Message: "two files", Changes: []api.Change{
		api.PutChange("db.json", []byte(`{"pool": 9}`)), api.PutChange("app.yaml", []byte("name: orders\n")),
	}})
	if err != nil || rev.Number != 2 || len(rev.Changes) != 2 {
		t.Fatalf("Publish = %+v, %v", rev, err)
	}
	_, err = c.Publish(ctx, orders, api.PublishRequest{BaseRevision: &base, Changes: []api.Change{api.DeleteChange("app.yaml")}})
	if mustIs(t, "stale base", err, configsvc.ErrConflict); errors.Is(err, api.ErrPrecondition) {
		t.Fatal("a stale base_revision is a 409, not a 412")
	}

	revs, err := c.Revisions(ctx, orders, 0, 1)
	if err != nil || len(revs) != 1 || revs[0].Number != 2 {
		t.Fatalf("Revisions(limit 1) = %+v, %v", revs, err)
	}
	if revs, err = c.Revisions(ctx, orders, 2, 0); err != nil || len(revs) != 1 || revs[0].Number != 1 {
		t.Fatalf("Revisions(before 2) = %+v, %v", revs, err)
	}
	r1, err := c.Revision(ctx, orders, 1)
	if err != nil || len(r1.Changes) != 1 || string(r1.Changes[0].Content) != `{"pool": 5}` || r1.Time.IsZero() {
		t.Fatalf("Revision(1) = %+v, %v", r1, err)
	}
	_, err = c.Revision(ctx, orders, 9)
	mustIs(t, "revision 9", err, configsvc.ErrNotFound)

	d, err := c.Diff(ctx, orders, -1, -1)
	if err != nil || d.From != 1 || d.To != 2 || len(d.Files) != 2 || d.Files[0].Status != api.DiffAdded || d.Files[1].Status != api.DiffModified ||
		!strings.Contains(d.Files[1].Diff, `+{"pool": 9}`) {
		t.Fatalf("Diff = %+v, %v", d, err)
	}
	if d, err = c.Diff(ctx, orders, 0, 1); err != nil || d.From != 0 || len(d.Files) != 1 {
		t.Fatalf("Diff(0, 1) = %+v, %v", d, err)
	}

	rev, err = c.Rollback(ctx, orders, api.RollbackRequest{ToRevision: 1, Message: "undo"}, api.IfMatch(2))
	if err != nil || rev.Number != 3 || rev.RollbackOf != 1 {
		t.Fatalf("Rollback = %+v, %v", rev, err)
	}
	snap, err := c.Snapshot(ctx, orders, 0)
	if err != nil || snap.Ref != orders || snap.Revision != 3 || len(snap.Files) != 1 || string(snap.Files["db.json"]) != `{"pool": 5}` {
		t.Fatalf("Snapshot(head) = %+v, %v", snap, err)
	}
	if snap, err = c.Snapshot(ctx, orders, 2); err != nil || snap.Revision != 2 || string(snap.Files["app.yaml"]) != "name: orders\n" {
		t.Fatalf("Snapshot(2) = %+v, %v", snap, err)
	}

	if rev, err = c.DeleteFile(ctx, orders, "db.json", api.WithMessage("gone")); err != nil || rev.Number != 4 || !rev.Changes[0].Delete {
		t.Fatalf("DeleteFile = %+v, %v", rev, err)
	}
	_, err = c.File(ctx, orders, "db.json", 0)
	mustIs(t, "deleted file", err, configsvc.ErrNotFound)
	if f, err = c.File(ctx, orders, "db.json", 3); err != nil || f.Revision != 3 || string(f.Content) != `{"pool": 5}` {
		t.Fatalf("File at 3 = %+v, %v", f, err)
	}
	if h, err = c.Head(ctx, orders); err != nil || h.Revision != 4 || len(h.Files) != 0 || h.Updated.IsZero() || h.Author == "" {
		t.Fatalf("Head = %+v, %v", h, err)
	}
	names, err := c.List(ctx, configsvc.KindService)
	if err != nil || fmt.Sprint(names) != "[orders]" {
		t.Fatalf("List = %v, %v", names, err)
	}
	if err := c.Delete(ctx, orders); err != nil {
		t.Fatal(err)
	}
	_, err = c.Head(ctx, orders)
	mustIs(t, "deleted service", err, configsvc.ErrNotFound)
}

func TestGroupsLinksUsers(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx, c := ctxT(t), e.c
	orders, common := configsvc.Service("orders"), configsvc.Group("redis-common")
	for _, ref := range []configsvc.Ref{orders, common} {
		if _, _, err := c.Create(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutFile(ctx, common, "redis.yaml", []byte("addr: x\n")); err != nil {
		t.Fatal(err)
	}
	links, err := c.Link(ctx, "orders", "redis-common")
	if err != nil || fmt.Sprint(links) != "[redis-common]" {
		t.Fatalf("Link = %v, %v", links, err)
	}
	users, err := c.Users(ctx, "redis-common")
	if err != nil || fmt.Sprint(users) != "[orders]" {
		t.Fatalf("Users = %v, %v", users, err)
	}
	if h, err := c.Head(ctx, orders); err != nil || fmt.Sprint(h.Links) != "[redis-common]" {
		t.Fatalf("Head links = %v, %v", h.Links, err)
	}
	mustIs(t, "deleting a group in use", c.Delete(ctx, common), configsvc.ErrConflict)
	if links, err = c.Unlink(ctx, "orders", "redis-common"); err != nil || len(links) != 0 {
		t.Fatalf("Unlink = %v, %v", links, err)
	}
	_, err = c.Unlink(ctx, "orders", "redis-common")
	mustIs(t, "second Unlink", err, configsvc.ErrNotFound)
	groups, err := c.List(ctx, configsvc.KindGroup)
	if err != nil || fmt.Sprint(groups) != "[redis-common]" {
		t.Fatalf("List groups = %v, %v", groups, err)
	}
	if f, err := c.File(ctx, common, "redis.yaml", 0); err != nil || string(f.Content) != "addr: x\n" {
		t.Fatalf("group File = %q, %v", f.Content, err)
	}
}

func TestInstancesAndLeases(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx, c := ctxT(t), e.c
	if _, _, err := c.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	lists := c.WatchInstances(wctx, "orders")
	next := func(what string, ok func([]configsvc.Instance) bool) {
		t.Helper()
		for {
			select {
			case ev := <-lists:
				if ev.Err == nil && ok(ev.Instances) {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no instance list with %s", what)
			}
		}
	}
	next("no instance", func(l []configsvc.Instance) bool { return len(l) == 0 })

	in := configsvc.Instance{Service: "orders", ID: "orders-1", Addr: "127.0.0.1:9001", Revision: 1, Status: configsvc.StatusApplied}
	got, err := c.PutInstance(ctx, in)
	if err != nil || got.ID != "orders-1" || got.Started.IsZero() {
		t.Fatalf("PutInstance = %+v, %v", got, err)
	}
	next("orders-1", func(l []configsvc.Instance) bool { return len(l) == 1 && l[0].ID == "orders-1" })
	list, err := c.Instances(ctx, "orders")
	if err != nil || len(list) != 1 || list[0].Addr != "127.0.0.1:9001" || list[0].Status != configsvc.StatusApplied {
		t.Fatalf("Instances = %+v, %v", list, err)
	}
	if err := c.DeleteInstance(ctx, "orders", "orders-1"); err != nil {
		t.Fatal(err)
	}
	mustIs(t, "second DeleteInstance", c.DeleteInstance(ctx, "orders", "orders-1"), configsvc.ErrNotFound)

	// A lease refreshes its instance every heartbeat and removes it on Close.
	lc := mustClient(t, api.Config{Servers: []string{e.url}, Token: e.admin, Heartbeat: 20 * time.Millisecond})
	lease, err := lc.Register(ctx, configsvc.Instance{Service: "orders", ID: "orders-2", Addr: "127.0.0.1:9002", Status: configsvc.StatusStarting})
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Update(ctx, configsvc.Instance{Service: "orders", ID: "orders-2", Addr: "127.0.0.1:9002", Revision: 1, Status: configsvc.StatusApplied}); err != nil {
		t.Fatal(err)
	}
	next("orders-2 applied", func(l []configsvc.Instance) bool {
		return len(l) == 1 && l[0].ID == "orders-2" && l[0].Status == configsvc.StatusApplied
	})
	time.Sleep(100 * time.Millisecond) // a few heartbeats
	if list, err = c.Instances(ctx, "orders"); err != nil || len(list) != 1 || list[0].Revision != 1 {
		t.Fatalf("after heartbeats: %+v, %v", list, err)
	}
	if err := lease.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	next("none after Close", func(l []configsvc.Instance) bool { return len(l) == 0 })
	stop()
	for range lists {
	}
}

func TestTokensAuditPinsRoutes(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx, c := ctxT(t), e.c
	for _, svc := range []string{"orders", "payments"} {
		if _, _, err := c.Create(ctx, configsvc.Service(svc)); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := c.CreateToken(ctx, api.TokenRequest{Name: "ci", Roles: []api.Grant{{Role: access.RoleEditor, Pattern: "orders"}}})
	if err != nil || !strings.HasPrefix(tok.Secret, access.TokenPrefix) || tok.ID == "" || tok.Name != "ci" {
		t.Fatalf("CreateToken = %+v, %v", tok, err)
	}
	toks, err := c.Tokens(ctx)
	if err != nil || len(toks) != 2 {
		t.Fatalf("Tokens = %+v, %v", toks, err)
	}
	for _, tk := range toks {
		if tk.Secret != "" {
			t.Fatal("Tokens lists a secret")
		}
	}
	ci := e.client(t, tok.Secret)
	who, err := ci.Whoami(ctx)
	if err != nil || who.Name != "ci" || who.Admin || len(who.Roles) != 1 || who.Roles[0].String() != "editor:orders" {
		t.Fatalf("Whoami = %+v, %v", who, err)
	}
	_, _, err = ci.Create(ctx, configsvc.Service("billing"))
	mustIs(t, "create outside the grant", err, api.ErrForbidden)
	_, err = ci.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "o-1", "payments": "p-1"}})
	mustIs(t, "pin outside the grant", err, api.ErrForbidden)

	pin, err := c.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "o-1"}, TTL: "1h", Note: "bug 1"})
	if err != nil || !strings.HasPrefix(pin.Secret, access.PinTokenPrefix) || pin.State != api.PinActive || pin.Expires.Sub(pin.Created) != time.Hour {
		t.Fatalf("CreatePin = %+v, %v", pin, err)
	}
	_, err = c.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "o-1"}, TTL: "25h"})
	mustIs(t, "pin TTL over the limit", err, configsvc.ErrInvalid)
	if pins, err := ci.Pins(ctx); err != nil || len(pins) != 1 || pins[0].ID != pin.ID || pins[0].Secret != "" || pins[0].Note != "bug 1" {
		t.Fatalf("Pins = %+v, %v", pins, err)
	}
	if p, err := c.RevokePin(ctx, pin.ID); err != nil || p.State != api.PinRevoked || !p.Revoked {
		t.Fatalf("RevokePin = %+v, %v", p, err)
	}

	if err := c.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	_, err = ci.Whoami(ctx)
	mustIs(t, "revoked token", err, api.ErrUnauthorized)
	entries, err := c.Audit(ctx, access.Query{Service: "billing", Since: time.Now().Add(-time.Hour)})
	if err != nil || len(entries) != 1 || entries[0].Outcome != access.OutcomeRefused || entries[0].Status != http.StatusForbidden {
		t.Fatalf("Audit(service billing) = %+v, %v", entries, err)
	}
	if entries, err = c.Audit(ctx, access.Query{Limit: 2}); err != nil || len(entries) != 2 || entries[0].Action != "token.revoke" {
		t.Fatalf("Audit(limit 2) = %+v, %v", entries, err)
	}

	live, err := c.LiveRoutes(ctx)
	if err != nil || live.Revision != 0 || len(live.Proxies) != 0 || len(live.Stale) != 0 {
		t.Fatalf("LiveRoutes, none = %+v, %v", live, err)
	}
	state, _ := json.Marshal(configsvc.ProxyState{ID: "proxy-a", Addr: "127.0.0.1:7080", Updated: time.Now(), Revision: 1})
	if err := e.store.Records().Put(ctx, configsvc.ProxyStateCollection, "proxy-a", state); err != nil {
		t.Fatal(err)
	}
	if live, err = c.LiveRoutes(ctx); err != nil || len(live.Proxies) != 1 || live.Proxies[0].ID != "proxy-a" || live.Proxies[0].Routes == nil {
		t.Fatalf("LiveRoutes = %+v, %v", live, err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

// collect reads a watch until want events arrived (or 10 s passed).
func collect(t *testing.T, ch <-chan configsvc.Event, want int) []configsvc.Event {
	t.Helper()
	var out []configsvc.Event
	timeout := time.After(10 * time.Second)
	for len(out) < want {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d events: %+v", len(out), out)
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("%d of %d events in 10s: %+v", len(out), want, out)
		}
	}
	return out
}

// mustClose fails t unless ch is closed within 10 s (after draining it).
func mustClose[E any](t *testing.T, ch <-chan E) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("watch still open after 10s")
		}
	}
}

func TestWatchThroughServer(t *testing.T) {
	e := newEnv(t, boltstore.Options{Retention: 3})
	ctx, c, orders := ctxT(t), e.c, configsvc.Service("orders")
	if _, _, err := c.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, configsvc.Group("g1")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := c.PutFile(ctx, orders, "n.txt", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	wctx, stop := context.WithCancel(ctx)
	ch := c.Watch(wctx, orders, 0)
	evs := collect(t, ch, 3)
	for i, ev := range evs[:2] {
		if ev.Err != nil || ev.Revision == nil || ev.Revision.Number != int64(i+1) || string(ev.Revision.Changes[0].Content) != fmt.Sprint(i+1) {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	// The active grays (none) once the stream reached the head it opened at.
	if ev := evs[2]; !ev.GraysChanged || ev.Grays == nil || len(ev.Grays) != 0 {
		t.Fatalf("grays event after the head = %+v", ev)
	}
	if _, err := c.Link(ctx, "orders", "g1"); err != nil {
		t.Fatal(err)
	}
	if ev := collect(t, ch, 1)[0]; !ev.LinksChanged || fmt.Sprint(ev.Links) != "[g1]" {
		t.Fatalf("links event = %+v", ev)
	}
	if _, err := c.PutFile(ctx, orders, "n.txt", []byte("3")); err != nil {
		t.Fatal(err)
	}
	if ev := collect(t, ch, 1)[0]; ev.Revision == nil || ev.Revision.Number != 3 {
		t.Fatalf("new revision event = %+v", ev)
	}
	g, err := c.CreateGray(ctx, orders, api.GrayRequest{Changes: []api.Change{api.PutChange("n.txt", []byte("gray"))},
		Selector: api.Selector{Percent: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := collect(t, ch, 1)[0]; !ev.GraysChanged || len(ev.Grays) != 1 || ev.Grays[0].ID != g.ID ||
		fmt.Sprint(ev.Grays[0].Files) != "[n.txt]" || ev.Grays[0].Selector.Percent != 10 || ev.Grays[0].Version != 1 {
		t.Fatalf("grays event after CreateGray = %+v", ev)
	}
	stop()
	mustClose(t, ch)

	// Revisions pruned by retention: compacted ends the watch.
	for i := 4; i <= 6; i++ {
		if _, err := c.PutFile(ctx, orders, "n.txt", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ch = c.Watch(ctx, orders, 0)
	ev := collect(t, ch, 1)[0]
	var ae *api.Error
	if !errors.As(ev.Err, &ae) || ae.Status != 0 || !errors.Is(ev.Err, configsvc.ErrCompacted) {
		t.Fatalf("watch from a pruned revision: %+v", ev)
	}
	mustClose(t, ch)

	// A missing service: the answer ends the watch.
	ch = c.Watch(ctx, configsvc.Service("nope"), 0)
	if ev := collect(t, ch, 1)[0]; !errors.As(ev.Err, &ae) || ae.Status != http.StatusNotFound {
		t.Fatalf("watch of a missing service: %+v", ev)
	}
	mustClose(t, ch)
}

// fakeStream is an SSE server whose handler is a script per connection;
// it records each request and answers 500 after the last script.
type fakeStream struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	scripts []func(w http.ResponseWriter, r *http.Request)
	reqs    []*http.Request
}

func newFakeStream(t *testing.T, scripts ...func(w http.ResponseWriter, r *http.Request)) *fakeStream {
	f := &fakeStream{t: t, scripts: scripts}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		f.mu.Unlock()
		if n >= len(f.scripts) {
			http.Error(w, "no more", http.StatusInternalServerError)
			return
		}
		f.scripts[n](w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeStream) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}

// sse writes a stream prefix and flushes.
func sse(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, s)
	w.(http.Flusher).Flush()
}

func revEvent(n int64) string {
	b, _ := json.Marshal(api.Revision{Revision: n, Author: "a", Time: time.Unix(n, 0).UTC(), Changes: []api.Change{api.PutChange("n.txt", []byte(fmt.Sprint(n)))}})
	return fmt.Sprintf("id: %d\nevent: revision\ndata: %s\n\n", n, b)
}

func TestWatchResumesAfterABreak(t *testing.T) {
	f := newFakeStream(t,
		func(w http.ResponseWriter, r *http.Request) {
			sse(w, ": ok\n\n"+revEvent(1)+revEvent(2)) // then the stream breaks
		},
		func(w http.ResponseWriter, r *http.Request) {
			sse(w, ": ok\n\n"+revEvent(2)+revEvent(3)+
				"event: "+api.EventError+"\ndata: {\"error\":{\"code\":\"unavailable\",\"message\":\"zk down\"}}\n\n"+
				"event: revision\ndata: {not json\n\n") // a bad event: the client reconnects
		},
		func(w http.ResponseWriter, r *http.Request) {
			// The name servers used before stream-error is still understood.
			sse(w, "event: error\ndata: {\"error\":{\"code\":\"compacted\",\"message\":\"gone\"}}\n\n")
			<-r.Context().Done()
		},
	)
	c := mustClient(t, api.Config{Servers: []string{f.srv.URL}, Token: "slc_t", RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	ch := c.Watch(ctxT(t), configsvc.Service("orders"), 0)
	evs := collect(t, ch, 7)
	mustClose(t, ch)
	var se *api.StreamError
	var ae *api.Error
	checks := []func(ev configsvc.Event) bool{
		func(ev configsvc.Event) bool { return ev.Revision != nil && ev.Revision.Number == 1 },
		func(ev configsvc.Event) bool { return ev.Revision != nil && ev.Revision.Number == 2 },
		func(ev configsvc.Event) bool {
			return errors.As(ev.Err, &se) && se.Opened && se.Retry > 0 && errors.Is(ev.Err, configsvc.ErrUnavailable)
		},
		func(ev configsvc.Event) bool { return ev.Revision != nil && ev.Revision.Number == 3 }, // 2 again is not repeated
		func(ev configsvc.Event) bool {
			return errors.As(ev.Err, &ae) && ae.Message == "zk down" && errors.Is(ev.Err, configsvc.ErrUnavailable)
		},
		func(ev configsvc.Event) bool { return errors.As(ev.Err, &se) && se.Opened },
		func(ev configsvc.Event) bool { return errors.Is(ev.Err, configsvc.ErrCompacted) },
	}
	for i, ok := range checks {
		if !ok(evs[i]) {
			t.Fatalf("event %d = %+v (err %v)", i, evs[i], evs[i].Err)
		}
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, want := range []string{"0", "2", "3"} {
		r := reqs[i]
		if r.URL.Query().Get(api.SinceParam) != want || r.Header.Get(api.LastEventIDHeader) != want ||
			r.Header.Get("Authorization") != "Bearer slc_t" || r.Header.Get("Accept") != "text/event-stream" || r.URL.Path != "/v1/services/orders/watch" {
			t.Errorf("request %d: %s %v; want since and Last-Event-ID %s", i, r.URL, r.Header, want)
		}
	}
}

// identRevEvent is revEvent with an identity: publish id id, parent
// parent, generation gen.
func identRevEvent(n int64, id, parent, gen string) string {
	b, _ := json.Marshal(api.Revision{Revision: n, Author: "a", Time: time.Unix(n, 0).UTC(),
		Changes: []api.Change{api.PutChange("n.txt", []byte(fmt.Sprint(n)))}, PublishID: id, Parent: parent, Generation: gen})
	return fmt.Sprintf("id: %d\nevent: revision\ndata: %s\n\n", n, b)
}

// TestWatchChecksTheHistory: the watch resumes with the identity of the
// last revision it delivered, and ends with an error matching
// configsvc.ErrRewritten when a revision does not follow the one before
// it (another parent or generation), whichever server sent it, or when the
// server says so with a stream-error of code rewritten.
func TestWatchChecksTheHistory(t *testing.T) {
	f := newFakeStream(t,
		func(w http.ResponseWriter, r *http.Request) {
			sse(w, ": ok\n\n"+identRevEvent(3, "p3", "p2", "g1")) // then the stream breaks
		},
		func(w http.ResponseWriter, r *http.Request) {
			// Another server, whose store issued revision 4 on top of
			// another revision 3.
			sse(w, ": ok\n\n"+identRevEvent(4, "x4", "x3", "g1"))
			<-r.Context().Done()
		},
	)
	c := mustClient(t, api.Config{Servers: []string{f.srv.URL}, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	ch := c.Watch(ctxT(t), configsvc.Service("orders"), 2, configsvc.Expect(configsvc.Identity{Generation: "g1", PublishID: "p2"}))
	evs := collect(t, ch, 3)
	mustClose(t, ch)
	if evs[0].Revision == nil || evs[0].Revision.Number != 3 || evs[0].Revision.PublishID != "p3" {
		t.Fatalf("event 0 = %+v, want revision 3", evs[0])
	}
	if !errors.Is(evs[1].Err, configsvc.ErrUnavailable) {
		t.Fatalf("event 1 = %+v, want the break", evs[1])
	}
	if !errors.Is(evs[2].Err, configsvc.ErrRewritten) || evs[2].Revision != nil {
		t.Fatalf("event 2 = %+v, want ErrRewritten instead of revision 4 of another history", evs[2])
	}
	reqs := f.requests()
	for i, want := range []struct{ since, pid string }{{"2", "p2"}, {"3", "p3"}} {
		q := reqs[i].URL.Query()
		if q.Get(api.SinceParam) != want.since || q.Get(api.PublishIDParam) != want.pid || q.Get(api.GenerationParam) != "g1" {
			t.Errorf("request %d: %s; want since %s, publish_id %s, generation g1", i, reqs[i].URL, want.since, want.pid)
		}
	}

	rewritten := newFakeStream(t, func(w http.ResponseWriter, r *http.Request) {
		sse(w, ": ok\n\nevent: "+api.EventError+"\ndata: {\"error\":{\"code\":\"rewritten\",\"message\":\"generation g2, not g1\"}}\n\n")
		<-r.Context().Done()
	})
	c = mustClient(t, api.Config{Servers: []string{rewritten.srv.URL}, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	ch = c.Watch(ctxT(t), configsvc.Service("orders"), 2, configsvc.Expect(configsvc.Identity{Generation: "g1"}))
	if ev := collect(t, ch, 1)[0]; !errors.Is(ev.Err, configsvc.ErrRewritten) {
		t.Fatalf("event = %+v, want ErrRewritten", ev)
	}
	mustClose(t, ch)
}

func TestWatchOpening(t *testing.T) {
	refused := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":{"code":"forbidden","message":"viewer of billing only"}}`)
	}
	busy := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"code":"unavailable","message":"store down"}}`, http.StatusServiceUnavailable)
	}
	silent := func(w http.ResponseWriter, r *http.Request) {
		sse(w, ": ok\n\n")
		<-r.Context().Done()
	}
	t.Run("refused: the answer ends the watch", func(t *testing.T) {
		f := newFakeStream(t, refused)
		c := mustClient(t, api.Config{Servers: []string{f.srv.URL}})
		ch := c.Watch(ctxT(t), configsvc.Group("g"), 4)
		ev := collect(t, ch, 1)[0]
		var ae *api.Error
		if !errors.As(ev.Err, &ae) || ae.Status != http.StatusForbidden || ae.Message != "viewer of billing only" || !errors.Is(ev.Err, api.ErrForbidden) {
			t.Fatalf("event = %+v", ev)
		}
		mustClose(t, ch)
		if p := f.requests()[0].URL.Path; p != "/v1/shared/g/watch" {
			t.Fatalf("path %s", p)
		}
	})
	t.Run("503 then silence then a revision", func(t *testing.T) {
		f := newFakeStream(t, busy, silent, func(w http.ResponseWriter, r *http.Request) {
			sse(w, revEvent(5))
			<-r.Context().Done()
		})
		c := mustClient(t, api.Config{Servers: []string{f.srv.URL}, RetryMin: time.Millisecond, RetryMax: time.Millisecond, IdleTimeout: 100 * time.Millisecond})
		ctx, cancel := context.WithCancel(ctxT(t))
		ch := c.Watch(ctx, configsvc.Service("orders"), 4)
		evs := collect(t, ch, 3)
		var se *api.StreamError
		var ae *api.Error
		if !errors.As(evs[0].Err, &se) || se.Opened || !errors.As(se.Err, &ae) || ae.Status != 503 || ae.RetryAfter != time.Second {
			t.Fatalf("first event = %+v (%v)", evs[0], evs[0].Err)
		}
		if !errors.As(evs[1].Err, &se) || !se.Opened || !strings.Contains(se.Error(), "no data for 100ms") {
			t.Fatalf("second event = %+v (%v)", evs[1], evs[1].Err)
		}
		if evs[2].Revision == nil || evs[2].Revision.Number != 5 {
			t.Fatalf("third event = %+v", evs[2])
		}
		cancel()
		mustClose(t, ch)
	})
	t.Run("no answer in time", func(t *testing.T) {
		release := make(chan struct{})
		f := newFakeStream(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		c := mustClient(t, api.Config{Servers: []string{f.srv.URL}, Timeout: 50 * time.Millisecond, RetryMin: time.Hour, RetryMax: time.Hour})
		ctx, cancel := context.WithCancel(ctxT(t))
		ch := c.Watch(ctx, configsvc.Service("orders"), 0)
		ev := collect(t, ch, 1)[0]
		var se *api.StreamError
		var ce *api.ConnError
		if !errors.As(ev.Err, &se) || se.Opened || !errors.As(ev.Err, &ce) || !ce.Timeout() || se.Retry != time.Hour {
			t.Fatalf("event = %+v (%v)", ev, ev.Err)
		}
		cancel()
		mustClose(t, ch)
	})
}

// deadURL returns the URL of a server that is no longer listening.
func deadURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func TestFailOver(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx := ctxT(t)
	dead := deadURL(t)
	c := mustClient(t, api.Config{Servers: []string{dead, e.url}, Token: e.admin})
	if _, _, err := c.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatalf("a write with the first server gone: %v", err)
	}
	if c.Server() != e.url {
		t.Fatalf("server in use %s, want %s", c.Server(), e.url)
	}
	ch := c.Watch(ctx, configsvc.Service("orders"), 0)
	if _, err := c.PutFile(ctx, configsvc.Service("orders"), "a.txt", []byte("a")); err != nil {
		t.Fatal(err)
	}
	// Revision 1 and the grays event the stream opens with, in either
	// order: the stream may open before or after the publish.
	evs := collect(t, ch, 2)
	if evs[0].GraysChanged {
		evs[0], evs[1] = evs[1], evs[0]
	}
	if evs[0].Revision == nil || evs[0].Revision.Number != 1 || !evs[1].GraysChanged {
		t.Fatalf("watch through the second server: %+v", evs)
	}
	e.srv.Close() // ends the stream
	mustIs(t, "a server that is gone", func() error {
		for ev := range ch {
			if ev.Err != nil {
				return ev.Err
			}
		}
		return nil
	}(), configsvc.ErrUnavailable)

	// A POST answered 503 may have taken effect: it is not sent again
	// elsewhere. A GET is.
	var second atomic.Int32
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"unavailable","message":"busy"}}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"services":["x"],"id":"p","state":"active"}`)
	}))
	t.Cleanup(other.Close)
	c = mustClient(t, api.Config{Servers: []string{busy.URL, other.URL}})
	_, err := c.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "o-1"}})
	mustIs(t, "POST answered 503", err, configsvc.ErrUnavailable)
	if second.Load() != 0 || c.Server() != busy.URL {
		t.Fatalf("the POST went on to the second server (%d requests)", second.Load())
	}
	if names, err := c.List(ctx, configsvc.KindService); err != nil || fmt.Sprint(names) != "[x]" || second.Load() != 1 || c.Server() != other.URL {
		t.Fatalf("GET with the first server busy: %v, %v", names, err)
	}
	// A POST whose connection could not be made moves on.
	c = mustClient(t, api.Config{Servers: []string{dead, other.URL}})
	if p, err := c.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "o-1"}}); err != nil || p.ID != "p" {
		t.Fatalf("POST with the first server unreachable: %+v, %v", p, err)
	}
}

func TestConfig(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:7070", "ftp://h", "http://", "http://h:7070/%zz"} {
		if _, err := api.New(api.Config{Servers: []string{bad}}); !errors.Is(err, configsvc.ErrInvalid) {
			t.Errorf("server %q: err = %v, want ErrInvalid", bad, err)
		}
	}
	c := mustClient(t, api.Config{})
	if c.Server() != api.DefaultServer {
		t.Fatalf("default server %s", c.Server())
	}
	c = mustClient(t, api.Config{Servers: []string{"http://h:1/"}})
	if c.Server() != "http://h:1" {
		t.Fatalf("trailing slash kept: %s", c.Server())
	}
	_, err := mustClient(t, api.Config{Servers: []string{deadURL(t)}}).Head(ctxT(t), configsvc.Service("x"))
	var ce *api.ConnError
	if !errors.As(err, &ce) || ce.Method != "GET" || ce.Path != "/v1/services/x" || ce.Timeout() || !errors.Is(err, configsvc.ErrUnavailable) {
		t.Fatalf("unreachable server: %v", err)
	}
}

// TestFaultLeaseCloseDuringSlowHeartbeat: a heartbeat the server is still
// handling when the lease closes must not land after the lease's delete and
// bring the instance back (the client's cancelled request is still served).
// slowInstancePuts serves e's API; while slow is set, an instance PUT
// announces itself on delayed and is served 150 ms later, even when the
// client gave up on it meanwhile.
func slowInstancePuts(t *testing.T, e *env) (*httptest.Server, *atomic.Bool, <-chan struct{}) {
	t.Helper()
	slow := new(atomic.Bool)
	delayed := make(chan struct{}, 16)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/instances/") {
			delayed <- struct{}{}
			time.Sleep(150 * time.Millisecond) // served although the client gave up
			r = r.WithContext(context.WithoutCancel(r.Context()))
		}
		e.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, slow, delayed
}

// TestFaultLeaseCloseDuringCancelledUpdate: an Update whose context is
// cancelled (a proxy or SDK shutting down) gave up on its request, which
// the server could still serve after Close's delete and so bring the
// instance back until its registration expired (what made
// TestProxyOnServerRoutesPinsAndPublishesState flaky in CI). Close now
// waits for the update's request, and an Update after Close is refused.
func TestFaultLeaseCloseDuringCancelledUpdate(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx := ctxT(t)
	if _, _, err := e.c.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	ts, slow, delayed := slowInstancePuts(t, e)
	lc := mustClient(t, api.Config{Servers: []string{ts.URL}, Token: e.admin, Heartbeat: time.Hour})
	inst := configsvc.Instance{Service: "orders", ID: "orders-1", Addr: "127.0.0.1:9001", Status: configsvc.StatusApplied}
	lease, err := lc.Register(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	uctx, cancel := context.WithCancel(ctx)
	updated := make(chan error, 1)
	go func() {
		inst.Revision = 2
		updated <- lease.Update(uctx, inst)
	}()
	<-delayed // the update is in the server
	cancel()
	if err := <-updated; !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with its context cancelled: %v, want context.Canceled", err)
	}
	if err := lease.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the update land, if it comes after the delete
	list, err := e.c.Instances(ctx, "orders")
	if err != nil || len(list) != 0 {
		t.Fatalf("after Close: %+v, %v; want no instance", list, err)
	}
	slow.Store(false)
	if err := lease.Update(ctx, inst); !errors.Is(err, configsvc.ErrClosed) {
		t.Fatalf("Update after Close: %v, want ErrClosed", err)
	}
	if list, err := e.c.Instances(ctx, "orders"); err != nil || len(list) != 0 {
		t.Fatalf("after an Update after Close: %+v, %v; want no instance", list, err)
	}
}

func TestFaultLeaseCloseDuringSlowHeartbeat(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx := ctxT(t)
	if _, _, err := e.c.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	ts, slow, delayed := slowInstancePuts(t, e)
	lc := mustClient(t, api.Config{Servers: []string{ts.URL}, Token: e.admin, Heartbeat: 20 * time.Millisecond})
	lease, err := lc.Register(ctx, configsvc.Instance{Service: "orders", ID: "orders-1", Addr: "127.0.0.1:9001", Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	<-delayed // a heartbeat is in the server
	if err := lease.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let any straggling heartbeat land
	list, err := e.c.Instances(ctx, "orders")
	if err != nil || len(list) != 0 {
		t.Fatalf("after Close: %+v, %v; want no instance", list, err)
	}
}
