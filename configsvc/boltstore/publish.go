package boltstore

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// revRecord is a stored revision; content lives in the blobs bucket.
type revRecord struct {
	Number     int64              `json:"revision"`
	Author     string             `json:"author"`
	Time       string             `json:"time"` // RFC 3339 with nanoseconds, UTC
	Message    string             `json:"message"`
	Changes    []configsvc.Change `json:"changes"` // without content
	RollbackOf int64              `json:"rollback_of,omitempty"`
	// PublishID is the publish's random id; Parent that of the revision it
	// was published on (configsvc.Identity). Empty in older files.
	PublishID string `json:"publish_id,omitempty"`
	Parent    string `json:"parent,omitempty"`
}

// Publish atomically creates revision cs.Base+1 and moves the head to it,
// pruning revisions beyond the retention. The changeset's shape and limits
// are checked (Changeset.Validate) before anything is written, and the
// service's file count (configsvc.CheckServiceFiles); its content
// is not validated here but once, by the configsvc.ValidatingStore that
// publishes go through.
func (s *Store) Publish(ctx context.Context, ref configsvc.Ref, cs configsvc.Changeset) (configsvc.Revision, error) {
	what := "publish " + ref.String()
	if err := validRef(ref, "publish"); err != nil {
		return configsvc.Revision{}, err
	}
	if err := cs.Validate(); err != nil {
		return configsvc.Revision{}, fmt.Errorf("boltstore: %s: %w", what, err)
	}
	rev := configsvc.Revision{
		Number: cs.Base + 1, Author: cs.Author, Message: cs.Message, RollbackOf: cs.RollbackOf,
		Changes: make([]configsvc.Change, len(cs.Changes)), PublishID: configsvc.NewID(16),
	}
	for i, c := range cs.Changes {
		rev.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
	}
	err := s.update(ctx, what, func(tx *bolt.Tx) error { return s.publishTx(tx, ref, cs, &rev) })
	if err != nil {
		return configsvc.Revision{}, err
	}
	s.notify(refKey(ref))
	return rev, nil
}

// publishTx writes rev (without its time, parent and generation yet) of ref
// from changeset cs in tx: it checks cs's base against the head, stamps
// rev's time, parent and generation, checks the service's file count,
// writes the revision and moves the head.
func (s *Store) publishTx(tx *bolt.Tx, ref configsvc.Ref, cs configsvc.Changeset, rev *configsvc.Revision) error {
	b, err := refBucket(tx, ref)
	if err != nil {
		return err
	}
	h, err := s.heads.decode(ref, b.Get(keyHead))
	if err != nil {
		return err
	}
	if h.Revision != cs.Base {
		return fmt.Errorf("head is at revision %d, not %d: %w", h.Revision, cs.Base, configsvc.ErrConflict)
	}
	return s.publishOn(tx, b, ref, h, cs, rev)
}

// publishOn is publishTx on head h of ref bucket b, read by the caller and
// at cs.Base (a promote passes the head without its gray's summary).
func (s *Store) publishOn(tx *bolt.Tx, b *bolt.Bucket, ref configsvc.Ref, h headRecord, cs configsvc.Changeset, rev *configsvc.Revision) error {
	if h.Generation == "" {
		// A head written before generations existed takes the store's.
		gen, err := readGeneration(tx)
		if err != nil {
			return err
		}
		h.Generation = gen.ID
	}
	// A publish stamps the store's clock and the head's publish id; an
	// import (ImportRevision) brings its own time and parent.
	now := s.now()
	if !rev.Time.IsZero() {
		now = rev.Time
	}
	rev.Time = configsvc.RevisionTime(now, h.Updated)
	if rev.Parent == "" {
		rev.Parent = h.PublishID
	}
	rev.Generation = h.Generation
	withContent := *rev
	withContent.Changes = cs.Changes
	manifest, err := configsvc.Apply(h.Files, &withContent)
	if err != nil {
		return err
	}
	if err := configsvc.CheckServiceFiles(ref, len(h.Files), len(manifest)); err != nil {
		return err
	}
	if err := putRevision(b.Bucket(keyRevs), *rev, cs.Changes, manifest); err != nil {
		return err
	}
	return s.advanceHead(b, ref, h, *rev, manifest)
}

