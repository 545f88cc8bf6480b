package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// Grays live in the bucket grays of their service or group (created by
// the first CreateGray): {id} holds the gray as JSON without content,
// {id}/{file} the content of each file it writes (no file name has a
// "/"). The head record carries the summaries of the active ones
// (headRecord.Grays). Every change is one transaction; deleting the ref
// deletes its bucket, grays included.

var keyGrays = []byte("grays")

// grayContentKey is the key of the content gray id writes to file.
func grayContentKey(id, file string) []byte { return []byte(id + "/" + file) }

// domainHead returns h as the configsvc.Head the gray transitions read.
func (h headRecord) domainHead(ref configsvc.Ref) configsvc.Head {
	return configsvc.Head{Ref: ref, Revision: h.Revision, Files: h.Files, Updated: h.Updated, Author: h.Author, Grays: h.Grays}
}

// CreateGray creates a gray of ref and adds its summary to the head in one
// transaction; see configsvc.Store.CreateGray.
func (s *Store) CreateGray(ctx context.Context, ref configsvc.Ref, g configsvc.Gray) (configsvc.Gray, error) {
	if err := validRef(ref, "create gray of"); err != nil {
		return configsvc.Gray{}, err
	}
	var out configsvc.Gray
	err := s.update(ctx, "create gray of "+ref.String(), func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		created, summaries, err := configsvc.NewGray(ref, g, h.domainHead(ref), s.now())
		if err != nil {
			return err
		}
		gb, err := b.CreateBucketIfNotExists(keyGrays)
		if err != nil {
			return err
		}
		for _, c := range created.Changes {
			if !c.Delete {
				if err := gb.Put(grayContentKey(created.ID, c.File), nonNil(c.Content)); err != nil {
					return err
				}
			}
		}
		if err := putGray(gb, created); err != nil {
			return err
		}
		h.Grays = summaries
		if _, err := writeHead(b, h); err != nil {
			return err
		}
		out = created
		return nil
	})
	if err != nil {
		return configsvc.Gray{}, err
	}
	s.notify(refKey(ref))
	return out, nil
}

// UpdateGray changes an active gray and its head summary in one
// transaction; see configsvc.Store.UpdateGray.
func (s *Store) UpdateGray(ctx context.Context, ref configsvc.Ref, id string, version int64, fn func(*configsvc.Gray) error) (configsvc.Gray, error) {
	what := fmt.Sprintf("update gray %s of %s", id, ref)
	if err := validGray(ref, id, what); err != nil {
		return configsvc.Gray{}, err
	}
	var out configsvc.Gray
	err := s.update(ctx, what, func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		gb, g, err := readGray(b, ref, id, true)
		if err != nil {
			return err
		}
		next, err := configsvc.UpdatedGray(g, version, s.now(), fn)
		if err != nil {
			return err
		}
		if err := putGray(gb, next); err != nil {
			return err
		}
		h.Grays = configsvc.WithGraySummary(h.Grays, next.Summary())
		if _, err := writeHead(b, h); err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		return configsvc.Gray{}, err
	}
	s.notify(refKey(ref))
	return out, nil
}

// EndGray abandons or promotes a gray in one transaction; see
// configsvc.Store.EndGray. A promote writes the revision as Publish does.
func (s *Store) EndGray(ctx context.Context, ref configsvc.Ref, id string, version int64, end configsvc.GrayEnd) (configsvc.Gray, *configsvc.Revision, error) {
	what := fmt.Sprintf("end gray %s of %s", id, ref)
	if err := validGray(ref, id, what); err != nil {
		return configsvc.Gray{}, nil, err
	}
	var (
		out configsvc.Gray
		rev *configsvc.Revision
	)
	err := s.update(ctx, what, func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		gb, g, err := readGray(b, ref, id, end.State == configsvc.GrayPromoted)
		if err != nil {
			return err
		}
		// Check the gray's state and version (and end's shape) before the
		// promote's checks, so an ended gray says so whatever main did.
		if _, err := configsvc.EndedGray(g, version, end, 0, s.now()); err != nil {
			return err
		}
		h.Grays = configsvc.WithoutGraySummary(h.Grays, id)
		number := int64(0)
		if end.State == configsvc.GrayPromoted {
			r, err := s.promoteTx(b, ref, &g, h, end)
			if err != nil {
				return err
			}
			rev, number = &r, r.Number
		} else if _, err := writeHead(b, h); err != nil {
			return err
		}
		ended, err := configsvc.EndedGray(g, version, end, number, s.now())
		if err != nil {
			return err
		}
		if err := putGray(gb, ended); err != nil {
			return err
		}
		out = ended.WithoutContent()
		return dropEndedGrays(gb)
	})
	if err != nil {
		return configsvc.Gray{}, nil, err
	}
	s.notify(refKey(ref))
	return out, rev, nil
}

