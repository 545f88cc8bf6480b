package zkstore_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
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
