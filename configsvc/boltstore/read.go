package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// manifestAt returns the manifest of b at revision rev (0 = head) and the
// revision it resolved to.
func manifestAt(b *bolt.Bucket, h headRecord, rev int64) (map[string]configsvc.FileMeta, int64, error) {
	switch {
	case rev == 0 || rev == h.Revision:
		return h.Files, h.Revision, nil
	case rev < 0:
		return nil, 0, fmt.Errorf("revision %d: %w", rev, configsvc.ErrInvalid)
	case rev > h.Revision:
		return nil, 0, fmt.Errorf("revision %d is past the head %d: %w", rev, h.Revision, configsvc.ErrNotFound)
	case rev < h.Oldest:
		return nil, 0, fmt.Errorf("revision %d (retention keeps %d and later): %w", rev, h.Oldest, configsvc.ErrCompacted)
	}
	m, err := readManifest(b, rev)
	return m, rev, err
}

// File returns one file's content and metadata at revision rev (0 = head).
func (s *Store) File(ctx context.Context, ref configsvc.Ref, name string, rev int64) ([]byte, configsvc.FileMeta, error) {
	if err := validRef(ref, "read file of"); err != nil {
		return nil, configsvc.FileMeta{}, err
	}
	var (
		content []byte
		meta    configsvc.FileMeta
	)
	err := s.view(ctx, fmt.Sprintf("read %s file %q at %d", ref, name, rev), func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		m, _, err := manifestAt(b, h, rev)
		if err != nil {
			return err
		}
		var ok bool
		if meta, ok = m[name]; !ok {
			return fmt.Errorf("no such file: %w", configsvc.ErrNotFound)
		}
		content, err = blob(b, meta)
		return err
	})
	if err != nil {
		return nil, configsvc.FileMeta{}, err
	}
	return content, meta, nil
}

// blob copies the content meta refers to out of the transaction.
func blob(b *bolt.Bucket, meta configsvc.FileMeta) ([]byte, error) {
	data := getBlob(b, meta.Revision, meta.Name)
	if data == nil {
		return nil, fmt.Errorf("content of %q at revision %d missing", meta.Name, meta.Revision)
	}
	return clone(data), nil
}

// Snapshot returns the content of every file at revision rev (0 = head).
func (s *Store) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	if err := validRef(ref, "snapshot"); err != nil {
		return configsvc.Snapshot{}, err
	}
	snap := configsvc.Snapshot{Ref: ref}
	err := s.view(ctx, fmt.Sprintf("snapshot %s at %d", ref, rev), func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		m, n, err := manifestAt(b, h, rev)
		if err != nil {
			return err
		}
		snap.Revision, snap.Generation, snap.PublishID = n, h.Generation, h.PublishID
		if n != h.Revision {
			r, err := readRecord(b, n)
			if err != nil {
				return err
			}
			snap.PublishID = r.PublishID
		}
		snap.Files = make(map[string][]byte, len(m))
		for name, meta := range m {
			if snap.Files[name], err = blob(b, meta); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return configsvc.Snapshot{}, err
	}
	return snap, nil
}

// Revisions lists revisions newest first, without content: at most limit
// (1..1000; 0 means 50) with Number < before (0 = from the head).
func (s *Store) Revisions(ctx context.Context, ref configsvc.Ref, before int64, limit int) ([]configsvc.Revision, error) {
	if err := validRef(ref, "list revisions of"); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = configsvc.DefaultRevisionsPage
	}
	if limit < 0 || limit > configsvc.MaxPageSize || before < 0 {
		return nil, fmt.Errorf("boltstore: list revisions of %s: %w", ref,
			&configsvc.FieldError{Field: "limit", Value: fmt.Sprint(limit), Msg: "must be 1..1000 with before ≥ 0"})
	}
	var out []configsvc.Revision
	err := s.view(ctx, "list revisions of "+ref.String(), func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		oldest := u64(h.Oldest) // older records may remain until pruned
		c := b.Bucket(keyRevs).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			k, v = c.Seek(u64(before))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(out) < limit && bytes.Compare(k, oldest) >= 0; k, v = c.Prev() {
			if !isRevKey(k) || before > 0 && bytes.Compare(k, u64(before)) >= 0 {
				continue
			}
			r, err := decodeRevision(v)
			if err != nil {
				return err
			}
			r.Generation = h.Generation
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func decodeRevision(data []byte) (configsvc.Revision, error) {
	var rr revRecord
	if err := json.Unmarshal(data, &rr); err != nil {
		return configsvc.Revision{}, fmt.Errorf("decode revision: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, rr.Time)
	if err != nil {
		return configsvc.Revision{}, fmt.Errorf("decode revision %d time: %w", rr.Number, err)
	}
	return configsvc.Revision{
		Number: rr.Number, Author: rr.Author, Time: t.UTC(), Message: rr.Message,
		Changes: rr.Changes, RollbackOf: rr.RollbackOf, PublishID: rr.PublishID, Parent: rr.Parent,
	}, nil
}

// readRecord reads the record of retained revision n, without content.
func readRecord(b *bolt.Bucket, n int64) (configsvc.Revision, error) {
	data := b.Bucket(keyRevs).Get(u64(n))
	if data == nil {
		return configsvc.Revision{}, fmt.Errorf("revision %d missing", n)
	}
	return decodeRevision(data)
}

// Revision returns revision n with the content of its changes.
func (s *Store) Revision(ctx context.Context, ref configsvc.Ref, n int64) (configsvc.Revision, error) {
	if err := validRef(ref, "read revision of"); err != nil {
		return configsvc.Revision{}, err
	}
	var rev configsvc.Revision
	err := s.view(ctx, fmt.Sprintf("read %s revision %d", ref, n), func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		rev, err = readRevision(b, h, n)
		return err
	})
	return rev, err
}

// readRevision reads revision n of b with content.
func readRevision(b *bolt.Bucket, h headRecord, n int64) (configsvc.Revision, error) {
	switch {
	case n < 1 || n > h.Revision:
		return configsvc.Revision{}, fmt.Errorf("no revision %d (head is %d): %w", n, h.Revision, configsvc.ErrNotFound)
	case n < h.Oldest:
		return configsvc.Revision{}, fmt.Errorf("revision %d (retention keeps %d and later): %w", n, h.Oldest, configsvc.ErrCompacted)
	}
	rev, err := readRecord(b, n)
	if err != nil {
		return rev, err
	}
	rev.Generation = h.Generation
	for i, c := range rev.Changes {
		if c.Delete {
			continue
		}
		content := getBlob(b, n, c.File)
		if content == nil {
			return rev, fmt.Errorf("content of %q at revision %d missing", c.File, n)
		}
		rev.Changes[i].Content = clone(content)
	}
	return rev, nil
}
