package boltstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// TestOpenUpgradesFormat1: a file written in format 1 (manifests and
// contents in buckets of their own) opens as format 2 without being
// rewritten: its history reads back, publishes go on, and pruning removes
// the old entries where they are.
func TestOpenUpgradesFormat1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ref := configsvc.Service("orders")
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	changes := func(n int64) []configsvc.Change {
		c := []configsvc.Change{{File: "a.txt", Content: fmt.Appendf(nil, "%d", n)}}
		if n == 1 {
			c = append(c, configsvc.Change{File: "keep.txt", Content: []byte("k")})
		}
		return c
	}
	for n := int64(1); n <= 4; n++ {
		if _, err := s.Publish(ctx, ref, configsvc.Changeset{Base: n - 1, Changes: changes(n)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	downgradeToFormat1(t, path)

	s, err = Open(path, Options{Retention: 3})
	if err != nil {
		t.Fatalf("Open of a format 1 file: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if v := s.formatOnDisk(t); v != formatVersion {
		t.Fatalf("format after Open = %q, want %q", v, formatVersion)
	}
	if got, _, err := s.File(ctx, ref, "a.txt", 2); err != nil || string(got) != "2" {
		t.Fatalf("File(a.txt, 2) = %q, %v; want 2", got, err)
	}
	snap, err := s.Snapshot(ctx, ref, 3)
	if err != nil || string(snap.Files["a.txt"]) != "3" || string(snap.Files["keep.txt"]) != "k" {
		t.Fatalf("Snapshot(3) = %q, %v", snap.Files, err)
	}
	rev, err := s.Revision(ctx, ref, 4)
	if err != nil || len(rev.Changes) != 1 || string(rev.Changes[0].Content) != "4" {
		t.Fatalf("Revision(4) = %+v, %v", rev, err)
	}
	revs, err := s.Revisions(ctx, ref, 0, 0)
	if err != nil || len(revs) != 4 || revs[0].Number != 4 || revs[3].Number != 1 {
		t.Fatalf("Revisions = %d entries, %v; want 4 down to 1 (retention applies from the next publish)", len(revs), err)
	}

	for n := int64(5); n <= 6; n++ {
		if _, err := s.Publish(ctx, ref, configsvc.Changeset{Base: n - 1, Changes: changes(n)}); err != nil {
			t.Fatal(err)
		}
	}
	// Retention 3 keeps 4..6; pruning removed 1..3 from the old buckets.
	var mans, blobs []string
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketServices).Bucket([]byte("orders"))
		if err := b.Bucket(keyMans).ForEach(func(k, _ []byte) error { mans = append(mans, fmt.Sprint(fromU64(k))); return nil }); err != nil {
			return err
		}
		return b.Bucket(keyBlobs).ForEach(func(k, _ []byte) error {
			blobs = append(blobs, fmt.Sprintf("%d/%s", fromU64(k[:8]), k[8:]))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mans, []string{"4"}) || !slices.Equal(blobs, []string{"1/keep.txt", "4/a.txt"}) {
		t.Fatalf("old buckets hold manifests %v and contents %v; want [4] and [1/keep.txt 4/a.txt]", mans, blobs)
	}
	if got, _, err := s.File(ctx, ref, "keep.txt", 6); err != nil || string(got) != "k" {
		t.Fatalf("File(keep.txt, 6) = %q, %v; want the content written under format 1", got, err)
	}
	if _, err := s.Revision(ctx, ref, 3); !errors.Is(err, configsvc.ErrCompacted) {
		t.Fatalf("Revision(3) = %v; want ErrCompacted", err)
	}
}

// TestOpenRefusesUnknownFormat: a file of a format this build does not
// know is refused, not misread.
func TestOpenRefusesUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	setFormat(t, path, "3")
	if _, err := Open(path, Options{}); !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("Open of format 3 = %v; want ErrInvalid", err)
	}
}

// downgradeToFormat1 moves every manifest and content of the file at path
// into the buckets format 1 kept them in, and marks the file format 1.
func downgradeToFormat1(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketServices).ForEach(func(name, _ []byte) error {
			b := tx.Bucket(bucketServices).Bucket(name)
			mans, err := b.CreateBucket(keyMans)
			if err != nil {
				return err
			}
			blobs, err := b.CreateBucket(keyBlobs)
			if err != nil {
				return err
			}
			revs := b.Bucket(keyRevs)
			var moved [][]byte
			err = revs.ForEach(func(k, v []byte) error {
				switch {
				case isRevKey(k):
					return nil
				case k[8] == 'm':
					err = mans.Put(k[:8], v)
				default:
					err = blobs.Put(append(append([]byte{}, k[:8]...), k[9:]...), v)
				}
				moved = append(moved, append([]byte{}, k...))
				return err
			})
			if err != nil {
				return err
			}
			for _, k := range moved {
				if err := revs.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	setFormat(t, path, "1")
}

func setFormat(t *testing.T, path, v string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

func (s *Store) formatOnDisk(t *testing.T) string {
	t.Helper()
	var v string
	if err := s.db.View(func(tx *bolt.Tx) error { v = string(tx.Bucket(bucketMeta).Get(keyFormat)); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}
