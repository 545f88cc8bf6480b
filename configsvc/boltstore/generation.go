package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// keyGeneration is the meta key of the store's generation record
// (configsvc.StoreGeneration, JSON).
var keyGeneration = []byte("generation")

// ensureGeneration gives a file without a generation its first one.
func ensureGeneration(meta *bolt.Bucket, now func() time.Time) error {
	if meta.Get(keyGeneration) != nil {
		return nil
	}
	return putGeneration(meta, configsvc.StoreGeneration{ID: configsvc.NewID(8), Since: now().UTC()})
}

func putGeneration(meta *bolt.Bucket, g configsvc.StoreGeneration) error {
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return meta.Put(keyGeneration, data)
}

// readGeneration returns the store's generation record.
func readGeneration(tx *bolt.Tx) (configsvc.StoreGeneration, error) {
	var g configsvc.StoreGeneration
	data := tx.Bucket(bucketMeta).Get(keyGeneration)
	if data == nil {
		return g, fmt.Errorf("no generation record: %w", configsvc.ErrNotFound)
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return g, fmt.Errorf("decode the generation record: %w", err)
	}
	return g, nil
}

// Generation returns the store's generation record.
func (s *Store) Generation(ctx context.Context) (configsvc.StoreGeneration, error) {
	var g configsvc.StoreGeneration
	err := s.view(ctx, "generation", func(tx *bolt.Tx) error {
		var err error
		g, err = readGeneration(tx)
		return err
	})
	return g, err
}

// BumpGeneration replaces the store's generation with a new random one and
// stamps it on every service and group head, in one transaction (see
// configsvc.Store.BumpGeneration); every watcher then reports
// configsvc.ErrRewritten.
func (s *Store) BumpGeneration(ctx context.Context, reason string) (configsvc.StoreGeneration, error) {
	if len(reason) > configsvc.MaxGenerationReasonLen {
		return configsvc.StoreGeneration{}, fmt.Errorf("boltstore: bump generation: %w",
			&configsvc.LimitError{What: "reason", Size: int64(len(reason)), Limit: configsvc.MaxGenerationReasonLen})
	}
	var next configsvc.StoreGeneration
	var stamped []configsvc.Ref
	err := s.update(ctx, "bump generation", func(tx *bolt.Tx) error {
		cur, err := readGeneration(tx)
		if err != nil {
			return err
		}
		next = configsvc.StoreGeneration{ID: configsvc.NewID(8), Since: s.now().UTC(), Previous: cur.ID, Reason: reason}
		if err := putGeneration(tx.Bucket(bucketMeta), next); err != nil {
			return err
		}
		stamped = stamped[:0]
		for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
			kb := kindBucket(tx, kind)
			var names []string
			if err := kb.ForEach(func(k, v []byte) error {
				if v == nil {
					names = append(names, string(k))
				}
				return nil
			}); err != nil {
				return err
			}
			for _, name := range names {
				b := kb.Bucket([]byte(name))
				h, err := readHead(b)
				if err != nil {
					return err
				}
				h.Generation = next.ID
				if _, err := writeHead(b, h); err != nil {
					return err
				}
				stamped = append(stamped, configsvc.Ref{Kind: kind, Name: name})
			}
		}
		return nil
	})
	if err != nil {
		return configsvc.StoreGeneration{}, err
	}
	for _, ref := range stamped {
		s.notify(refKey(ref))
	}
	s.log.Warn("boltstore: store generation bumped: every follower reloads its services as a new history",
		"generation", next.ID, "previous", next.Previous, "reason", next.Reason)
	return next, nil
}