// promoteTx publishes the promote of g on head h (whose summaries no
// longer hold g) as the next revision of ref bucket b, as publishTx does,
// and returns the revision without content.
func (s *Store) promoteTx(b *bolt.Bucket, ref configsvc.Ref, g *configsvc.Gray, h headRecord, end configsvc.GrayEnd) (configsvc.Revision, error) {
	if end.Promote.Base != h.Revision {
		return configsvc.Revision{}, fmt.Errorf("promote on base revision %d, but the head is %d: %w", end.Promote.Base, h.Revision, configsvc.ErrConflict)
	}
	cs, err := configsvc.PromoteChangeset(g, h.domainHead(ref), end)
	if err != nil {
		return configsvc.Revision{}, err
	}
	if err := cs.Validate(); err != nil {
		return configsvc.Revision{}, err
	}
	rev := configsvc.Revision{Number: h.Revision + 1, Author: cs.Author, Message: cs.Message,
		Time: configsvc.RevisionTime(s.now(), h.Updated), Changes: make([]configsvc.Change, len(cs.Changes))}
	for i, c := range cs.Changes {
		rev.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
	}
	manifest, err := configsvc.Apply(h.Files, &configsvc.Revision{Number: rev.Number, Changes: cs.Changes})
	if err != nil {
		return configsvc.Revision{}, err
	}
	if err := putRevision(b.Bucket(keyRevs), rev, cs.Changes, manifest); err != nil {
		return configsvc.Revision{}, err
	}
	return rev, s.advanceHead(b, ref, h, rev, manifest)
}

// Gray returns one gray with content; see configsvc.Store.Gray.
func (s *Store) Gray(ctx context.Context, ref configsvc.Ref, id string) (configsvc.Gray, error) {
	what := fmt.Sprintf("read gray %s of %s", id, ref)
	if err := validGray(ref, id, what); err != nil {
		return configsvc.Gray{}, err
	}
	var out configsvc.Gray
	err := s.view(ctx, what, func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		_, g, err := readGray(b, ref, id, true)
		if err != nil {
			return err
		}
		if g.State == configsvc.GrayActive {
			g.MainChanged = g.MainChangedIn(h.Files)
		}
		out = g
		return nil
	})
	return out, err
}

// Grays lists the grays of ref without content; see
// configsvc.Store.Grays.
func (s *Store) Grays(ctx context.Context, ref configsvc.Ref) ([]configsvc.Gray, error) {
	if err := validRef(ref, "list grays of"); err != nil {
		return nil, err
	}
	out := []configsvc.Gray{}
	err := s.view(ctx, "list grays of "+ref.String(), func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		grays, err := allGrays(b.Bucket(keyGrays))
		if err != nil {
			return err
		}
		for i := range grays {
			grays[i].Ref = ref
			if grays[i].State == configsvc.GrayActive {
				grays[i].MainChanged = grays[i].MainChangedIn(h.Files)
			}
		}
		configsvc.SortGrays(grays)
		out = append(out, grays...)
		return nil
	})
	return out, err
}

// validGray checks ref and a gray id.
func validGray(ref configsvc.Ref, id, what string) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	if err := configsvc.ValidateGrayID(id); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	return nil
}

// readGray returns the grays bucket of ref bucket b and gray id, with the
// content of its changes when withContent is set. ErrNotFound when there
// is no such gray.
func readGray(b *bolt.Bucket, ref configsvc.Ref, id string, withContent bool) (*bolt.Bucket, configsvc.Gray, error) {
	gb := b.Bucket(keyGrays)
	var data []byte
	if gb != nil {
		data = gb.Get([]byte(id))
	}
	if data == nil {
		return nil, configsvc.Gray{}, fmt.Errorf("%s has no gray %s: %w", ref, id, configsvc.ErrNotFound)
	}
	g, err := decodeGray(data)
	if err != nil {
		return nil, configsvc.Gray{}, err
	}
	g.Ref = ref
	if withContent {
		for i, c := range g.Changes {
			if c.Delete {
				continue
			}
			content := gb.Get(grayContentKey(id, c.File))
			if content == nil {
				return nil, configsvc.Gray{}, fmt.Errorf("content of %q in gray %s missing", c.File, id)
			}
			g.Changes[i].Content = clone(content)
		}
	}
	return gb, g, nil
}

func decodeGray(data []byte) (configsvc.Gray, error) {
	var g configsvc.Gray
	if err := json.Unmarshal(data, &g); err != nil {
		return g, fmt.Errorf("decode gray: %w", err)
	}
	return g, nil
}

// putGray stores g without content (its content keys are written once,
// by CreateGray).
func putGray(gb *bolt.Bucket, g configsvc.Gray) error {
	data, err := json.Marshal(g.WithoutContent())
	if err != nil {
		return err
	}
	return gb.Put([]byte(g.ID), data)
}

// allGrays decodes every gray of grays bucket gb (nil: none), without
// content.
func allGrays(gb *bolt.Bucket) ([]configsvc.Gray, error) {
	var out []configsvc.Gray
	if gb == nil {
		return out, nil
	}
	err := gb.ForEach(func(k, v []byte) error {
		if bytes.IndexByte(k, '/') >= 0 {
			return nil // content
		}
		g, err := decodeGray(v)
		if err != nil {
			return fmt.Errorf("gray %s: %w", k, err)
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// dropEndedGrays deletes the ended grays of gb beyond the newest
// configsvc.MaxEndedGrays, with their content.
func dropEndedGrays(gb *bolt.Bucket) error {
	grays, err := allGrays(gb)
	if err != nil {
		return err
	}
	for _, id := range configsvc.EndedBeyond(grays) {
		prefix := []byte(id + "/")
		var keys [][]byte
		c := gb.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, clone(k))
		}
		keys = append(keys, []byte(id))
		for _, k := range keys {
			if err := gb.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// graysEvent returns the GraysChanged event a watcher in state st owes
// for head h, and records the new set in st; ok is false when the set is
// the one st knows.
func graysEvent(st *watchState, h headRecord) (ev configsvc.Event, ok bool) {
	if configsvc.SameGrays(st.grays, h.Grays) {
		return configsvc.Event{}, false
	}
	st.grays = h.Grays
	return configsvc.Event{GraysChanged: true, Grays: append([]configsvc.GraySummary{}, h.Grays...)}, true
}
