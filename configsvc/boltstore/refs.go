package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// headRecord is the stored head of a service or group.
type headRecord struct {
	Revision int64                         `json:"revision"`
	Files    map[string]configsvc.FileMeta `json:"files"`
	Updated  time.Time                     `json:"updated"`
	Author   string                        `json:"author,omitempty"`
	// Oldest is the oldest retained revision (1 until something is pruned):
	// older ones are compacted, whether or not their records are gone yet.
	Oldest int64 `json:"oldest"`
	// Pruned: every revision below it has been physically removed. Zero in
	// files written before pruning was batched, which pruned up to Oldest.
	Pruned int64 `json:"pruned,omitempty"`
	// Incarnation tells a re-created ref from the one deleted before it, so
	// that a watch of the old one ends with ErrNotFound.
	Incarnation uint64 `json:"incarnation"`
	// Grays summarizes the active grays (gray.go), sorted by id.
	Grays []configsvc.GraySummary `json:"grays,omitempty"`
}

// kindBucket returns the top-level bucket of kind.
func kindBucket(tx *bolt.Tx, kind configsvc.Kind) *bolt.Bucket {
	if kind == configsvc.KindGroup {
		return tx.Bucket(bucketGroups)
	}
	return tx.Bucket(bucketServices)
}

// refBucket returns ref's bucket or an ErrNotFound error.
func refBucket(tx *bolt.Tx, ref configsvc.Ref) (*bolt.Bucket, error) {
	b := kindBucket(tx, ref.Kind).Bucket([]byte(ref.Name))
	if b == nil {
		return nil, fmt.Errorf("%s: %w", ref, configsvc.ErrNotFound)
	}
	return b, nil
}

// refHead returns ref's bucket and its decoded head; ErrNotFound when ref
// does not exist.
func refHead(tx *bolt.Tx, ref configsvc.Ref) (*bolt.Bucket, headRecord, error) {
	b, err := refBucket(tx, ref)
	if err != nil {
		return nil, headRecord{}, err
	}
	h, err := readHead(b)
	return b, h, err
}

func readHead(b *bolt.Bucket) (headRecord, error) {
	return decodeHead(b.Get(keyHead))
}

func decodeHead(data []byte) (headRecord, error) {
	var h headRecord
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("decode head: %w", err)
	}
	if h.Files == nil {
		h.Files = map[string]configsvc.FileMeta{}
	}
	return h, nil
}

// writeHead stores h and returns its encoding.
func writeHead(b *bolt.Bucket, h headRecord) ([]byte, error) {
	data, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	return data, b.Put(keyHead, data)
}

// refKey names ref in the watch signal map.
func refKey(ref configsvc.Ref) string { return ref.String() }

func validRef(ref configsvc.Ref, what string) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("boltstore: %s %s: %w", what, ref, err)
	}
	return nil
}

// Create creates an empty service or group at revision 0. ErrConflict if
// it exists; ErrTooMany when MaxServices of its kind exist.
func (s *Store) Create(ctx context.Context, ref configsvc.Ref) error {
	if err := validRef(ref, "create"); err != nil {
		return err
	}
	err := s.update(ctx, "create "+ref.String(), func(tx *bolt.Tx) error {
		kb := kindBucket(tx, ref.Kind)
		if kb.Bucket([]byte(ref.Name)) != nil {
			return fmt.Errorf("already exists: %w", configsvc.ErrConflict)
		}
		if n := countKeys(kb, s.limits.Services); n >= s.limits.Services {
			return &configsvc.CountError{What: ref.Kind.String() + "s in the store", Count: int64(n), Limit: int64(s.limits.Services)}
		}
		incarnation, err := kb.NextSequence()
		if err != nil {
			return err
		}
		b, err := kb.CreateBucket([]byte(ref.Name))
		if err != nil {
			return err
		}
		subs := [][]byte{keyRevs, keyLinks}
		if ref.Kind == configsvc.KindGroup {
			subs[1] = keyUsers
		}
		for _, k := range subs {
			if _, err := b.CreateBucket(k); err != nil {
				return err
			}
		}
		_, err = writeHead(b, headRecord{
			Files: map[string]configsvc.FileMeta{}, Updated: s.now().UTC(), Oldest: 1, Pruned: 1, Incarnation: incarnation,
		})
		return err
	})
	if err == nil {
		s.notify(refKey(ref))
	}
	return err
}

