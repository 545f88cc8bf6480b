package zkstore_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// rawHead is what these tests read of a head node.
type rawHead struct {
	Revision         int64                   `json:"revision"`
	Files            json.RawMessage         `json:"files"`
	Since            int64                   `json:"since"`
	Count            int                     `json:"count"`
	ManifestCversion int32                   `json:"manifest_cversion"`
	Grays            []configsvc.GraySummary `json:"grays"`
}

func readRawHead(t *testing.T, c *zk.Conn, base string) rawHead {
	t.Helper()
	data, _, err := c.Get(base + "/head")
	if err != nil {
		t.Fatal(err)
	}
	var h rawHead
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("head %s: %v", data, err)
	}
	return h
}

// manifestListing returns the sorted manifest node names under base and
// manifest/'s cversion.
func manifestListing(t *testing.T, c *zk.Conn, base string) ([]string, int32) {
	t.Helper()
	kids, st, err := c.Children(base + "/manifest")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(kids)
	return kids, st.Cversion
}

func grayIDs(list []configsvc.GraySummary) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

// TestGraysInLayout2Head: the gray summaries travel in layout 2's head
// summary node. A gray change sets the head (and nothing under manifest/),
// so the head's manifest_cversion still matches the listing; a publish on
// the head this store remembers keeps the summaries; a promote writes the
// manifest nodes of its files like a publish and leaves the summary out;
// another server reads it all back.
func TestGraysInLayout2Head(t *testing.T) {
	srv := shared(t)
	var root string
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { root = c.Root })
	other := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	c := rawConn(t, srv.Servers(), "")
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	base := root + "/services/orders"
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "a1"), put("b.txt", "b1"), put("c.txt", "c1"))
	checkHead := func(when string, wantRev int64, wantGrays ...string) rawHead {
		t.Helper()
		h := readRawHead(t, c, base)
		_, cv := manifestListing(t, c, base)
		if string(h.Files) != `"manifest"` || h.Since != 1 || h.Revision != wantRev || h.ManifestCversion != cv ||
			!slices.Equal(grayIDs(h.Grays), wantGrays) {
			t.Fatalf("%s: head %+v (manifest/ cversion %d); want layout 2 at revision %d, the listing's cversion, grays %v",
				when, h, cv, wantRev, wantGrays)
		}
		return h
	}

	g1, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{put("a.txt", "ga"), {File: "c.txt", Delete: true}},
		Selector: configsvc.Selector{Percent: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if g1.BaseFiles["a.txt"] != 1 || g1.BaseFiles["c.txt"] != 1 {
		t.Fatalf("base files %v; want a.txt and c.txt at 1 (read from manifest/)", g1.BaseFiles)
	}
	checkHead("after CreateGray", 1, g1.ID)
	g2, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{put("d.txt", "gd")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateGray(ctx, ref, g2.ID, 1, func(g *configsvc.Gray) error { g.Selector.Percent = 50; return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{g1.ID, g2.ID}
	slices.Sort(want)
	checkHead("after UpdateGray", 1, want...)

	// A publish (one transaction on the remembered head) keeps the grays.
	publish(ctx, t, st, ref, 1, put("b.txt", "b2"))
	checkHead("after a publish", 2, want...)
	if g, err := other.Gray(ctx, ref, g1.ID); err != nil || len(g.MainChanged) != 0 {
		t.Fatalf("Gray(g1) = %v, %v; main changed none of its files", g.MainChanged, err)
	}
	publish(ctx, t, st, ref, 2, put("a.txt", "a3"))
	if g, err := other.Gray(ctx, ref, g1.ID); err != nil || !slices.Equal(g.MainChanged, []string{"a.txt"}) {
		t.Fatalf("Gray(g1) = %v, %v; want main_changed [a.txt]", g.MainChanged, err)
	}

	// Promote: the manifest nodes of a.txt and c.txt change as a publish's.
	_, rev, err := st.EndGray(ctx, ref, g1.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 3, Author: "t"}})
	if err != nil || rev == nil || rev.Number != 4 {
		t.Fatalf("promote = %+v, %v; want revision 4", rev, err)
	}
	h := checkHead("after the promote", 4, g2.ID)
	if kids, _ := manifestListing(t, c, base); !slices.Equal(kids, []string{"a.txt@4", "b.txt@2"}) || h.Count != 2 {
		t.Fatalf("manifest after the promote = %v (count %d); want a.txt@4 b.txt@2", kids, h.Count)
	}
	oh, err := other.Head(ctx, ref)
	if err != nil || oh.Revision != 4 || len(oh.Files) != 2 || oh.Files["a.txt"].Revision != 4 || !slices.Equal(grayIDs(oh.Grays), []string{g2.ID}) {
		t.Fatalf("another server's Head = %+v, %v", oh, err)
	}
	snap, err := other.Snapshot(ctx, ref, 4)
	if err != nil || string(snap.Files["a.txt"]) != "ga" || snap.Files["c.txt"] != nil {
		t.Fatalf("Snapshot(4) = %v, %v; want the gray's a.txt and no c.txt", snap.Files, err)
	}
	// Abandon: the head loses the last summary; main stays.
	if _, _, err := st.EndGray(ctx, ref, g2.ID, 2, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
		t.Fatal(err)
	}
	checkHead("after the abandon", 4)
	publish(ctx, t, st, ref, 4, put("b.txt", "b5"))
	checkHead("after the next publish", 5)
}

// TestGrayChangesKeepPublishOneTransaction: a gray change sets the head,
// and the store remembers the head it wrote (with the manifest it had),
// so the publish after it is still one transaction without a read.
func TestGrayChangesKeepPublishOneTransaction(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	st := mustOpen(t, []string{px.Addr()}, nil)
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "1"))
	g, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{put("a.txt", "g")}})
	if err != nil {
		t.Fatal(err)
	}
	multis := px.Requests(zktest.OpMulti)
	publish(ctx, t, st, ref, 1, put("b.txt", "2"))
	if _, err := st.UpdateGray(ctx, ref, g.ID, 1, func(g *configsvc.Gray) error { g.Selector.Percent = 5; return nil }); err != nil {
		t.Fatal(err)
	}
	multisBefore := px.Requests(zktest.OpMulti)
	readsBefore := px.Requests(zktest.OpGetData)
	publish(ctx, t, st, ref, 2, put("b.txt", "3"))
	if r, m := px.Requests(zktest.OpGetData)-readsBefore, px.Requests(zktest.OpMulti)-multisBefore; r != 0 || m != 1 {
		t.Fatalf("a publish after UpdateGray sent %d reads and %d transactions; want 0 and 1", r, m)
	}
	if m := px.Requests(zktest.OpMulti) - multis; m != 3 {
		t.Fatalf("%d transactions for two publishes and an update; want 3", m)
	}
	h, err := st.Head(ctx, ref)
	if err != nil || h.Revision != 3 || len(h.Grays) != 1 || h.Grays[0].Version != 2 || h.Grays[0].Selector.Percent != 5 {
		t.Fatalf("Head = %+v, %v; want revision 3 with the gray at version 2", h, err)
	}
}

