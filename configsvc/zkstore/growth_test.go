package zkstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestPublishSizeIndependentOfServiceSize: the transaction of a one-byte
// change is as large in a service of 2,000 files as in one of 10 (layout 1
// carried the whole manifest in the head and in every revision node, so a
// service of a few thousand files could not publish at all). The sizes are
// measured on the wire, by the proxy.
func TestPublishSizeIndependentOfServiceSize(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	st := mustOpen(t, []string{px.Addr()}, nil)
	ctx := testCtx(t)
	size := map[int]int64{}
	for _, files := range []int{10, 2000} {
		ref := configsvc.Service(fmt.Sprintf("s%04d", files))
		if err := st.Create(ctx, ref); err != nil {
			t.Fatal(err)
		}
		var base int64
		for i := 0; i < files; i += configsvc.MaxFilesPerChangeset {
			var cs []configsvc.Change
			for j := i; j < min(i+configsvc.MaxFilesPerChangeset, files); j++ {
				cs = append(cs, put(fmt.Sprintf("file-%04d.yaml", j), "k: v\n"))
			}
			publish(ctx, t, st, ref, base, cs...)
			base++
		}
		publish(ctx, t, st, ref, base, put("file-0000.yaml", "k: w\n"))
		size[files] = px.LastMultiSize()
	}
	t.Logf("transaction of a 1-byte change: %d bytes in a 10-file service, %d bytes in a 2,000-file service", size[10], size[2000])
	if size[2000] > size[10]+32 {
		t.Fatalf("a 1-byte change costs %d bytes in a 2,000-file service and %d in a 10-file one; want the same (±32)", size[2000], size[10])
	}
}

// TestHeadLatestBoundAfterEncoding: content that JSON escapes (here '<',
// six bytes each once encoded) must not make the head carry more than its
// inline bound: the bound applies to the encoded document. The revision
// still reaches a watcher, from its own nodes.
func TestHeadLatestBoundAfterEncoding(t *testing.T) {
	srv := shared(t)
	var root string
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { root = c.Root })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("<", 60<<10)
	publish(ctx, t, st, ref, 0, put("page.txt", content))
	c := rawConn(t, srv.Servers(), "")
	data, _, err := c.Get(root + "/services/orders/head")
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 64<<10 {
		t.Fatalf("head node is %d bytes; the inline bound is 64 KiB after encoding", len(data))
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev := <-st.Watch(wctx, ref, 0)
	if ev.Err != nil || ev.Revision == nil || ev.Revision.Number != 1 || string(ev.Revision.Changes[0].Content) != content {
		t.Fatalf("watch event = err %v, revision %v", ev.Err, ev.Revision != nil)
	}
}

