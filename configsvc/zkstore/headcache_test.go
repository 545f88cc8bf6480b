package zkstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestPublishIsOneTransaction: a publish on top of the head the store last
// wrote or read sends its transaction and nothing else (no read of the
// head first), so it costs one round trip.
func TestPublishIsOneTransaction(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	st := mustOpen(t, []string{px.Addr()}, nil)
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	reads, multis := px.Requests(zktest.OpGetData), px.Requests(zktest.OpMulti)
	for base := range int64(3) {
		publish(ctx, t, st, ref, base, put("a.yaml", "v: 1\n"))
	}
	if _, err := st.Head(ctx, ref); err != nil { // as the admin API does before a publish
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 3, put("b.yaml", "v: 2\n"))
	if r, m := px.Requests(zktest.OpGetData)-reads, px.Requests(zktest.OpMulti)-multis; r != 1 || m != 4 {
		t.Fatalf("4 publishes and a Head sent %d reads and %d transactions; want 1 (the Head) and 4", r, m)
	}
	h, err := st.Head(ctx, ref)
	if err != nil || h.Revision != 4 || h.Files["a.yaml"].Revision != 3 || h.Files["b.yaml"].Revision != 4 {
		t.Fatalf("Head = %+v, %v; want revision 4 with a.yaml@3 and b.yaml@4", h, err)
	}
}

// TestPublishOnHeadChangedElsewhere: another server's publish or link moves
// the head this store remembers; the version check catches it, a stale base
// is still a conflict, a current one still publishes, and the link stays.
func TestPublishOnHeadChangedElsewhere(t *testing.T) {
	srv := shared(t)
	a, b, _ := twoServers(t, srv.Servers())
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	for _, r := range []configsvc.Ref{ref, configsvc.Group("redis-common")} {
		if err := a.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	publish(ctx, t, a, ref, 0, put("a.txt", "a1"))
	publish(ctx, t, b, ref, 1, put("b.txt", "b2"))

	_, err := a.Publish(ctx, ref, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("a.txt", "stale")}})
	if !errors.Is(err, configsvc.ErrConflict) {
		t.Fatalf("publish on a base another server moved past = %v, want ErrConflict", err)
	}
	publish(ctx, t, a, ref, 2, put("a.txt", "a3"))
	if err := b.Link(ctx, "orders", "redis-common"); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, a, ref, 3, put("a.txt", "a4")) // remembered head at 3, but its version moved
	h, err := b.Head(ctx, ref)
	if err != nil || h.Revision != 4 || !slices.Equal(h.Links, []string{"redis-common"}) {
		t.Fatalf("Head = %+v, %v; want revision 4 still linked to redis-common", h, err)
	}
	snap, err := b.Snapshot(ctx, ref, 0)
	if err != nil || string(snap.Files["a.txt"]) != "a4" || string(snap.Files["b.txt"]) != "b2" || len(snap.Files) != 2 {
		t.Fatalf("Snapshot = %v, %v; want a.txt a4 and b.txt b2", snap.Files, err)
	}
}

// TestPublishAfterRecreateElsewhere: another server deletes the service,
// creates it again and publishes until its head is at the same revision
// and node version as the head this store remembers. The epoch check must
// refuse the remembered head (whose files are gone) so that the publish
// builds on the new one.
func TestPublishAfterRecreateElsewhere(t *testing.T) {
	srv := shared(t)
	a, b, _ := twoServers(t, srv.Servers())
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := a.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, a, ref, 0, put("old-1.txt", "1"), put("old-2.txt", "2"))

	if err := b.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, b, ref, 0, put("new.txt", "n"))

	publish(ctx, t, a, ref, 1, put("mine.txt", "m"))
	snap, err := b.Snapshot(ctx, ref, 0)
	if err != nil {
		t.Fatalf("Snapshot after the publish: %v", err)
	}
	if len(snap.Files) != 2 || string(snap.Files["new.txt"]) != "n" || string(snap.Files["mine.txt"]) != "m" {
		t.Fatalf("Snapshot = %v; want new.txt and mine.txt only (the deleted service's files must not come back)", snap.Files)
	}
}

