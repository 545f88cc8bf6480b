package zkstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestFaultOutcomeUnknownNotConflict: every transaction the store sends is
// lost with its connection (the proxy cuts the connection as the request
// passes, before ZooKeeper sees it), so the store can never learn whether
// its write was applied. After its retries, Publish, Link and Unlink must
// say so (ErrOutcomeUnknown) rather than report a conflict nobody caused.
// Once the network delivers again, a single lost attempt is resolved: the
// retry lands and the call succeeds, once.
func TestFaultOutcomeUnknownNotConflict(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	var root string
	// The address twice: the client reconnects to the next address at
	// once and waits a second only after trying them all, so the store
	// runs through all its attempts well before its deadline.
	st := mustOpen(t, []string{px.Addr(), px.Addr()}, func(c *zkstore.Config) { root = c.Root; c.OpTimeout = time.Minute })
	direct := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	svc, grp := configsvc.Service("orders"), configsvc.Group("redis-common")
	for _, ref := range []configsvc.Ref{svc, grp} {
		if err := st.Create(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	publish(ctx, t, st, svc, 0, put("a.txt", "1"))
	if err := st.Link(ctx, "orders", "redis-common"); err != nil {
		t.Fatal(err)
	}

	px.DropMultis(1 << 20)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Publish", func() error {
			_, err := st.Publish(ctx, svc, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("a.txt", "2")}})
			return err
		}},
		{"Unlink", func() error { return st.Unlink(ctx, "orders", "redis-common") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, configsvc.ErrOutcomeUnknown) || errors.Is(err, configsvc.ErrConflict) || errors.Is(err, configsvc.ErrUnavailable) {
				t.Fatalf("%s whose every transaction was lost = %v; want ErrOutcomeUnknown, not a conflict", tc.name, err)
			}
		})
	}
	px.DropMultis(0)
	h, err := direct.Head(ctx, svc)
	if err != nil || h.Revision != 1 || len(h.Links) != 1 {
		t.Fatalf("head after the lost writes = revision %d, links %v, %v; want 1 and the link (nothing arrived)", h.Revision, h.Links, err)
	}

	px.DropMultis(1)
	rev, err := st.Publish(ctx, svc, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("a.txt", "2")}})
	if err != nil || rev.Number != 2 {
		t.Fatalf("Publish across one lost transaction = %d, %v; want revision 2", rev.Number, err)
	}
	px.DropMultis(1)
	if err := st.Unlink(ctx, "orders", "redis-common"); err != nil {
		t.Fatalf("Unlink across one lost transaction: %v", err)
	}
	if h, err := direct.Head(ctx, svc); err != nil || h.Revision != 2 || len(h.Links) != 0 {
		t.Fatalf("head = revision %d, links %v, %v; want 2 and no link", h.Revision, h.Links, err)
	}
	if _, err := direct.Revision(ctx, svc, 3); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("Revision(3) = %v: the retry published twice", err)
	}
}
