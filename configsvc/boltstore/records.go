package boltstore

import (
	"context"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// Records returns the store's record collections. Put/Get/Delete/List
// collections and Append/Scan collections live in separate namespaces.
func (s *Store) Records() configsvc.RecordStore { return records{s} }

type records struct{ s *Store }

func validCollection(what, collection string) error {
	if err := configsvc.ValidateFileName(collection); err != nil {
		return fmt.Errorf("boltstore: %s: collection: %w", what, err)
	}
	return nil
}

func validRecord(what, collection, id string) error {
	if err := validCollection(what, collection); err != nil {
		return err
	}
	if err := configsvc.ValidateFileName(id); err != nil {
		return fmt.Errorf("boltstore: %s: record id: %w", what, err)
	}
	return nil
}

func checkSize(what string, data []byte) error {
	if len(data) > configsvc.MaxRecordSize {
		return fmt.Errorf("boltstore: %s: %w", what, &configsvc.LimitError{What: "record", Size: int64(len(data)), Limit: configsvc.MaxRecordSize})
	}
	return nil
}

// Put creates or replaces a record. Creating one in a collection that holds
// MaxRecordsPerCollection records is ErrTooMany.
func (r records) Put(ctx context.Context, collection, id string, data []byte) error {
	return r.put(ctx, "put", collection, id, data, false)
}

// Create creates a record only if none has that id: ErrConflict if it
// exists; ErrTooMany as for Put.
func (r records) Create(ctx context.Context, collection, id string, data []byte) error {
	return r.put(ctx, "create", collection, id, data, true)
}

func (r records) put(ctx context.Context, verb, collection, id string, data []byte, onlyNew bool) error {
	what := fmt.Sprintf("%s record %s/%s", verb, collection, id)
	if err := validRecord(what, collection, id); err != nil {
		return err
	}
	if err := checkSize(what, data); err != nil {
		return err
	}
	return r.s.update(ctx, what, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketRecords).CreateBucketIfNotExists([]byte(collection))
		if err != nil {
			return err
		}
		if b.Get([]byte(id)) != nil {
			if onlyNew {
				return fmt.Errorf("exists: %w", configsvc.ErrConflict)
			}
		} else if n := countKeys(b, r.s.limits.RecordsPerCollection); n >= r.s.limits.RecordsPerCollection {
			return &configsvc.CountError{What: "records in collection " + collection, Count: int64(n), Limit: int64(r.s.limits.RecordsPerCollection)}
		}
		return b.Put([]byte(id), nonNil(data))
	})
}

// countKeys counts the keys of b, stopping at limit.
func countKeys(b *bolt.Bucket, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

// Get returns a record's data; ErrNotFound if absent.
func (r records) Get(ctx context.Context, collection, id string) ([]byte, error) {
	what := fmt.Sprintf("get record %s/%s", collection, id)
	if err := validRecord(what, collection, id); err != nil {
		return nil, err
	}
	var out []byte
	err := r.s.view(ctx, what, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords).Bucket([]byte(collection))
		var v []byte
		if b != nil {
			v = b.Get([]byte(id))
		}
		if v == nil {
			return configsvc.ErrNotFound
		}
		out = clone(v)
		return nil
	})
	return out, err
}

// Delete removes a record; ErrNotFound if absent.
func (r records) Delete(ctx context.Context, collection, id string) error {
	what := fmt.Sprintf("delete record %s/%s", collection, id)
	if err := validRecord(what, collection, id); err != nil {
		return err
	}
	return r.s.update(ctx, what, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords).Bucket([]byte(collection))
		if b == nil || b.Get([]byte(id)) == nil {
			return configsvc.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
}

// List returns every record of a collection, sorted by id.
func (r records) List(ctx context.Context, collection string) ([]configsvc.Record, error) {
	what := "list records " + collection
	if err := validCollection(what, collection); err != nil {
		return nil, err
	}
	var out []configsvc.Record
	err := r.s.view(ctx, what, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords).Bucket([]byte(collection))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out = append(out, configsvc.Record{ID: string(k), Data: clone(v)})
			return nil
		})
	})
	return out, err
}

// Append adds data under the collection's next sequence number and prunes
// all but the newest keep entries (0 means 100000).
func (r records) Append(ctx context.Context, collection string, data []byte, keep int) (int64, error) {
	what := "append to " + collection
	if err := validCollection(what, collection); err != nil {
		return 0, err
	}
	if err := checkSize(what, data); err != nil {
		return 0, err
	}
	if keep < 0 {
		return 0, fmt.Errorf("boltstore: %s: %w", what, &configsvc.FieldError{Field: "keep", Value: strconv.Itoa(keep), Msg: "must be 0 or more"})
	}
	if keep == 0 {
		keep = configsvc.DefaultAppendKeep
	}
	var seq int64
	err := r.s.update(ctx, what, func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketLogs).CreateBucketIfNotExists([]byte(collection))
		if err != nil {
			return err
		}
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		seq = int64(n)
		if err := b.Put(u64(seq), nonNil(data)); err != nil {
			return err
		}
		// Prune: collect first, then delete (deleting while iterating a
		// bbolt cursor skips entries).
		cut := seq - int64(keep)
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && fromU64(k) <= cut; k, _ = c.Next() {
			old = append(old, clone(k))
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return seq, err
}

// Scan returns up to limit entries (1..1000; 0 means 100) with sequence <
// before (0 = newest), newest first; ID is the decimal sequence number.
func (r records) Scan(ctx context.Context, collection string, before int64, limit int) ([]configsvc.Record, error) {
	what := "scan " + collection
	if err := validCollection(what, collection); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = configsvc.DefaultScanPage
	}
	if limit < 0 || limit > configsvc.MaxPageSize || before < 0 {
		return nil, fmt.Errorf("boltstore: %s: %w", what, &configsvc.FieldError{Field: "limit", Value: strconv.Itoa(limit), Msg: "must be 1 to 1000 (0 means 100), with before ≥ 0"})
	}
	var out []configsvc.Record
	err := r.s.view(ctx, what, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs).Bucket([]byte(collection))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else if k, v = c.Seek(u64(before)); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			out = append(out, configsvc.Record{ID: strconv.FormatInt(fromU64(k), 10), Data: clone(v)})
		}
		return nil
	})
	return out, err
}