// TestPublishGivesEpochToOldService: a service created before heads had an
// epoch gets one from its next publish, and publishes on.
func TestPublishGivesEpochToOldService(t *testing.T) {
	srv := shared(t)
	st, fresh, root := twoServers(t, srv.Servers())
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "1"))

	// Make it look as an older version left it: no epoch in the head, no node.
	c := rawConn(t, srv.Servers(), "")
	headPath := root + "/services/orders/head"
	data, stat, err := c.Get(headPath)
	if err != nil {
		t.Fatal(err)
	}
	var head map[string]any
	if err := json.Unmarshal(data, &head); err != nil {
		t.Fatal(err)
	}
	epoch, _ := head["epoch"].(string)
	if epoch == "" {
		t.Fatalf("head %s has no epoch", data)
	}
	delete(head, "epoch")
	data, _ = json.Marshal(head)
	if _, err := c.Multi(
		&zk.DeleteRequest{Path: root + "/services/orders/epoch-" + epoch, Version: -1},
		&zk.SetDataRequest{Path: headPath, Data: data, Version: stat.Version},
	); err != nil {
		t.Fatal(err)
	}

	publish(ctx, t, fresh, ref, 1, put("a.txt", "2"))
	publish(ctx, t, fresh, ref, 2, put("a.txt", "3"))
	data, _, err = c.Get(headPath)
	if err != nil {
		t.Fatal(err)
	}
	head = nil
	if err := json.Unmarshal(data, &head); err != nil {
		t.Fatal(err)
	}
	epoch, _ = head["epoch"].(string)
	if ok, _, err := c.Exists(root + "/services/orders/epoch-" + epoch); epoch == "" || err != nil || !ok {
		t.Fatalf("after publishing: head epoch %q, its node exists=%v (%v); want both", epoch, ok, err)
	}
	got, _, err := fresh.File(ctx, ref, "a.txt", 0)
	if err != nil || string(got) != "3" {
		t.Fatalf("a.txt = %q, %v; want 3", got, err)
	}
}

// twoServers opens two stores on one fresh root, as two servers on one
// ensemble would be.
func twoServers(t *testing.T, servers []string) (a, b *zkstore.Store, root string) {
	t.Helper()
	root = fmt.Sprintf("/sluice-test/%d", roots.Add(1))
	set := func(c *zkstore.Config) { c.Root = root }
	return mustOpen(t, servers, set), mustOpen(t, servers, set), root
}

// TestPruneInBatches: with retention 128 the background pruner removes
// compacted revisions 16 at a time (retention/8) and does not chase the
// boundary that publishes keep moving one revision at a time: each prune
// transaction removes a whole batch, so its three round trips are shared by
// 16 publishes. A step reads the head, the ref node and the revision nodes
// of its batch and the one after (which name the content they replaced),
// in one round trip, whichever server published them.
func TestPruneInBatches(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	st := mustOpen(t, []string{px.Addr()}, func(c *zkstore.Config) { c.Retention = 128 })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	multis, reads := px.Requests(zktest.OpMulti), px.Requests(zktest.OpGetData)
	const publishes = 300
	for base := range int64(publishes) {
		publish(ctx, t, st, ref, base, put("a.txt", fmt.Sprint(base+1)))
	}
	compacted := int64(publishes - 128)
	var prunes int64
	deadline := time.Now().Add(10 * time.Second)
	for { // the last batch may still be on its way
		prunes = px.Requests(zktest.OpMulti) - multis - publishes
		if prunes >= compacted/16 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if prunes < 1 || prunes > compacted/16 {
		t.Fatalf("%d prune transactions for %d compacted revisions; want 1 to %d (batches of 16)", prunes, compacted, compacted/16)
	}
	// At most 2+17 reads a step (one more step may be under way), and the
	// first step, which finds nothing to prune.
	if r := px.Requests(zktest.OpGetData) - reads; r > 19*(prunes+1)+2 {
		t.Fatalf("%d prune steps read %d nodes; want at most 19 a step", prunes, r)
	}
	if _, err := st.Revision(ctx, ref, int64(publishes-128)); !errors.Is(err, configsvc.ErrCompacted) {
		t.Fatalf("Revision(%d) = %v; want ErrCompacted", publishes-128, err)
	}
}
