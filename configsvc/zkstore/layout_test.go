package zkstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
)

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// rawConn is a plain ZooKeeper client for looking at the nodes a store wrote.
func rawConn(t *testing.T, servers []string, digest string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(servers, 4*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if digest != "" {
		if err := c.AddAuth("digest", []byte(digest)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func publish(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, base int64, changes ...configsvc.Change) configsvc.Revision {
	t.Helper()
	rev, err := st.Publish(ctx, ref, configsvc.Changeset{Base: base, Author: "t", Message: fmt.Sprint("rev ", base+1), Changes: changes})
	if err != nil {
		t.Fatalf("Publish(%s, base %d): %v", ref, base, err)
	}
	return rev
}

func put(file, content string) configsvc.Change {
	return configsvc.Change{File: file, Content: []byte(content)}
}

// TestLayout checks the documented node tree (docs/zookeeper-layout.md).
func TestLayout(t *testing.T) {
	srv := shared(t)
	root := "/layout-test"
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	svc, grp := configsvc.Service("orders"), configsvc.Group("redis-common")
	for _, ref := range []configsvc.Ref{svc, grp} {
		if err := st.Create(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	publish(ctx, t, st, svc, 0, put("db.yaml", "port: 1\n"), put("f.json", `{}`))
	publish(ctx, t, st, svc, 1, put("db.yaml", "port: 2\n"))
	if err := st.Link(ctx, "orders", "redis-common"); err != nil {
		t.Fatal(err)
	}
	c := rawConn(t, srv.Servers(), "")

	t.Run("Nodes", func(t *testing.T) {
		for _, p := range []string{
			root + "/services/orders",
			root + "/services/orders/head",
			root + "/services/orders/revisions/0000000001",
			root + "/services/orders/revisions/0000000002",
			root + "/services/orders/content/0000000001/db.yaml",
			root + "/services/orders/content/0000000001/f.json",
			root + "/services/orders/content/0000000002/db.yaml",
			root + "/services/orders/manifest/db.yaml@2",
			root + "/services/orders/manifest/f.json@1",
			root + "/services/orders/links/redis-common",
			root + "/shared/redis-common/head",
			root + "/shared/redis-common/users/orders",
			root + "/instances/orders",
			root + "/records",
			root + "/generation",
		} {
			if ok, _, err := c.Exists(p); err != nil || !ok {
				t.Errorf("node %s: exists=%v err=%v", p, ok, err)
			}
		}
	})

	t.Run("HeadJSON", func(t *testing.T) {
		data, _, err := c.Get(root + "/services/orders/head")
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Revision int64    `json:"revision"`
			Files    string   `json:"files"`
			Count    int      `json:"count"`
			Since    int64    `json:"since"`
			Links    []string `json:"links"`
			First    int64    `json:"first"`
			Epoch    string   `json:"epoch"`
			Gen      string   `json:"generation"`
			PID      string   `json:"publish_id"`
		}
		if err := json.Unmarshal(data, &h); err != nil {
			t.Fatal(err)
		}
		gdata, _, err := c.Get(root + "/generation")
		if err != nil {
			t.Fatal(err)
		}
		var g configsvc.StoreGeneration
		if err := json.Unmarshal(gdata, &g); err != nil || g.ID == "" || g.ID != h.Gen {
			t.Fatalf("generation node %s (%v), head generation %q: want the same id", gdata, err, h.Gen)
		}
		rev2, err := st.Revision(ctx, svc, 2)
		if err != nil || h.PID == "" || h.PID != rev2.PublishID {
			t.Fatalf("head publish id %q, revision 2's %q (%v): want the same", h.PID, rev2.PublishID, err)
		}
		if ok, _, err := c.Exists(root + "/services/orders/epoch-" + h.Epoch); h.Epoch == "" || err != nil || !ok {
			t.Fatalf("head epoch %q: its node exists=%v (%v); want both", h.Epoch, ok, err)
		}
		if h.Revision != 2 || h.Files != "manifest" || h.Count != 2 || h.Since != 1 || !slices.Equal(h.Links, []string{"redis-common"}) || h.First != 1 {
			t.Fatalf("head node = %s", data)
		}
	})

	t.Run("ManifestJSON", func(t *testing.T) {
		data, _, err := c.Get(root + "/services/orders/manifest/db.yaml@2")
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			SHA256 string `json:"sha256"`
			Size   int64  `json:"size"`
		}
		if err := json.Unmarshal(data, &m); err != nil || m.SHA256 != configsvc.Checksum([]byte("port: 2\n")) || m.Size != 8 {
			t.Fatalf("manifest node = %s (%v)", data, err)
		}
		kids, _, err := c.Children(root + "/services/orders/manifest")
		slices.Sort(kids)
		if err != nil || !slices.Equal(kids, []string{"db.yaml@2", "f.json@1"}) {
			t.Fatalf("manifest = %v, %v; want db.yaml@2 and f.json@1", kids, err)
		}
	})

	t.Run("RevisionJSON", func(t *testing.T) {
		data, _, err := c.Get(root + "/services/orders/revisions/0000000002")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Revision  int64            `json:"revision"`
			PublishID string           `json:"publish_id"`
			Parent    string           `json:"parent"`
			Files     map[string]int64 `json:"files"`
			Changes   []struct {
				File string `json:"file"`
				Prev int64  `json:"prev"`
			} `json:"changes"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		rev1, err := st.Revision(ctx, svc, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.Revision != 2 || len(r.PublishID) != 32 || r.Parent != rev1.PublishID || r.Files != nil || len(r.Changes) != 1 || r.Changes[0].File != "db.yaml" || r.Changes[0].Prev != 1 {
			t.Fatalf("revision node = %s (revision 1's publish id %s)", data, rev1.PublishID)
		}
	})

	t.Run("RecordsAndLogs", func(t *testing.T) {
		rs := st.Records()
		if err := rs.Put(ctx, "tokens", "t1", []byte("token")); err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Append(ctx, "audit", []byte(`{"action":"x"}`), 0); err != nil {
			t.Fatal(err)
		}
		if data, _, err := c.Get(root + "/records/tokens/t1"); err != nil || string(data) != "token" {
			t.Fatalf("record node = %q, %v", data, err)
		}
		counter, _, err := c.Get(root + "/logs/audit")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Next, Low, Pruned int64
			Last              string
		}
		if err := json.Unmarshal(counter, &doc); err != nil || doc.Next != 1 || doc.Low != 1 || doc.Pruned != 1 || len(doc.Last) != 24 {
			t.Fatalf("log node = %s, %v", counter, err)
		}
		entry, _, err := c.Get(root + "/logs/audit/0000000000000000001")
		if err != nil {
			t.Fatal(err)
		}
		const magic = "\x00sluice-log-entry\x00"
		if want := magic + doc.Last + `{"action":"x"}`; string(entry) != want {
			t.Fatalf("log entry node = %q, want %q (magic, append id, bytes)", entry, want)
		}
	})

	t.Run("DeleteRemovesTree", func(t *testing.T) {
		err := st.Delete(ctx, grp)
		if !errors.Is(err, configsvc.ErrConflict) {
			t.Fatalf("Delete of a linked group = %v, want ErrConflict", err)
		}
		if err := st.Delete(ctx, svc); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{root + "/services/orders", root + "/instances/orders", root + "/shared/redis-common/users/orders"} {
			if ok, _, _ := c.Exists(p); ok {
				t.Errorf("node %s still exists after Delete", p)
			}
		}
		if err := st.Delete(ctx, grp); err != nil {
			t.Fatalf("Delete of the unlinked group: %v", err)
		}
	})
}

// TestRetentionPrunesNodes: old revision nodes and content no retained
// revision uses are physically removed; content still in use is kept.
func TestRetentionPrunesNodes(t *testing.T) {
	srv := shared(t)
	root := "/retention-test"
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root; c.Retention = 3 })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("keep.txt", "from 1"), put("a.txt", "1"))
	for n := int64(2); n <= 10; n++ {
		publish(ctx, t, st, ref, n-1, put("a.txt", fmt.Sprint(n)))
	}
	c := rawConn(t, srv.Servers(), "")
	// Pruning runs in the background, right after each publish.
	wantRevs := []string{"0000000008", "0000000009", "0000000010"}
	wantContent := []string{"0000000001/keep.txt", "0000000008/a.txt", "0000000009/a.txt", "0000000010/a.txt"}
	var revs, content []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if revs, _, err = c.Children(root + "/services/orders/revisions"); err != nil {
			t.Fatal(err)
		}
		dirs, _, err := c.Children(root + "/services/orders/content")
		if err != nil {
			t.Fatal(err)
		}
		content = content[:0]
		for _, d := range dirs {
			files, _, err := c.Children(root + "/services/orders/content/" + d)
			if err != nil && !errors.Is(err, zk.ErrNoNode) { // pruned meanwhile
				t.Fatal(err)
			}
			for _, f := range files {
				content = append(content, d+"/"+f)
			}
		}
		slices.Sort(revs)
		slices.Sort(content)
		if slices.Equal(revs, wantRevs) && slices.Equal(content, wantContent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after pruning: revision nodes %v, want %v; content nodes %v, want %v", revs, wantRevs, content, wantContent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, meta, err := st.File(ctx, ref, "keep.txt", 8)
	if err != nil || string(got) != "from 1" || meta.Revision != 1 {
		t.Fatalf("File(keep.txt, 8) = %q rev %d, %v", got, meta.Revision, err)
	}
	if _, err := st.Revision(ctx, ref, 7); !errors.Is(err, configsvc.ErrCompacted) {
		t.Fatalf("Revision(7) = %v, want ErrCompacted", err)
	}
}

// TestDigestACL: with Digest set, nodes are closed to anonymous clients;
// the ReadOnlyDigest identity can read everything and register instances
// but cannot publish.
func TestDigestACL(t *testing.T) {
	srv := shared(t)
	root := "/acl-test"
	const writer, reader = "sluice:s3cret", "sdk:r3ad"
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root; c.Digest = writer; c.ReadOnlyDigest = reader })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "1"))

	anon := rawConn(t, srv.Servers(), "")
	if _, _, err := anon.Get(root + "/services/orders/head"); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("anonymous read of head = %v, want ErrNoAuth", err)
	}

	sdk := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root; c.Digest = reader })
	if h, err := sdk.Head(ctx, ref); err != nil || h.Revision != 1 {
		t.Fatalf("read-only Head = %d, %v", h.Revision, err)
	}
	if _, err := sdk.Publish(ctx, ref, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("a.txt", "2")}}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("read-only Publish = %v, want a permission error", err)
	}
	l, err := sdk.Register(ctx, configsvc.Instance{Service: "orders", ID: "o-1", Addr: "127.0.0.1:1", Status: configsvc.StatusStarting})
	if err != nil {
		t.Fatalf("read-only Register: %v", err)
	}
	defer l.Close()
	list, err := st.Instances(ctx, "orders")
	if err != nil || len(list) != 1 || list[0].ID != "o-1" {
		t.Fatalf("Instances = %v, %v", list, err)
	}
}

// TestLogWrittenUnderRecords: a log an older version kept under
// records/{collection} (the counter in the collection node, entries of the
// caller's bytes alone) stays readable there and grows there.
func TestLogWrittenUnderRecords(t *testing.T) {
	srv := shared(t)
	root := "/legacy-log-test"
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	c := rawConn(t, srv.Servers(), "")
	acl := zk.WorldACL(zk.PermAll)
	if _, err := c.Create(root+"/records/audit", []byte(`{"next":2,"low":1,"last":"00112233445566778899aabb"}`), 0, acl); err != nil {
		t.Fatal(err)
	}
	for i, data := range []string{"old 1", "old 2"} {
		if _, err := c.Create(fmt.Sprintf("%s/records/audit/%019d", root, i+1), []byte(data), 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.Records().Append(ctx, "audit", []byte("new 3"), 0)
	if err != nil || n != 3 {
		t.Fatalf("Append to the old log = %d, %v; want 3", n, err)
	}
	list, err := st.Records().Scan(ctx, "audit", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.ID+"="+string(r.Data))
	}
	if want := []string{"3=new 3", "2=old 2", "1=old 1"}; !slices.Equal(got, want) {
		t.Fatalf("Scan = %v, want %v", got, want)
	}
	if ok, _, _ := c.Exists(root + "/logs/audit"); ok {
		t.Fatal("the old log was started afresh under logs/")
	}
}

// TestDeleteFinishesHalfDeleted: a Delete interrupted after its first
// transaction leaves a ref without head; Head reports it gone, a second
// Delete finishes the job and the name can be created again.
func TestDeleteFinishesHalfDeleted(t *testing.T) {
	srv := shared(t)
	root := "/half-deleted-test"
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "1"))
	c := rawConn(t, srv.Servers(), "")
	if err := c.Delete(root+"/services/orders/head", -1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Head(ctx, ref); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("Head of a half-deleted service = %v, want ErrNotFound", err)
	}
	if err := st.Create(ctx, ref); !errors.Is(err, configsvc.ErrConflict) {
		t.Fatalf("Create over a half-deleted service = %v, want ErrConflict", err)
	}
	if err := st.Delete(ctx, ref); err != nil {
		t.Fatalf("Delete of a half-deleted service: %v", err)
	}
	if ok, _, _ := c.Exists(root + "/services/orders"); ok {
		t.Fatal("service node still exists after Delete")
	}
	if err := st.Create(ctx, ref); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	if err := st.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, ref); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
}

// TestHeadCarriesSmallLatestRevision: a small revision travels in the head
// node, so a watcher gets it (with content) from the read that re-arms its
// watch — proven by removing the revision and content nodes before the
// watcher reads. A revision over the inline bound is not carried and is read
// from its own nodes.
func TestHeadCarriesSmallLatestRevision(t *testing.T) {
	srv := shared(t)
	root := "/inline-test"
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "one"))
	publish(ctx, t, st, ref, 1, put("a.txt", "two"), put("b.txt", "bee"))

	c := rawConn(t, srv.Servers(), "")
	base := root + "/services/orders"
	for _, p := range []string{base + "/content/0000000002/a.txt", base + "/content/0000000002/b.txt", base + "/revisions/0000000002"} {
		if err := c.Delete(p, -1); err != nil {
			t.Fatalf("delete %s: %v", p, err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev := <-st.Watch(wctx, ref, 1)
	if ev.Err != nil || ev.Revision == nil || ev.Revision.Number != 2 || len(ev.Revision.Changes) != 2 ||
		string(ev.Revision.Changes[0].Content) != "two" || string(ev.Revision.Changes[1].Content) != "bee" || ev.Revision.Message != "rev 2" {
		t.Fatalf("watch event = %+v; want revision 2 from the head", ev)
	}

	big := strings.Repeat("x", 70<<10)
	publish(ctx, t, st, ref, 2, put("a.txt", big))
	data, _, err := c.Get(base + "/head")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"latest"`) {
		t.Fatalf("head carries a 70 KiB revision (%d bytes); the bound is 64 KiB", len(data))
	}
	ev = <-st.Watch(wctx, ref, 2)
	if ev.Err != nil || ev.Revision == nil || ev.Revision.Number != 3 || string(ev.Revision.Changes[0].Content) != big {
		t.Fatalf("watch of the large revision = err %v, revision %v", ev.Err, ev.Revision != nil)
	}
}
