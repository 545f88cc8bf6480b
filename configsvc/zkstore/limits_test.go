package zkstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

// TestTransactionSize: a changeset inside configsvc's limits either fits in
// one ZooKeeper transaction (jute.maxbuffer, 1 MiB) or is refused with a
// LimitError naming the transaction limit, writing nothing; it never
// reaches ZooKeeper oversized (which would drop the connection).
func TestTransactionSize(t *testing.T) {
	srv := shared(t)
	st := mustOpen(t, srv.Servers(), nil)
	ctx := testCtx(t)
	changeset := func(files, nameLen int) []configsvc.Change {
		per := configsvc.MaxChangesetSize / files
		var cs []configsvc.Change
		for i := range files {
			name := fmt.Sprintf("%03d", i) + strings.Repeat("n", nameLen-7) + ".txt"
			cs = append(cs, configsvc.Change{File: name, Content: bytes.Repeat([]byte("x"), per)})
		}
		return cs
	}
	tests := []struct {
		name     string
		files    int
		nameLen  int
		wantFits bool
	}{
		{name: "20 files, short names", files: 20, nameLen: 12, wantFits: true},
		{name: "200 files, short names", files: 200, nameLen: 12, wantFits: true},
		// Just under the store's estimate of the limit: ZooKeeper must accept it.
		{name: "115 files, 128-byte names", files: 115, nameLen: 128, wantFits: true},
		{name: "200 files, 128-byte names", files: 200, nameLen: 128, wantFits: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 63-byte service names make the node paths as long as they get.
			ref := configsvc.Service(fmt.Sprintf("s%062d", i))
			if err := st.Create(ctx, ref); err != nil {
				t.Fatal(err)
			}
			rev, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 0, Changes: changeset(tt.files, tt.nameLen)})
			if tt.wantFits {
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				snap, err := st.Snapshot(ctx, ref, rev.Number)
				if err != nil || len(snap.Files) != tt.files {
					t.Fatalf("Snapshot: %d files, %v", len(snap.Files), err)
				}
				return
			}
			var le *configsvc.LimitError
			if !errors.As(err, &le) || !errors.Is(err, configsvc.ErrTooLarge) || !strings.Contains(le.What, "ZooKeeper transaction") {
				t.Fatalf("Publish = %v, want a LimitError on the ZooKeeper transaction", err)
			}
			if h, err := st.Head(ctx, ref); err != nil || h.Revision != 0 {
				t.Fatalf("head after refused publish = %d, %v; want 0", h.Revision, err)
			}
		})
	}
}
