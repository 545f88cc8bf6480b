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
	if _, err := c.write(want, false); err != nil {
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
	if _, err := c.write(&cachedState{Service: service, Revision: 1, Files: map[string][]byte{"a.txt": []byte("a")}}, false); err != nil {
		t.Fatal(err)
	}
}

// TestCacheNeverReplacesNewerState: processes sharing a cache file each
// write their state after every update; a write never puts an older state
// of one history over a newer one, whatever the order the writes arrive
// in, and a forced write (a rewritten history) replaces anything.
func TestCacheNeverReplacesNewerState(t *testing.T) {
	gen := configsvc.Identity{Generation: "aaaa", PublishID: "p"}
	state := func(rev int64, groups map[string]int64, id configsvc.Identity, file string) *cachedState {
		return &cachedState{Service: "orders", Revision: rev, ID: id, Groups: groups, Files: map[string][]byte{"a.txt": []byte(file)}}
	}
	tests := []struct {
		name     string
		first    *cachedState
		second   *cachedState
		force    bool
		wantKept bool
	}{
		{"older service revision", state(9, nil, gen, "new"), state(8, nil, gen, "old"), false, true},
		{"newer service revision", state(8, nil, gen, "old"), state(9, nil, gen, "new"), false, false},
		{"same revision, older group", state(9, map[string]int64{"g": 4}, gen, "new"), state(9, map[string]int64{"g": 3}, gen, "old"), false, true},
		{"same state again", state(9, map[string]int64{"g": 4}, gen, "new"), state(9, map[string]int64{"g": 4}, gen, "same"), false, false},
		{"another generation", state(9, nil, gen, "old"), state(2, nil, configsvc.Identity{Generation: "bbbb"}, "restored"), false, false},
		{"forced after a rewrite", state(9, nil, gen, "old"), state(2, nil, gen, "rewritten"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t.TempDir(), "orders")
			if _, err := c.write(tt.first, false); err != nil {
				t.Fatal(err)
			}
			kept, err := c.write(tt.second, tt.force)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.read("orders")
			if err != nil {
				t.Fatal(err)
			}
			want := tt.second
			if tt.wantKept {
				want = tt.first
			}
			if kept != tt.wantKept || got.Revision != want.Revision || string(got.Files["a.txt"]) != string(want.Files["a.txt"]) {
				t.Fatalf("second write kept=%v, cache holds r%d %q; want kept=%v and r%d %q",
					kept, got.Revision, got.Files["a.txt"], tt.wantKept, want.Revision, want.Files["a.txt"])
			}
		})
	}
}
