package sdk

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

func TestCacheRoundTrip(t *testing.T) {
	c := newCache(t.TempDir(), "orders")
	want := &cachedState{
		Service: "orders", Revision: 7, Links: []string{"redis-common"},
		Groups:  map[string]int64{"redis-common": 3},
		Files:   map[string][]byte{"db.yaml": []byte("port: 1\n"), "redis-common/redis.yaml": []byte("addr: x\n")},
		Written: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if err := c.write(want); err != nil {
		t.Fatal(err)
	}
	got, err := c.read("orders")
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 7 || got.Groups["redis-common"] != 3 || string(got.Files["db.yaml"]) != "port: 1\n" ||
		string(got.Files["redis-common/redis.yaml"]) != "addr: x\n" || !got.Written.Equal(want.Written) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestCacheReadErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, c *cache)
		service string
		want    error
	}{
		{name: "missing", prepare: func(*testing.T, *cache) {}, service: "orders", want: configsvc.ErrNotFound},
		{
			name: "corrupted checksum", service: "orders", want: configsvc.ErrInvalid,
			prepare: func(t *testing.T, c *cache) {
				mustWrite(t, c, "orders")
				db, err := bolt.Open(c.path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error {
					return tx.Bucket(cacheBucket).Put(cacheChecksum, []byte("0000"))
				}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "other service", service: "payments", want: configsvc.ErrInvalid,
			prepare: func(t *testing.T, c *cache) { mustWrite(t, c, "orders") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &cache{path: filepath.Join(dir, "x.cache.db")}
			tt.prepare(t, c)
			_, err := c.read(tt.service)
			if !errors.Is(err, tt.want) {
				t.Fatalf("read: %v, want %v", err, tt.want)
			}
		})
	}
}

func mustWrite(t *testing.T, c *cache, service string) {
	t.Helper()
	if err := c.write(&cachedState{Service: service, Revision: 1, Files: map[string][]byte{"a.txt": []byte("a")}}); err != nil {
		t.Fatal(err)
	}
}
