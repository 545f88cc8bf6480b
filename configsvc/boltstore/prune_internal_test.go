package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// TestPruneFreesStorage checks what the conformance suite cannot see: with
// retention 4, the file keeps exactly the revisions, manifests and blobs the
// retained revisions need, however long the history grows.
func TestPruneFreesStorage(t *testing.T) {
	s, ref := openOrders(t, 4)
	ctx := t.Context()
	// Revision 1 writes keep.txt, never changed again; every revision
	// rewrites a.txt; every third deletes or re-creates b.txt.
	hasB := false
	for n := int64(1); n <= 40; n++ {
		changes := []configsvc.Change{{File: "a.txt", Content: fmt.Appendf(nil, "%d", n)}}
		if n == 1 {
			changes = append(changes, configsvc.Change{File: "keep.txt", Content: []byte("k")})
		}
		if n%3 == 0 {
			if hasB {
				changes = append(changes, configsvc.Change{File: "b.txt", Delete: true})
			} else {
				changes = append(changes, configsvc.Change{File: "b.txt", Content: fmt.Appendf(nil, "b%d", n)})
			}
			hasB = !hasB
		}
		if _, err := s.Publish(ctx, ref, configsvc.Changeset{Base: n - 1, Changes: changes}); err != nil {
			t.Fatal(err)
		}
	}
	counts, blobKeys := revsContents(t, s, "orders")
	// Revisions 37..40 are retained. Blobs needed: a.txt at 37..40,
	// keep.txt at 1, b.txt as changed at 39 (created at 39: 39/3 = 13, odd).
	want := []string{"1/keep.txt", "37/a.txt", "38/a.txt", "39/a.txt", "39/b.txt", "40/a.txt"}
	if counts["revs"] != 4 || counts["mans"] != 4 {
		t.Fatalf("kept %d revisions and %d manifests, want 4 of each", counts["revs"], counts["mans"])
	}
	if fmt.Sprint(blobKeys) != fmt.Sprint(want) {
		t.Fatalf("blobs kept %v, want %v", blobKeys, want)
	}
}

// TestPruneInBatches: with retention 40, compacted revisions are dropped
// five at a time (retention/8), yet every read refuses them at once: the
// history lists exactly the retained revisions, older ones are compacted,
// and the file never holds more than retention + 4 of them.
func TestPruneInBatches(t *testing.T) {
	s, ref := openOrders(t, 40)
	ctx := t.Context()
	stored := func() int {
		var n int
		err := s.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketServices).Bucket([]byte("orders")).Bucket(keyRevs).ForEach(func(k, _ []byte) error {
				if isRevKey(k) {
					n++
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	maxStored := 0
	for n := int64(1); n <= 93; n++ {
		if _, err := s.Publish(ctx, ref, configsvc.Changeset{Base: n - 1, Changes: []configsvc.Change{{File: "a.txt", Content: fmt.Appendf(nil, "%d", n)}}}); err != nil {
			t.Fatal(err)
		}
		maxStored = max(maxStored, stored())
	}
	if maxStored != 44 {
		t.Fatalf("the file held up to %d revisions; want 44 (40 retained, 4 compacted awaiting their batch)", maxStored)
	}
	// 93 published, 54..93 retained; the last batch dropped 1..50.
	if got := stored(); got != 43 {
		t.Fatalf("the file holds %d revisions; want 43 (51..93)", got)
	}
	revs, err := s.Revisions(ctx, ref, 0, 1000)
	if err != nil || len(revs) != 40 || revs[0].Number != 93 || revs[39].Number != 54 {
		t.Fatalf("Revisions = %d entries (%v); want 93 down to 54", len(revs), err)
	}
	for _, n := range []int64{51, 53} { // stored, but compacted
		if _, err := s.Revision(ctx, ref, n); !errors.Is(err, configsvc.ErrCompacted) {
			t.Fatalf("Revision(%d) = %v; want ErrCompacted", n, err)
		}
		if _, _, err := s.File(ctx, ref, "a.txt", n); !errors.Is(err, configsvc.ErrCompacted) {
			t.Fatalf("File(a.txt, %d) = %v; want ErrCompacted", n, err)
		}
	}
	if got, _, err := s.File(ctx, ref, "a.txt", 54); err != nil || string(got) != "54" {
		t.Fatalf("File(a.txt, 54) = %q, %v; want 54", got, err)
	}
}

// revsContents counts what the revs bucket of service svc holds: revision
// records ("revs"), manifests ("mans") and contents, listed as "rev/file".
func revsContents(t *testing.T, s *Store, svc string) (map[string]int, []string) {
	t.Helper()
	counts := map[string]int{}
	var blobKeys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketServices).Bucket([]byte(svc)).Bucket(keyRevs).ForEach(func(k, _ []byte) error {
			switch {
			case isRevKey(k):
				counts["revs"]++
			case k[8] == 'm':
				counts["mans"]++
			default:
				blobKeys = append(blobKeys, fmt.Sprintf("%d/%s", fromU64(k[:8]), k[9:]))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts, blobKeys
}

// openOrders opens a store with the given retention in t's temp dir, with
// service orders created.
func openOrders(t *testing.T, retention int) (*Store, configsvc.Ref) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "sluice.db"), Options{Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ref := configsvc.Service("orders")
	if err := s.Create(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	return s, ref
}