// TestMigrateFromLayout1: a service written by an older Sluice (manifest in
// the head and in every revision node, content nodes flat under content/)
// is read as it is; its next publish moves it to layout 2; every retained
// revision reads back the same before and after; and pruning across the
// boundary removes exactly the content no retained revision uses.
func TestMigrateFromLayout1(t *testing.T) {
	srv := shared(t)
	var root string
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { root = c.Root; c.Retention = 3 })
	c := rawConn(t, srv.Servers(), "")
	writeLayout1(t, c, root+"/services/orders")
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	want := map[int64]map[string][]byte{
		1: files("a.txt", "1", "keep.txt", "kept"),
		2: files("a.txt", "2", "keep.txt", "kept", "gone.txt", "g"),
		3: files("a.txt", "3", "keep.txt", "kept"),
	}
	check := func(when string, revs ...int64) {
		t.Helper()
		for _, n := range revs {
			snap, err := st.Snapshot(ctx, ref, n)
			if err != nil || !maps.EqualFunc(snap.Files, want[n], bytes.Equal) {
				t.Fatalf("%s: Snapshot(%d) = %v, %v; want %v", when, n, snap.Files, err, want[n])
			}
			for f, content := range want[n] {
				got, _, err := st.File(ctx, ref, f, n)
				if err != nil || string(got) != string(content) {
					t.Fatalf("%s: File(%s, %d) = %q, %v; want %q", when, f, n, got, err, content)
				}
			}
		}
	}
	check("layout 1", 1, 2, 3)
	h, err := st.Head(ctx, ref)
	if err != nil || h.Revision != 3 || len(h.Files) != 2 || h.Files["keep.txt"].Revision != 1 {
		t.Fatalf("Head = %+v, %v", h, err)
	}

	publish(ctx, t, st, ref, 3, put("a.txt", "4"))
	want[4] = files("a.txt", "4", "keep.txt", "kept")
	data, _, err := c.Get(root + "/services/orders/head")
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Files json.RawMessage `json:"files"`
		Since int64           `json:"since"`
		Count int             `json:"count"`
	}
	if err := json.Unmarshal(data, &head); err != nil || string(head.Files) != `"manifest"` || head.Since != 4 || head.Count != 2 {
		t.Fatalf("head after the first publish = %s (%v); want layout 2 since revision 4", data, err)
	}
	kids, _, err := c.Children(root + "/services/orders/manifest")
	slices.Sort(kids)
	if err != nil || !slices.Equal(kids, []string{"a.txt@4", "keep.txt@1"}) {
		t.Fatalf("manifest = %v, %v", kids, err)
	}
	check("after the move", 2, 3, 4) // retention 3: revision 1 is compacted now

	for n := int64(5); n <= 8; n++ {
		publish(ctx, t, st, ref, n-1, put("a.txt", fmt.Sprint(n)))
		want[n] = files("a.txt", fmt.Sprint(n), "keep.txt", "kept")
	}
	wantContent := []string{"0000000001.keep.txt", "0000000006/a.txt", "0000000007/a.txt", "0000000008/a.txt"}
	testkit.Eventually(t, 10*time.Second, "pruning across the move", func() error {
		if content := contentNodes(t, c, root+"/services/orders/content"); !slices.Equal(content, wantContent) {
			return fmt.Errorf("content nodes %v, want %v", content, wantContent)
		}
		return nil
	})
	check("after pruning", 6, 7, 8)
}