// TestGraysOnLayout1Head: a service still in layout 1 takes grays as it is
// (the head keeps its manifest, now with the summaries); the promote moves
// it to layout 2 first, as a publish does, and keeps the other grays.
func TestGraysOnLayout1Head(t *testing.T) {
	srv := shared(t)
	var root string
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { root = c.Root })
	c := rawConn(t, srv.Servers(), "")
	base := root + "/services/orders"
	writeLayout1(t, c, base)
	ctx := testCtx(t)
	ref := configsvc.Service("orders")

	g1, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 3, Changes: []configsvc.Change{put("keep.txt", "gray")}})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 3, Changes: []configsvc.Change{{File: "a.txt", Delete: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if g1.BaseFiles["keep.txt"] != 1 || g2.BaseFiles["a.txt"] != 3 {
		t.Fatalf("base files %v and %v; want keep.txt 1 and a.txt 3 from the layout 1 manifest", g1.BaseFiles, g2.BaseFiles)
	}
	h := readRawHead(t, c, base)
	if h.Since != 0 || len(h.Files) == 0 || h.Files[0] != '{' || len(h.Grays) != 2 {
		t.Fatalf("head after two grays = %+v; want layout 1 still, with 2 summaries", h)
	}
	if hd, err := st.Head(ctx, ref); err != nil || len(hd.Files) != 2 || len(hd.Grays) != 2 {
		t.Fatalf("Head = %+v, %v", hd, err)
	}

	_, rev, err := st.EndGray(ctx, ref, g1.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 3, Author: "t"}})
	if err != nil || rev.Number != 4 {
		t.Fatalf("promote on a layout 1 head = %+v, %v; want revision 4", rev, err)
	}
	h = readRawHead(t, c, base)
	kids, cv := manifestListing(t, c, base)
	if string(h.Files) != `"manifest"` || h.Since != 4 || h.ManifestCversion != cv || !slices.Equal(grayIDs(h.Grays), []string{g2.ID}) ||
		!slices.Equal(kids, []string{"a.txt@3", "keep.txt@4"}) {
		t.Fatalf("after the promote: head %+v, manifest %v (cversion %d); want layout 2 since 4 with g2 left", h, kids, cv)
	}
	snap, err := st.Snapshot(ctx, ref, 4)
	if err != nil || string(snap.Files["keep.txt"]) != "gray" || string(snap.Files["a.txt"]) != "3" {
		t.Fatalf("Snapshot(4) = %v, %v", snap.Files, err)
	}
	if g, err := st.Gray(ctx, ref, g2.ID); err != nil || g.State != configsvc.GrayActive || len(g.MainChanged) != 0 {
		t.Fatalf("Gray(g2) = %+v, %v", g, err)
	}
}
