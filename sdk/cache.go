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
// for longer than one write.
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
// ("db.yaml", "redis-common/redis.yaml").
type cachedState struct {
	Service  string            `json:"service"`
	Revision int64             `json:"revision"`
	Links    []string          `json:"links,omitempty"`
	Groups   map[string]int64  `json:"groups,omitempty"`
	Files    map[string][]byte `json:"files"`
	Written  time.Time         `json:"written"`
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
// the old state or the new one, never a mix.
func (c *cache) write(st *cachedState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("sdk: cache %s: %w", c.path, err)
	}
	sum := sha256.Sum256(data)
	db, err := c.open(false)
	if err != nil {
		return fmt.Errorf("sdk: cache %s: open: %w", c.path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(cacheBucket)
		if err != nil {
			return err
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
		return fmt.Errorf("sdk: cache %s: write: %w", c.path, err)
	}
	return nil
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
	var data, sum []byte
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(cacheBucket)
		if b == nil {
			return configsvc.ErrNotFound
		}
		data = append([]byte(nil), b.Get(cacheState)...)
		sum = append([]byte(nil), b.Get(cacheChecksum)...)
		if data == nil {
			return configsvc.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sdk: cache %s: read: %w", c.path, err)
	}
	got := sha256.Sum256(data)
	if hex.EncodeToString(got[:]) != string(sum) {
		return nil, fmt.Errorf("sdk: cache %s: checksum mismatch: %w", c.path, configsvc.ErrInvalid)
	}
	var st cachedState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("sdk: cache %s: %w", c.path, err)
	}
	if st.Service != service {
		return nil, fmt.Errorf("sdk: cache %s holds service %q, not %q: %w", c.path, st.Service, service, configsvc.ErrInvalid)
	}
	if st.Files == nil {
		st.Files = map[string][]byte{}
	}
	return &st, nil
}