// writeLayout1 writes service orders as Sluice wrote it before layout 2:
// revision 1 writes a.txt and keep.txt, 2 writes a.txt and gone.txt, 3
// writes a.txt and deletes gone.txt.
func writeLayout1(t *testing.T, c *zk.Conn, base string) {
	t.Helper()
	acl := zk.WorldACL(zk.PermAll)
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	meta := func(name string, rev int64, content string) map[string]any {
		return map[string]any{"name": name, "revision": rev, "sha256": configsvc.Checksum([]byte(content)), "size": len(content), "format": "text"}
	}
	mk := func(p string, v any) {
		t.Helper()
		var data []byte
		switch d := v.(type) {
		case nil:
		case string:
			data = []byte(d)
		default:
			data, _ = json.Marshal(d)
		}
		if _, err := c.Create(p, data, 0, acl); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	mk(base, map[string]any{"kind": "service", "name": "orders", "created": now, "pruned": 1})
	for _, d := range []string{"revisions", "content", "links"} {
		mk(base+"/"+d, nil)
	}
	mk(base+"/epoch-0123456789abcdef", nil)
	revs := []map[string]any{
		{"changes": []map[string]any{{"file": "a.txt"}, {"file": "keep.txt"}}, "files": map[string]int64{"a.txt": 1, "keep.txt": 1}},
		{"changes": []map[string]any{{"file": "a.txt"}, {"file": "gone.txt"}}, "files": map[string]int64{"a.txt": 2, "keep.txt": 1, "gone.txt": 2}},
		{"changes": []map[string]any{{"file": "a.txt"}, {"file": "gone.txt", "delete": true}}, "files": map[string]int64{"a.txt": 3, "keep.txt": 1}},
	}
	for i, r := range revs {
		n := int64(i + 1)
		r["revision"], r["author"], r["time"], r["message"], r["publish_id"] = n, "old", now.Add(time.Duration(n)*time.Second), fmt.Sprint("rev ", n), fmt.Sprintf("%032d", n)
		mk(fmt.Sprintf("%s/revisions/%010d", base, n), r)
	}
	for p, content := range map[string]string{"0000000001.a.txt": "1", "0000000001.keep.txt": "kept", "0000000002.a.txt": "2",
		"0000000002.gone.txt": "g", "0000000003.a.txt": "3"} {
		mk(base+"/content/"+p, content)
	}
	mk(base+"/head", map[string]any{"revision": 3, "first": 1, "epoch": "0123456789abcdef", "updated": now, "author": "old",
		"files": map[string]any{"a.txt": meta("a.txt", 3, "3"), "keep.txt": meta("keep.txt", 1, "kept")}})
}

// contentNodes lists the content nodes under dir, flat (layout 1) and in
// revision directories (layout 2, as "dir/file"), sorted.
func contentNodes(t *testing.T, c *zk.Conn, dir string) []string {
	t.Helper()
	kids, _, err := c.Children(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range kids {
		if strings.Contains(k, ".") {
			out = append(out, k)
			continue
		}
		files, _, err := c.Children(dir + "/" + k)
		if err != nil && !errors.Is(err, zk.ErrNoNode) { // pruned meanwhile
			t.Fatal(err)
		}
		for _, f := range files {
			out = append(out, k+"/"+f)
		}
	}
	slices.Sort(out)
	return out
}

// files turns name/content pairs into a snapshot's file map.
func files(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

// TestPruneAfterRecreateElsewhere: a server that pruned a service keeps no
// stale idea of its progress once another server deletes the service and
// creates it again: the new incarnation's history is pruned like any other.
func TestPruneAfterRecreateElsewhere(t *testing.T) {
	srv := shared(t)
	root := fmt.Sprintf("/sluice-test/%d", roots.Add(1))
	a := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root; c.Retention = 4 })
	b := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root; c.Retention = 4 })
	c := rawConn(t, srv.Servers(), "")
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	stored := func() int {
		kids, _, err := c.Children(root + "/services/orders/revisions")
		if err != nil {
			t.Fatal(err)
		}
		return len(kids)
	}
	waitStored := func(max int) {
		t.Helper()
		testkit.Eventually(t, 10*time.Second, "pruning", func() error {
			if n := stored(); n > max {
				return fmt.Errorf("%d revisions stored, want at most %d (retention 4 and a batch)", n, max)
			}
			return nil
		})
	}
	if err := a.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	for n := int64(0); n < 60; n++ {
		publish(ctx, t, a, ref, n, put("a.txt", fmt.Sprint(n)))
	}
	waitStored(4 + 1)

	if err := b.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	for n := int64(0); n < 40; n++ {
		publish(ctx, t, a, ref, n, put("a.txt", fmt.Sprint(n)))
	}
	waitStored(4 + 1)
}

// TestListingBounds: with every collection at its bound and every name at
// its longest, a listing stays well under ZooKeeper's 1 MiB packet
// (docs/zookeeper-layout.md, "Children per node"): raising a limit past
// that fails here.
func TestListingBounds(t *testing.T) {
	const packet = 1<<20 - 1
	for _, c := range []struct {
		node     string
		children int
		nameLen  int
	}{
		{"services/, shared/, users/", configsvc.MaxServices, configsvc.MaxNameLen},
		{"manifest/", configsvc.MaxFilesPerService, configsvc.MaxFileNameLen + 1 + 19},
		{"revisions/", configsvc.MaxRetention + 16, 10},
		{"content/", configsvc.MaxRetention + 16 + configsvc.MaxFilesPerService, 10},
		{"content/{N}/", configsvc.MaxFilesPerChangeset, configsvc.MaxFileNameLen},
		{"links/", configsvc.MaxLinksPerService, configsvc.MaxNameLen},
		{"grays/", configsvc.MaxActiveGrays + configsvc.MaxEndedGrays + 1, len("g-") + 12},
		{"grays/{id}/", configsvc.MaxFilesPerChangeset, configsvc.MaxFileNameLen},
		{"instances/{svc}/", configsvc.MaxInstancesPerService, configsvc.MaxFileNameLen},
		{"records/{collection}/", configsvc.MaxRecordsPerCollection, configsvc.MaxFileNameLen},
	} {
		// Each name is a length-prefixed string; the answer has a header
		// and the parent's stat. Room is left for writers counting at the
		// same moment (a third more).
		size := c.children*(4+c.nameLen)*4/3 + 1024
		if size > packet {
			t.Errorf("%s: %d children of %d bytes list in about %d bytes, over %d", c.node, c.children, c.nameLen, size, packet)
		}
	}
}
