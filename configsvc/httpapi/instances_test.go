package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestAdminRemovesInstanceRegisteredElsewhere: an instance this server
// does not hold (an SDK registered it straight in the store; on ZooKeeper,
// through its own session, as a process that died before its session
// expired leaves it) stays listed; an admin
// removes it, another caller is told the server does not hold it. The
// registration, were it alive, lists it again at its next update.
func TestAdminRemovesInstanceRegisteredElsewhere(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		e.mustService("orders", nil)
		agent := e.mustToken("agent:orders")
		ctx := context.Background()
		inst := configsvc.Instance{Service: "orders", ID: "orders-sdk", Addr: "127.0.0.1:9000", Status: configsvc.StatusApplied, Revision: 1}
		lease, err := e.otherStore(t).Register(ctx, inst)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lease.Close() })
		listed := func() []string {
			var list api.InstanceList
			e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/instances", token: e.admin}).json(t, &list)
			var ids []string
			for _, in := range list.Instances {
				ids = append(ids, in.ID)
			}
			return ids
		}
		checkUserMessage(t, e.do(req{method: "DELETE", path: "/v1/services/orders/instances/orders-sdk", token: agent}),
			http.StatusNotFound, "not registered through this server", "admin")
		if ids := listed(); len(ids) != 1 {
			t.Fatalf("after the agent's DELETE: %v, want orders-sdk still listed", ids)
		}
		e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/services/orders/instances/orders-sdk", token: e.admin})
		if ids := listed(); len(ids) != 0 {
			t.Fatalf("after the admin's DELETE: %v, want none", ids)
		}
		checkUserMessage(t, e.do(req{method: "DELETE", path: "/v1/services/orders/instances/orders-sdk", token: e.admin}),
			http.StatusNotFound, "instance orders-sdk of service orders is not registered")
		inst.Revision = 2
		if err := lease.Update(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if ids := listed(); strings.Join(ids, ",") != "orders-sdk" {
			t.Fatalf("after the live registration's update: %v, want orders-sdk back", ids)
		}
	})
}

// TestInstanceAppliedAt: applied_at, as the SDK sends it, is kept (in
// UTC) across refreshes and listed; a record without it lists none.
func TestInstanceAppliedAt(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		e.mustService("orders", nil)
		agent := e.mustToken("agent:orders")
		body := map[string]any{"addr": "127.0.0.1:9000", "revision": 3, "status": "applied", "applied_at": "2026-03-04T10:30:00+05:30"}
		e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: agent, body: body})
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: agent, body: body})
		e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/orders-2", token: agent, body: map[string]any{"addr": "127.0.0.1:9001"}})
		listed := string(e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/instances", token: agent}).body)
		if strings.Count(listed, `"applied_at":"2026-03-04T05:00:00Z"`) != 1 || strings.Count(listed, "applied_at") != 1 {
			t.Fatalf("instances = %s, want applied_at in UTC on orders-1 only", listed)
		}
	})
}

// TestFaultServerCloseSendsNoDeregistrationsOnItsStreams: a server that
// stops closes the instance leases it holds (their instances leave the
// store), but its own streams must end before that: a proxy following
// instances through this server saw every instance vanish as the server
// stopped, and routed on an empty table until it reconnected elsewhere,
// instead of keeping its last table. Each round stops a server with a
// stream open; no round may see the emptied list.
func TestFaultServerCloseSendsNoDeregistrationsOnItsStreams(t *testing.T) {
	for round := range 10 {
		e := newEnv(t)
		e.mustService("orders", nil)
		agent := e.mustToken("agent:orders")
		e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/orders-1", token: agent, body: map[string]any{"addr": "127.0.0.1:9000"}})
		var streams []<-chan sseEvent
		for range 20 {
			events, _ := openStream(t, e, "/v1/services/orders/instances/watch", e.admin, nil)
			if ev := nextEvent(t, events, "instances"); !strings.Contains(ev.data, "orders-1") {
				t.Fatalf("first list %s, want orders-1", ev.data)
			}
			streams = append(streams, events)
		}
		_ = e.srv.Close()
		timeout := time.After(5 * time.Second)
		for i, events := range streams {
		read:
			for {
				select {
				case ev, ok := <-events:
					if !ok {
						break read
					}
					if ev.name == "instances" && !strings.Contains(ev.data, "orders-1") {
						t.Fatalf("round %d, stream %d: the stream sent %s as its server stopped: the server's own leases closing reached its streams", round, i, ev.data)
					}
				case <-timeout:
					t.Fatalf("round %d: stream %d did not end within 5 s of the server's Close", round, i)
				}
			}
		}
		if code := e.do(req{method: "GET", path: "/v1/services/orders/instances/watch", token: e.admin}).status; code != http.StatusServiceUnavailable {
			t.Fatalf("round %d: a stream opened on a closed server answered %d, want 503", round, code)
		}
	}
}
