package api_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
)

// TestWriteResentUnderItsKey: the connection breaks after the server
// applied a publish, before its answer reached the client. The client
// sends the publish again under the same Idempotency-Key and gets the
// first answer: one revision, no error. Reads and instance registrations
// carry no key; every other write does.
func TestWriteResentUnderItsKey(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	var mu sync.Mutex
	keys := map[string][]string{} // "METHOD path" → keys received
	lost := 1
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		op := r.Method + " " + r.URL.Path
		keys[op] = append(keys[op], r.Header.Get(api.HeaderIdempotencyKey))
		drop := op == "POST /v1/services/orders/revisions" && lost > 0
		if drop {
			lost--
		}
		mu.Unlock()
		if drop {
			e.srv.ServeHTTP(httptest.NewRecorder(), r) // applied, answer lost
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		e.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	c := mustClient(t, api.Config{Servers: []string{front.URL}, Token: e.admin})
	ctx := ctxT(t)
	ref := configsvc.Service("orders")
	if _, _, err := c.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	content := "a: 1\n"
	rev, err := c.Publish(ctx, ref, api.PublishRequest{Changes: []api.Change{{File: "a.yaml", Content: &content}}})
	if err != nil || rev.Number != 1 {
		t.Fatalf("Publish across a lost answer = %d, %v; want revision 1", rev.Number, err)
	}
	if h, err := e.store.Head(ctx, ref); err != nil || h.Revision != 1 {
		t.Fatalf("head = %d, %v; want 1: the resent publish must not publish twice", h.Revision, err)
	}
	if _, err := c.Head(ctx, ref); err != nil {
		t.Fatal(err)
	}
	l, err := c.Register(ctx, configsvc.Instance{Service: "orders", ID: "o-1", Addr: "127.0.0.1:1", Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	pub := keys["POST /v1/services/orders/revisions"]
	if len(pub) != 2 || pub[0] == "" || pub[0] != pub[1] {
		t.Fatalf("publish sent with keys %q; want twice the same key", pub)
	}
	if k := keys["PUT /v1/services/orders"]; len(k) != 1 || k[0] == "" || k[0] == pub[0] {
		t.Fatalf("create sent with keys %q; want one key of its own", k)
	}
	for _, op := range []string{"GET /v1/services/orders", "PUT /v1/services/orders/instances/o-1", "DELETE /v1/services/orders/instances/o-1"} {
		for _, k := range keys[op] {
			if k != "" {
				t.Fatalf("%s sent Idempotency-Key %q; want none", op, k)
			}
		}
	}
}

// TestWriteAnswerLostThenServerGone: a server applies a publish, its
// answer is lost, and the server is gone before the publish is sent again
// under its key (the connection is refused). The client's error must say
// the answer was lost — the publish may have been applied — and must not
// read as a refused connection, which tells a caller that nothing was
// written (the robustness test took it so, dropped the applied write from
// its history, or sent it again through the other server, and found the
// history not linearizable). On a fresh connection the client itself sends
// the publish again; on a reused one net/http does first (a request with an
// Idempotency-Key counts as idempotent) and reports only the refused dial.
func TestWriteAnswerLostThenServerGone(t *testing.T) {
	for _, reused := range []bool{false, true} {
		t.Run(map[bool]string{false: "fresh connection", true: "reused connection"}[reused], func(t *testing.T) {
			e := newEnv(t, boltstore.Options{})
			ref := configsvc.Service("orders")
			ctx := ctxT(t)
			if err := e.store.Create(ctx, ref); err != nil {
				t.Fatal(err)
			}
			var front *httptest.Server
			front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					e.srv.ServeHTTP(w, r)
					return
				}
				e.srv.ServeHTTP(httptest.NewRecorder(), r) // applied, answer lost
				front.Listener.Close()                     // and the server is gone
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
			}))
			t.Cleanup(front.Close)
			c := mustClient(t, api.Config{Servers: []string{front.URL}, Token: e.admin})
			if reused {
				if _, err := c.Head(ctx, ref); err != nil {
					t.Fatal(err)
				}
			}
			content := "a: 1\n"
			_, err := c.Publish(ctx, ref, api.PublishRequest{Changes: []api.Change{{File: "a.yaml", Content: &content}}})
			var ce *api.ConnError
			if !errors.As(err, &ce) || !errors.Is(err, configsvc.ErrUnavailable) {
				t.Fatalf("Publish = %v; want a *ConnError matching ErrUnavailable", err)
			}
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Op == "dial" {
				t.Fatalf("Publish = %v; its error reads as a refused connection, though the publish was sent", err)
			}
			if !strings.Contains(err.Error(), "may have been applied") {
				t.Fatalf("Publish = %v; want it to say the write may have been applied", err)
			}
			if h, err := e.store.Head(ctx, ref); err != nil || h.Revision != 1 {
				t.Fatalf("head = %d, %v; want 1 (the first attempt applied)", h.Revision, err)
			}
		})
	}
}