// putRevision writes revision rev into the revs bucket: the content of each
// written file in changes, the revision record and its manifest.
func putRevision(revs *bolt.Bucket, rev configsvc.Revision, changes []configsvc.Change, manifest map[string]configsvc.FileMeta) error {
	for _, c := range changes {
		if !c.Delete {
			if err := revs.Put(blobKey(rev.Number, c.File), nonNil(c.Content)); err != nil {
				return err
			}
		}
	}
	rr, err := json.Marshal(revRecord{
		Number: rev.Number, Author: rev.Author, Time: rev.Time.Format(timeFormat),
		Message: rev.Message, Changes: rev.Changes, RollbackOf: rev.RollbackOf,
		PublishID: rev.PublishID, Parent: rev.Parent,
	})
	if err != nil {
		return err
	}
	if err := revs.Put(u64(rev.Number), rr); err != nil {
		return err
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	return revs.Put(manKey(rev.Number), mb)
}

// advanceHead moves head h of ref bucket b to rev with manifest, moves the
// retention boundary and prunes behind it, and writes the head.
func (s *Store) advanceHead(b *bolt.Bucket, ref configsvc.Ref, h headRecord, rev configsvc.Revision, manifest map[string]configsvc.FileMeta) error {
	if h.Pruned == 0 {
		h.Pruned = h.Oldest
	}
	h.Revision, h.Files, h.Updated, h.Author, h.PublishID = rev.Number, manifest, rev.Time, rev.Author, rev.PublishID
	h.Oldest = max(h.Oldest, h.Revision-int64(s.retention)+1)
	if err := s.prune(b, &h); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	data, err := writeHead(b, h)
	if err == nil {
		s.heads.remember(ref, data, h) // checked against the stored bytes before use
	}
	return err
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

// prune physically drops the revisions below h.Oldest, the retention
// boundary Publish moves, once they are pruneLag or more: a batch dirties
// the first pages of the revision, manifest and blob buckets once instead
// of once per publish. Reads refuse revisions below h.Oldest at once
// (ErrCompacted), whether or not they are gone yet. Dropping revision m
// removes its record and manifest, and every blob that manifest m refers
// to but manifest m+1 does not: manifests only move forward, so no
// retained revision can refer to it again.
func (s *Store) prune(b *bolt.Bucket, h *headRecord) error {
	if h.Oldest-h.Pruned < s.pruneLag() {
		return nil
	}
	revs, mans := b.Bucket(keyRevs), b.Bucket(keyMans)
	cur, err := readManifest(b, h.Pruned)
	if err != nil {
		return err
	}
	for ; h.Pruned < h.Oldest; h.Pruned++ {
		m := h.Pruned
		next := h.Files
		if m+1 < h.Revision {
			if next, err = readManifest(b, m+1); err != nil {
				return err
			}
		}
		for name, meta := range cur {
			if n, ok := next[name]; !ok || n.Revision != meta.Revision {
				if err := deleteBlob(b, meta.Revision, name); err != nil {
					return err
				}
			}
		}
		if err := revs.Delete(u64(m)); err != nil {
			return err
		}
		if err := revs.Delete(manKey(m)); err != nil {
			return err
		}
		if mans != nil {
			if err := mans.Delete(u64(m)); err != nil {
				return err
			}
		}
		cur = next
	}
	return nil
}

// pruneLag is how many compacted revisions prune lets gather before it
// drops them: retention/8, between 1 and 16. A service therefore holds at
// most 15 compacted revisions beyond the retention.
func (s *Store) pruneLag() int64 {
	return int64(min(max(s.retention/8, 1), 16))
}

// readManifest reads the manifest at revision n of ref bucket b: beside
// the revision record, or for a revision published under file format 1,
// in the mans bucket.
func readManifest(b *bolt.Bucket, n int64) (map[string]configsvc.FileMeta, error) {
	data := b.Bucket(keyRevs).Get(manKey(n))
	if mans := b.Bucket(keyMans); data == nil && mans != nil {
		data = mans.Get(u64(n))
	}
	if data == nil {
		return nil, fmt.Errorf("manifest of revision %d missing", n)
	}
	m := map[string]configsvc.FileMeta{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode manifest of revision %d: %w", n, err)
	}
	return m, nil
}
