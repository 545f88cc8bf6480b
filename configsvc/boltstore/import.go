package boltstore

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

var _ configsvc.Importer = (*Store)(nil)

// ImportBase writes rev as the first, oldest retained revision of ref in
// one transaction: each file's content under the revision that last wrote
// it, rev's record and manifest, and the head at rev with the retention
// boundary there. See configsvc.Importer.
func (s *Store) ImportBase(ctx context.Context, ref configsvc.Ref, rev configsvc.Revision, files map[string]configsvc.FileMeta, content map[string][]byte) error {
	what := fmt.Sprintf("import base revision %d of %s", rev.Number, ref)
	if err := configsvc.CheckImportBase(ref, rev, files, content); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	rev = withoutContent(rev)
	err := s.update(ctx, what, func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		if h.Revision != 0 {
			return fmt.Errorf("head is at revision %d, not 0: %w", h.Revision, configsvc.ErrConflict)
		}
		revs := b.Bucket(keyRevs)
		manifest := make(map[string]configsvc.FileMeta, len(files))
		for name, m := range files {
			m.Format = configsvc.FormatOf(name)
			manifest[name] = m
			if err := revs.Put(blobKey(m.Revision, name), nonNil(content[name])); err != nil {
				return err
			}
		}
		rev.Time = rev.Time.UTC()
		if err := putRevision(revs, rev, nil, manifest); err != nil {
			return err
		}
		h.Oldest, h.Pruned = rev.Number, rev.Number
		return s.advanceHead(b, ref, h, rev, manifest)
	})
	if err != nil {
		return err
	}
	s.notify(refKey(ref))
	return nil
}

// ImportRevision writes rev as the next revision of ref in one
// transaction, as Publish does, with rev's time and publish ids. See
// configsvc.Importer.
func (s *Store) ImportRevision(ctx context.Context, ref configsvc.Ref, rev configsvc.Revision) error {
	what := fmt.Sprintf("import revision %d of %s", rev.Number, ref)
	if err := validRef(ref, "import revision of"); err != nil {
		return err
	}
	cs := configsvc.ImportChangeset(rev)
	if err := cs.Validate(); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	stored := withoutContent(rev)
	stored.Generation = ""
	if stored.Time.IsZero() {
		stored.Time = time.Unix(0, 0)
	}
	err := s.update(ctx, what, func(tx *bolt.Tx) error { return s.publishTx(tx, ref, cs, &stored) })
	if err != nil {
		return err
	}
	s.notify(refKey(ref))
	return nil
}

// ImportGray writes g as it is, with its content, and for an active gray
// its summary to the head, in one transaction. See configsvc.Importer.
func (s *Store) ImportGray(ctx context.Context, ref configsvc.Ref, g configsvc.Gray) error {
	what := "import gray " + g.ID + " of " + ref.String()
	if err := validRef(ref, "import gray of"); err != nil {
		return err
	}
	if err := configsvc.CheckImportGray(&g); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	err := s.update(ctx, what, func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		gb, err := b.CreateBucketIfNotExists(keyGrays)
		if err != nil {
			return err
		}
		if gb.Get([]byte(g.ID)) != nil {
			return fmt.Errorf("%s has a gray %s already: %w", ref, g.ID, configsvc.ErrConflict)
		}
		for _, c := range g.Changes {
			if !c.Delete {
				if err := gb.Put(grayContentKey(g.ID, c.File), nonNil(c.Content)); err != nil {
					return err
				}
			}
		}
		if err := putGray(gb, g); err != nil {
			return err
		}
		if g.State != configsvc.GrayActive {
			return nil
		}
		h.Grays = configsvc.WithGraySummary(h.Grays, g.Summary())
		_, err = writeHead(b, h)
		return err
	})
	if err != nil {
		return err
	}
	s.notify(refKey(ref))
	return nil
}

// Collections lists the record collections and logs that hold entries.
func (s *Store) Collections(ctx context.Context) (records, logs []string, err error) {
	err = s.view(ctx, "list collections", func(tx *bolt.Tx) error {
		records = nonEmptyBuckets(tx.Bucket(bucketRecords))
		logs = nonEmptyBuckets(tx.Bucket(bucketLogs))
		return nil
	})
	return records, logs, err
}

// nonEmptyBuckets returns the names of the sub-buckets of b that hold a
// key, in key order (sorted).
func nonEmptyBuckets(b *bolt.Bucket) []string {
	var out []string
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue
		}
		if sub := b.Bucket(k); sub != nil {
			if k2, _ := sub.Cursor().First(); k2 != nil {
				out = append(out, string(k))
			}
		}
	}
	return out
}

// withoutContent returns rev with its changes' content dropped.
func withoutContent(rev configsvc.Revision) configsvc.Revision {
	changes := make([]configsvc.Change, len(rev.Changes))
	for i, c := range rev.Changes {
		changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
	}
	rev.Changes = changes
	return rev
}
