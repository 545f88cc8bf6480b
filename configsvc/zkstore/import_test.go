package zkstore_test

import (
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
)

// TestFaultImportBaseOverInterruptedImportLeftovers: an import killed
// after writing a base's content and manifest nodes, but before moving the
// head, leaves them behind (maybe of another archive: other content under
// the same paths). ImportBase run again writes its own content, not
// theirs.
func TestFaultImportBaseOverInterruptedImportLeftovers(t *testing.T) {
	srv := shared(t)
	var root string
	st := mustOpen(t, []string{srv.Addr()}, func(c *zkstore.Config) { root = c.Root })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	raw := rawConn(t, []string{srv.Addr()}, "")
	base := root + "/services/orders"
	for _, p := range []struct{ path, data string }{
		{base + "/content/0000000003", ""},
		{base + "/content/0000000003/a.yaml", "left: behind\n"},
		{base + "/content/0000000002", ""},
		{base + "/content/0000000002/stray.txt", "stray"},
		{base + "/manifest/a.yaml@3", `{"sha256":"00","size":13}`},
		{base + "/manifest/stray.txt@2", `{"sha256":"00","size":5}`},
	} {
		if _, err := raw.Create(p.path, []byte(p.data), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p.path, err)
		}
	}
	content := []byte("pool: 3\n")
	meta := configsvc.FileMeta{Name: "a.yaml", Revision: 3, SHA256: configsvc.Checksum(content), Size: int64(len(content))}
	rev := configsvc.Revision{Number: 4, Author: "a", Message: "m", Changes: []configsvc.Change{{File: "gone.txt", Delete: true}}, PublishID: "p4"}
	if err := st.ImportBase(ctx, ref, rev, map[string]configsvc.FileMeta{"a.yaml": meta}, map[string][]byte{"a.yaml": content}); err != nil {
		t.Fatalf("ImportBase over leftovers: %v", err)
	}
	snap, err := st.Snapshot(ctx, ref, 0)
	if err != nil || len(snap.Files) != 1 || string(snap.Files["a.yaml"]) != string(content) {
		t.Fatalf("Snapshot after ImportBase over leftovers = %q, %v; want only a.yaml %q", snap.Files, err, content)
	}
	if ok, _, _ := raw.Exists(base + "/content/0000000002/stray.txt"); ok {
		t.Fatal("a leftover content node of another archive is still there")
	}
}
