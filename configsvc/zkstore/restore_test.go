package zkstore_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestFaultRestoredServerBehindTheSession restores a standalone ZooKeeper
// from a backup while a store is connected. The store's session has seen
// transactions the restored server does not have, so the server refuses to
// resume it ("client has seen zxid … our last zxid is …") and keeps
// refusing for as long as the restored server stays behind: before, the
// store retried that session forever. It must give the session up, open a
// new one, read the restored state and register its instance again.
func TestFaultRestoredServerBehindTheSession(t *testing.T) {
	srv := zktest.Start(t)
	st := mustOpen(t, srv.Servers(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publishN := func(from, n int) {
		for i := from; i < from+n; i++ {
			if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: int64(i - 1), Author: "t",
				Changes: []configsvc.Change{{File: "a.txt", Content: []byte{byte('0' + i%10)}}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishN(1, 2)
	data := filepath.Join(srv.Dir(), "data", "version-2")
	backup := filepath.Join(t.TempDir(), "version-2")
	srv.Stop()
	if out, err := exec.Command("cp", "-a", data, backup).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v: %s", err, out)
	}
	srv.Restart()
	publishN(3, 20)
	lease, err := st.Register(ctx, configsvc.Instance{Service: "orders", ID: "orders-1", Addr: "127.0.0.1:9", Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	srv.Stop()
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", backup, data).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v: %s", err, out)
	}
	srv.Restart()
	start := time.Now()
	for {
		h, err := st.Head(ctx, ref)
		if err == nil {
			if h.Revision != 2 {
				t.Fatalf("after the restore the head is revision %d, want the backup's 2", h.Revision)
			}
			t.Logf("the store read the restored head %v after the restart", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 40*time.Second {
			t.Fatalf("no read of the restored store within 40s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		list, err := st.Instances(ctx, "orders")
		if err == nil && len(list) == 1 && list[0].ID == "orders-1" {
			return
		}
		if time.Since(start) > 40*time.Second {
			t.Fatalf("the instance is not registered again on the new session: %v, %v", list, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFaultRestoredManifestMetadataNotStale: a store remembers the data of
// manifest nodes (a file's checksum and size), which never change within
// one history. A restore issues revision numbers again for other content,
// so a node of the same name, a.txt@N, comes back with other data. The
// store's Head must show the new data: after a generation bump (the
// remembered data is keyed by generation), and, without a bump, once a
// watch of the store finds the history rewritten. Otherwise Head answers
// the checksum and size of the content the restore took away.
func TestFaultRestoredManifestMetadataNotStale(t *testing.T) {
	srv := zktest.Start(t)
	var root string
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { root = c.Root })
	// Another server publishes, so that st knows of the new content only
	// from what it reads.
	other := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish := func(base int64, content string) configsvc.Revision {
		t.Helper()
		var rev configsvc.Revision
		// Right after a restart the session may still be coming back.
		testkit.Eventually(t, 40*time.Second, "publish "+content, func() (err error) {
			rev, err = other.Publish(ctx, ref, configsvc.Changeset{Base: base, Author: "t",
				Changes: []configsvc.Change{{File: "a.txt", Content: []byte(content)}}})
			if errors.Is(err, configsvc.ErrUnavailable) {
				return err
			}
			if err != nil {
				t.Fatal(err)
			}
			return nil
		})
		return rev
	}
	headShows := func(content string) bool {
		t.Helper()
		var h configsvc.Head
		testkit.Eventually(t, 40*time.Second, "a read of the head", func() (err error) {
			h, err = st.Head(ctx, ref)
			if err != nil && !errors.Is(err, configsvc.ErrUnavailable) {
				t.Fatal(err)
			}
			return err
		})
		m := h.Files["a.txt"]
		return m.SHA256 == configsvc.Checksum([]byte(content)) && m.Size == int64(len(content))
	}
	data := filepath.Join(srv.Dir(), "data", "version-2")
	takeBackup := func() string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "version-2")
		srv.Stop()
		if out, err := exec.Command("cp", "-a", data, dir).CombinedOutput(); err != nil {
			t.Fatalf("backup: %v: %s", err, out)
		}
		srv.Restart()
		return dir
	}
	restore := func(backup string, head int64) {
		t.Helper()
		srv.Stop()
		if err := os.RemoveAll(data); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", backup, data).CombinedOutput(); err != nil {
			t.Fatalf("restore: %v: %s", err, out)
		}
		srv.Restart()
		testkit.Eventually(t, 40*time.Second, "a read of the restored head", func() error {
			h, err := st.Head(ctx, ref)
			if err == nil && h.Revision != head {
				t.Fatalf("after the restore the head is revision %d, want the backup's %d", h.Revision, head)
			}
			return err
		})
	}

	// Restored, then bumped.
	publish(0, "one")
	atOne := takeBackup()
	publish(1, "two, taken away by the restore")
	if !headShows("two, taken away by the restore") {
		t.Fatal("Head does not show revision 2's file")
	}
	restore(atOne, 1)
	g, err := st.BumpGeneration(ctx, "restored")
	if err != nil {
		t.Fatal(err)
	}
	publish(1, "2 again")
	if !headShows("2 again") {
		t.Fatal("after a restore and a bump, Head shows the checksum and size a.txt@2 had before the restore")
	}

	// Restored without a bump: a watch holding revision 3 finds the
	// reissued 3.
	atTwo := takeBackup()
	held := publish(2, "three, taken away by the restore")
	if !headShows("three, taken away by the restore") {
		t.Fatal("Head does not show revision 3's file")
	}
	restore(atTwo, 2)
	publish(2, "3 again")
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ev := <-st.Watch(wctx, ref, 3, configsvc.Expect(configsvc.Identity{Generation: g.ID, PublishID: held.PublishID}))
	if !errors.Is(ev.Err, configsvc.ErrRewritten) {
		t.Fatalf("watch event %+v, want ErrRewritten", ev)
	}
	if !headShows("3 again") {
		t.Fatal("after a watch found the history rewritten, Head shows the checksum and size a.txt@3 had before the restore")
	}
}
