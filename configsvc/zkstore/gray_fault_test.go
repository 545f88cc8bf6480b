package zkstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// grayFixture opens a store through a fault proxy in front of srv, under
// root, with service orders at revision 1 (a.txt) and an active gray on
// a.txt.
func grayFixture(t *testing.T, srv *zktest.Server, root string) (*zktest.Proxy, *zkstore.Store, configsvc.Ref, configsvc.Gray) {
	t.Helper()
	px := zktest.StartProxy(t, srv.Addr())
	st := mustOpen(t, []string{px.Addr()}, func(c *zkstore.Config) { c.Root, c.OpTimeout = root, 10*time.Second })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 0, Changes: []configsvc.Change{put("a.txt", "main")}}); err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{put("a.txt", "gray")}})
	if err != nil {
		t.Fatal(err)
	}
	return px, st, ref, g
}

// TestFaultCreateGrayRecognisesOwnGray: the connection drops after the
// transaction creating a gray reached ZooKeeper but before its reply;
// CreateGray finds its own gray instead of creating a second one.
func TestFaultCreateGrayRecognisesOwnGray(t *testing.T) {
	px, st, ref, first := grayFixture(t, shared(t), freshRoot())
	ctx := testCtx(t)
	px.CutAfterMulti(1)
	g, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{put("b.txt", "new")}})
	if err != nil {
		t.Fatalf("CreateGray across a dropped reply: %v", err)
	}
	if px.Cuts() != 1 {
		t.Fatalf("proxy cut %d multi replies, want 1", px.Cuts())
	}
	list, err := st.Grays(ctx, ref)
	if err != nil || len(list) != 2 {
		t.Fatalf("Grays = %d, %v; want the first gray and the one created once", len(list), err)
	}
	h, err := st.Head(ctx, ref)
	if err != nil || len(h.Grays) != 2 || (h.Grays[0].ID != g.ID && h.Grays[1].ID != g.ID) || (h.Grays[0].ID != first.ID && h.Grays[1].ID != first.ID) {
		t.Fatalf("head grays %+v, %v; want %s and %s", h.Grays, err, first.ID, g.ID)
	}
}

// TestFaultUpdateGrayRecognisesOwnUpdate: an UpdateGray whose reply is
// lost reports its own update, not a conflict with itself.
func TestFaultUpdateGrayRecognisesOwnUpdate(t *testing.T) {
	px, st, ref, g := grayFixture(t, shared(t), freshRoot())
	ctx := testCtx(t)
	px.CutAfterMulti(1)
	up, err := st.UpdateGray(ctx, ref, g.ID, 1, func(x *configsvc.Gray) error { x.Selector.Percent = 30; return nil })
	if err != nil || up.Version != 2 {
		t.Fatalf("UpdateGray across a dropped reply = version %d, %v; want 2", up.Version, err)
	}
	got, err := st.Gray(ctx, ref, g.ID)
	if err != nil || got.Version != 2 || got.Selector.Percent != 30 {
		t.Fatalf("Gray = version %d percent %v, %v; want 2 and 30", got.Version, got.Selector.Percent, err)
	}
}

// TestFaultPromoteRecognisesOwnEnd: the reply of a promote's transaction
// is lost. EndGray reports the promote and its revision; main got exactly
// one revision, the gray left the head.
func TestFaultPromoteRecognisesOwnEnd(t *testing.T) {
	px, st, ref, g := grayFixture(t, shared(t), freshRoot())
	ctx := testCtx(t)
	px.CutAfterMulti(1)
	ended, rev, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 1, Author: "bob"}})
	if err != nil || rev == nil || rev.Number != 2 || ended.State != configsvc.GrayPromoted || ended.EndedRevision != 2 {
		t.Fatalf("promote across a dropped reply = %+v, %+v, %v; want promoted to revision 2", ended, rev, err)
	}
	if px.Cuts() != 1 {
		t.Fatalf("proxy cut %d multi replies, want 1", px.Cuts())
	}
	h, err := st.Head(ctx, ref)
	if err != nil || h.Revision != 2 || len(h.Grays) != 0 {
		t.Fatalf("head after the promote: revision %d, grays %v, %v", h.Revision, h.Grays, err)
	}
	if _, err := st.Revision(ctx, ref, 3); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("Revision(3) = %v: the promote published twice", err)
	}
	content, _, err := st.File(ctx, ref, "a.txt", 2)
	if err != nil || string(content) != "gray" {
		t.Fatalf("a.txt at the promote = %q, %v", content, err)
	}
}

// TestFaultPromoteLostLeavesNoHalfState: a promote's transaction is lost
// on its way while another server publishes on the same base. The
// promote fails with a conflict, and nothing of it is left: the gray is
// active and on the head, main holds the other publish only.
func TestFaultPromoteLostLeavesNoHalfState(t *testing.T) {
	srv, root := shared(t), freshRoot()
	px, st, ref, g := grayFixture(t, srv, root)
	b := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root }) // another server
	ctx := testCtx(t)
	other := make(chan error, 1)
	px.DropMulti(func() {
		_, err := b.Publish(ctx, ref, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("b.txt", "other")}})
		other <- err
	})
	_, _, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 1}})
	select {
	case oerr := <-other:
		if oerr != nil {
			t.Fatalf("the other publish: %v", oerr)
		}
	default:
		t.Fatal("the proxy dropped no transaction")
	}
	if !errors.Is(err, configsvc.ErrConflict) {
		t.Fatalf("a promote whose base moved while its transaction was lost = %v, want ErrConflict", err)
	}
	got, err := st.Gray(ctx, ref, g.ID)
	if err != nil || got.State != configsvc.GrayActive || got.Version != 1 {
		t.Fatalf("gray after the lost promote = %+v, %v; want active at version 1", got, err)
	}
	h, err := st.Head(ctx, ref)
	if err != nil || h.Revision != 2 || len(h.Grays) != 1 || h.Grays[0].ID != g.ID {
		t.Fatalf("head after the lost promote: revision %d grays %+v, %v; want 2 with the gray", h.Revision, h.Grays, err)
	}
	rev, err := st.Revision(ctx, ref, 2)
	if err != nil || len(rev.Changes) != 1 || rev.Changes[0].File != "b.txt" {
		t.Fatalf("revision 2 = %+v, %v; want the other publish only", rev, err)
	}
}
