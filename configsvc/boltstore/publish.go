package boltstore

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

// revRecord is a stored revision; content lives in the blobs bucket.
type revRecord struct {
	Number     int64              `json:"revision"`
	Author     string             `json:"author"`
	Time       string             `json:"time"` // RFC 3339 with nanoseconds, UTC
	Message    string             `json:"message"`
	Changes    []configsvc.Change `json:"changes"` // without content
	RollbackOf int64              `json:"rollback_of,omitempty"`
}

// Publish atomically creates revision cs.Base+1 and moves the head to it,
// pruning revisions beyond the retention. The changeset is validated
// (names, limits, content format) before anything is written.
func (s *Store) Publish(ctx context.Context, ref configsvc.Ref, cs configsvc.Changeset) (configsvc.Revision, error) {
	what := "publish " + ref.String()
	if err := validRef(ref, "publish"); err != nil {
		return configsvc.Revision{}, err
	}
	if err := cs.Validate(format.Validate); err != nil {
		return configsvc.Revision{}, fmt.Errorf("boltstore: %s: %w", what, err)
	}
	rev := configsvc.Revision{
		Number: cs.Base + 1, Author: cs.Author, Message: cs.Message, RollbackOf: cs.RollbackOf,
		Changes: make([]configsvc.Change, len(cs.Changes)),
	}
	for i, c := range cs.Changes {
		rev.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
	}
	err := s.update(ctx, what, func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		if h.Revision != cs.Base {
			return fmt.Errorf("head is at revision %d, not %d: %w", h.Revision, cs.Base, configsvc.ErrConflict)
		}
		rev.Time = configsvc.RevisionTime(s.now(), h.Updated)
		withContent := rev
		withContent.Changes = cs.Changes
		manifest, err := configsvc.Apply(h.Files, &withContent)
		if err != nil {
			return err
		}
		blobs := b.Bucket(keyBlobs)
		for _, c := range cs.Changes {
			if !c.Delete {
				if err := blobs.Put(blobKey(rev.Number, c.File), nonNil(c.Content)); err != nil {
					return err
				}
			}
		}
		rr, err := json.Marshal(revRecord{
			Number: rev.Number, Author: rev.Author, Time: rev.Time.Format(timeFormat),
			Message: rev.Message, Changes: rev.Changes, RollbackOf: rev.RollbackOf,
		})
		if err != nil {
			return err
		}
		if err := b.Bucket(keyRevs).Put(u64(rev.Number), rr); err != nil {
			return err
		}
		mb, err := json.Marshal(manifest)
		if err != nil {
			return err
		}
		if err := b.Bucket(keyMans).Put(u64(rev.Number), mb); err != nil {
			return err
		}
		h.Revision, h.Files, h.Updated, h.Author = rev.Number, manifest, rev.Time, rev.Author
		if err := s.prune(b, &h); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		return writeHead(b, h)
	})
	if err != nil {
		return configsvc.Revision{}, err
	}
	s.notify(refKey(ref))
	return rev, nil
}

// timeFormat keeps nanoseconds so that a revision's time reads back equal.
const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"

// nonNil stores empty content as an empty value rather than a missing one.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// prune drops the oldest revisions while more than the retention are kept.
// Dropping revision m removes its record and manifest, and every blob that
// manifest m refers to but manifest m+1 does not: manifests only move
// forward, so no retained revision can refer to it again.
func (s *Store) prune(b *bolt.Bucket, h *headRecord) error {
	revs, mans, blobs := b.Bucket(keyRevs), b.Bucket(keyMans), b.Bucket(keyBlobs)
	for h.Revision-h.Oldest+1 > int64(s.retention) {
		m := h.Oldest
		cur, err := readManifest(mans, m)
		if err != nil {
			return err
		}
		next := h.Files
		if m+1 < h.Revision {
			if next, err = readManifest(mans, m+1); err != nil {
				return err
			}
		}
		for name, meta := range cur {
			if n, ok := next[name]; !ok || n.Revision != meta.Revision {
				if err := blobs.Delete(blobKey(meta.Revision, name)); err != nil {
					return err
				}
			}
		}
		if err := revs.Delete(u64(m)); err != nil {
			return err
		}
		if err := mans.Delete(u64(m)); err != nil {
			return err
		}
		h.Oldest = m + 1
	}
	return nil
}

func readManifest(mans *bolt.Bucket, n int64) (map[string]configsvc.FileMeta, error) {
	data := mans.Get(u64(n))
	if data == nil {
		return nil, fmt.Errorf("manifest of revision %d missing", n)
	}
	m := map[string]configsvc.FileMeta{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode manifest of revision %d: %w", n, err)
	}
	return m, nil
}
