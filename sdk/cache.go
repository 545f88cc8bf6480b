package sdk

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// cache keeps the last good state of a service on disk in a bbolt file, so a
// process can start while the store is unreachable. Each operation opens and
// closes the file, so processes sharing CacheDir do not lock each other out
// for longer than one write. A write compares, under bbolt's file lock,
// the state it replaces with its own and leaves a newer one in place (see
// write), so processes sharing the file never put an older state over a
// newer one.
type cache struct {
	path string
}

var (
	cacheBucket   = []byte("sluice")
	cacheState    = []byte("state")
	cacheChecksum = []byte("checksum")
)

// cachedState is the JSON value kept in the cache: the effective (good)
// files of the service and its linked groups, keyed as the client shows them
// ("db.yaml", "redis-common/redis.yaml"), main + the grays the writer was
// in, and those grays.
type cachedState struct {
	Service  string             `json:"service"`
	Revision int64              `json:"revision"`
	ID       configsvc.Identity `json:"id,omitzero"` // identity of Revision
	Links    []string           `json:"links,omitempty"`
	Groups   map[string]int64   `json:"groups,omitempty"`
	// GroupIDs holds the identity of each group's revision in Groups.
	GroupIDs map[string]configsvc.Identity `json:"group_ids,omitempty"`
	Files    map[string][]byte             `json:"files"`
	// Grays are the grays the writer was in, with their content and
	// main's content of the files they hold (gray.go); Instance is the
	// writer's instance id.
	Grays    []cachedGray `json:"grays,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Written  time.Time    `json:"written"`
}

// newer reports whether st is newer than o within one history: the same
// service and generation, and a higher service revision, or the same one
// with every group of o at least as new in st and one newer.
func (st *cachedState) newer(o *cachedState) bool {
	if st.Service != o.Service || !st.ID.SameGeneration(o.ID) {
		return false
	}
	if st.Revision != o.Revision {
		return st.Revision > o.Revision
	}
	ahead := false
	for g, r := range o.Groups {
		mine, ok := st.Groups[g]
		if !ok || mine < r {
			return false
		}
		ahead = ahead || mine > r
	}
	return ahead
}

func newCache(dir, service string) *cache {
	if dir == "" {
		return nil
	}
	return &cache{path: filepath.Join(dir, service+".cache.db")}
}

func (c *cache) open(readOnly bool) (*bolt.DB, error) {
	if !readOnly {
		if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
			return nil, err
		}
	}
	return bolt.Open(c.path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: readOnly})
}

// write stores st and its SHA-256 in one bbolt transaction: a reader sees
// the old state or the new one, never a mix. The transaction holds bbolt's
// exclusive lock on the file (waiting at most 2 s for it), and within it
// the state stored is read first: when it is newer than st (cachedState.newer:
// another process sharing the file applied a later revision), it is left
// in place and kept reports true. force replaces it whatever it holds (a
// history rewritten to lower numbers).
func (c *cache) write(st *cachedState, force bool) (kept bool, err error) {
	data, err := json.Marshal(st)
	if err != nil {
		return false, fmt.Errorf("sdk: cache %s: %w", c.path, err)
	}
	sum := sha256.Sum256(data)
	db, err := c.open(false)
	if err != nil {
		return false, fmt.Errorf("sdk: cache %s: open: %w", c.path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(cacheBucket)
		if err != nil {
			return err
		}
		if !force {
			if cur, err := decodeState(b); err == nil && cur.newer(st) {
				kept = true
				return nil
			}
		}
		if err := b.Put(cacheState, data); err != nil {
			return err
		}
		return b.Put(cacheChecksum, []byte(hex.EncodeToString(sum[:])))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("sdk: cache %s: write: %w", c.path, err)
	}
	return kept, nil
}

// decodeState returns the state stored in b after checking its checksum.
func decodeState(b *bolt.Bucket) (*cachedState, error) {
	data, sum := b.Get(cacheState), b.Get(cacheChecksum)
	if data == nil {
		return nil, configsvc.ErrNotFound
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != string(sum) {
		return nil, fmt.Errorf("checksum mismatch: %w", configsvc.ErrInvalid)
	}
	var st cachedState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	if st.Files == nil {
		st.Files = map[string][]byte{}
	}
	return &st, nil
}

// read returns the cached state after checking its checksum. A missing
// cache is an error wrapping configsvc.ErrNotFound.
func (c *cache) read(service string) (*cachedState, error) {
	if _, err := os.Stat(c.path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sdk: cache %s: %w", c.path, configsvc.ErrNotFound)
	}
	db, err := c.open(true)
	if err != nil {
		return nil, fmt.Errorf("sdk: cache %s: open: %w", c.path, err)
	}
	defer db.Close()
	var st *cachedState
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(cacheBucket)
		if b == nil {
			return configsvc.ErrNotFound
		}
		var err error
		st, err = decodeState(b) // json.Unmarshal copies out of the transaction
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sdk: cache %s: read: %w", c.path, err)
	}
	if st.Service != service {
		return nil, fmt.Errorf("sdk: cache %s holds service %q, not %q: %w", c.path, st.Service, service, configsvc.ErrInvalid)
	}
	return st, nil
}
