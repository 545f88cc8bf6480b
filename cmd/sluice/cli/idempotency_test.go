package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/httpapi"
)

// TestWritesSendIdempotencyKey: every write command sends an
// Idempotency-Key, a new one per command, and the admin server keeps the
// answer under it (so a resent request would be answered, not applied
// again); reads send none.
func TestWritesSendIdempotencyKey(t *testing.T) {
	st := bolttest.MustOpen(t, boltstore.Options{})
	srv, err := httpapi.New(httpapi.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	sent := map[string]string{} // "METHOD path" → key
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sent[r.Method+" "+r.URL.EscapedPath()] = r.Header.Get(api.HeaderIdempotencyKey)
		mu.Unlock()
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); front.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := srv.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := func() int {
		n := 0
		for i := range 256 {
			recs, err := st.Records().List(ctx, fmt.Sprintf("idempotency-%02x", i))
			if err != nil {
				t.Fatal(err)
			}
			n += len(recs)
		}
		return n
	}
	env := map[string]string{"SLUICE_SERVER": front.URL, "SLUICE_TOKEN": admin}
	steps := []struct {
		args  []string
		route string
		write bool
	}{
		{[]string{"services", "create", "orders"}, "PUT /v1/services/orders", true},
		{[]string{"put", "orders", "db.yaml", "-"}, "PUT /v1/services/orders/files/db.yaml", true},
		{[]string{"get", "orders", "db.yaml"}, "GET /v1/services/orders/files/db.yaml", false},
		{[]string{"publish", "orders", "--delete", "db.yaml", "-m", "gone"}, "POST /v1/services/orders/revisions", true},
		{[]string{"rollback", "orders", "--to", "1"}, "POST /v1/services/orders/rollback", true},
	}
	seen := map[string]bool{}
	for _, s := range steps {
		before := kept()
		r := runCLI(t, nil, env, "pool: 5\n", s.args...)
		if r.err != nil {
			t.Fatalf("sluice %v: %v", s.args, r.err)
		}
		mu.Lock()
		key, ok := sent[s.route]
		mu.Unlock()
		switch {
		case !ok:
			t.Fatalf("sluice %v sent no %s", s.args, s.route)
		case !s.write && key != "":
			t.Fatalf("sluice %v sent Idempotency-Key %q on a read", s.args, key)
		case s.write && (key == "" || seen[key]):
			t.Fatalf("sluice %v sent Idempotency-Key %q; want a new one", s.args, key)
		case s.write && kept() != before+1:
			t.Fatalf("after sluice %v the server keeps %d answers, had %d; want one more", s.args, kept(), before)
		}
		seen[key] = true
	}
	if h, err := st.Head(ctx, configsvc.Service("orders")); err != nil || h.Revision != 3 {
		t.Fatalf("head = %d, %v; want 3", h.Revision, err)
	}
}