// Delete removes a service or group with its whole history; a service's
// links and instances go with it. A group that services still link to is
// not deleted (ErrConflict).
func (s *Store) Delete(ctx context.Context, ref configsvc.Ref) error {
	if err := validRef(ref, "delete"); err != nil {
		return err
	}
	err := s.update(ctx, "delete "+ref.String(), func(tx *bolt.Tx) error {
		b, err := refBucket(tx, ref)
		if err != nil {
			return err
		}
		if ref.Kind == configsvc.KindGroup {
			if k, _ := b.Bucket(keyUsers).Cursor().First(); k != nil {
				return fmt.Errorf("service %s still links to it: %w", k, configsvc.ErrConflict)
			}
		} else {
			groups := tx.Bucket(bucketGroups)
			err := b.Bucket(keyLinks).ForEach(func(g, _ []byte) error {
				if gb := groups.Bucket(g); gb != nil {
					return gb.Bucket(keyUsers).Delete([]byte(ref.Name))
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return kindBucket(tx, ref.Kind).DeleteBucket([]byte(ref.Name))
	})
	if err != nil {
		return err
	}
	if ref.Kind == configsvc.KindService {
		s.dropInstances(ref.Name)
	}
	s.notify(refKey(ref))
	return nil
}

// List returns the names of all services or all groups, sorted.
func (s *Store) List(ctx context.Context, kind configsvc.Kind) ([]string, error) {
	if kind != configsvc.KindService && kind != configsvc.KindGroup {
		return nil, fmt.Errorf("boltstore: list %s: %w", kind, configsvc.ErrInvalid)
	}
	var names []string
	err := s.view(ctx, "list "+kind.String(), func(tx *bolt.Tx) error {
		return kindBucket(tx, kind).ForEachBucket(func(k []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	return names, err
}

// Head returns the current head manifest, with a service's links.
func (s *Store) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	if err := validRef(ref, "head"); err != nil {
		return configsvc.Head{}, err
	}
	var head configsvc.Head
	err := s.view(ctx, "head "+ref.String(), func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		head = configsvc.Head{Ref: ref, Revision: h.Revision, Files: h.Files, Updated: h.Updated, Author: h.Author, Grays: h.Grays}
		if ref.Kind == configsvc.KindService {
			head.Links = keys(b.Bucket(keyLinks))
		}
		return nil
	})
	return head, err
}

// keys returns the keys of b, sorted (bbolt keeps them sorted).
func keys(b *bolt.Bucket) []string {
	var out []string
	b.ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out
}

// Link makes service svc use group group, recording both directions.
func (s *Store) Link(ctx context.Context, svc, group string) error {
	return s.setLink(ctx, svc, group, true)
}

// Unlink removes the link between svc and group; ErrNotFound if there was none.
func (s *Store) Unlink(ctx context.Context, svc, group string) error {
	return s.setLink(ctx, svc, group, false)
}

func (s *Store) setLink(ctx context.Context, svc, group string, link bool) error {
	what := "link"
	if !link {
		what = "unlink"
	}
	what = fmt.Sprintf("%s service/%s to group/%s", what, svc, group)
	if err := configsvc.ValidateServiceName(svc); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	if err := configsvc.ValidateGroupName(group); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	changed := false
	err := s.update(ctx, what, func(tx *bolt.Tx) error {
		sb, err := refBucket(tx, configsvc.Service(svc))
		if err != nil {
			return err
		}
		gb, err := refBucket(tx, configsvc.Group(group))
		if err != nil {
			return err
		}
		links, users := sb.Bucket(keyLinks), gb.Bucket(keyUsers)
		exists := links.Get([]byte(group)) != nil
		switch {
		case link && exists:
			return nil
		case !link && !exists:
			return fmt.Errorf("not linked: %w", configsvc.ErrNotFound)
		case link:
			if n := countKeys(links, s.limits.LinksPerService); n >= s.limits.LinksPerService {
				return &configsvc.CountError{What: "shared groups linked to service " + svc, Count: int64(n), Limit: int64(s.limits.LinksPerService)}
			}
			changed = true
			if err := links.Put([]byte(group), []byte{}); err != nil {
				return err
			}
			return users.Put([]byte(svc), []byte{})
		default:
			changed = true
			if err := links.Delete([]byte(group)); err != nil {
				return err
			}
			return users.Delete([]byte(svc))
		}
	})
	if err == nil && changed {
		s.notify(refKey(configsvc.Service(svc)))
	}
	return err
}

// Users returns the services linked to group, sorted. ErrNotFound if the
// group does not exist.
func (s *Store) Users(ctx context.Context, group string) ([]string, error) {
	ref := configsvc.Group(group)
	if err := validRef(ref, "users of"); err != nil {
		return nil, err
	}
	var out []string
	err := s.view(ctx, "users of "+ref.String(), func(tx *bolt.Tx) error {
		b, err := refBucket(tx, ref)
		if err != nil {
			return err
		}
		out = keys(b.Bucket(keyUsers))
		return nil
	})
	return out, err
}
