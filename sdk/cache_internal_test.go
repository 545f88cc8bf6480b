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

func TestBackoffBounds(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 80 * time.Millisecond}
	for i := range 50 {
		d := b.next()
		hi := min(10*time.Millisecond<<min(i, 20), 80*time.Millisecond)
		if d < 10*time.Millisecond || d > hi {
			t.Fatalf("attempt %d: %v outside [10ms, %v]", i, d, hi)
		}
	}
	b.reset()
	if d := b.next(); d > 10*time.Millisecond {
		t.Fatalf("after reset: %v, want 10ms", d)
	}
}

func TestDecodeSSE(t *testing.T) {
	tests := []struct {
		name   string
		event  string
		data   string
		final  bool
		check  func(t *testing.T, ev configsvc.Event)
		decErr bool
	}{
		{
			name: "revision", event: "revision",
			data: `{"revision":4,"author":"ann","message":"m","changes":[{"file":"a.json","content":"{\"x\":1}"},{"file":"b.txt","delete":true}]}`,
			check: func(t *testing.T, ev configsvc.Event) {
				r := ev.Revision
				if r == nil || r.Number != 4 || len(r.Changes) != 2 || string(r.Changes[0].Content) != `{"x":1}` || !r.Changes[1].Delete {
					t.Fatalf("revision event decoded as %+v", r)
				}
			},
		},
		{
			name: "links", event: "links", data: `{"links":["g1","g2"]}`,
			check: func(t *testing.T, ev configsvc.Event) {
				if !ev.LinksChanged || len(ev.Links) != 2 {
					t.Fatalf("links event decoded as %+v", ev)
				}
			},
		},
		{
			name: "compacted ends", event: "error", data: `{"error":{"code":"compacted","message":"gone"}}`, final: true,
			check: func(t *testing.T, ev configsvc.Event) {
				if !errors.Is(ev.Err, configsvc.ErrCompacted) {
					t.Fatalf("err %v, want compacted", ev.Err)
				}
			},
		},
		{
			name: "not found ends", event: "error", data: `{"error":{"code":"not_found","message":"no"}}`, final: true,
			check: func(t *testing.T, ev configsvc.Event) {
				if !errors.Is(ev.Err, configsvc.ErrNotFound) {
					t.Fatalf("err %v, want not found", ev.Err)
				}
			},
		},
		{
			name: "unavailable informs", event: "error", data: `{"error":{"code":"unavailable","message":"zk down"}}`,
			check: func(t *testing.T, ev configsvc.Event) {
				if !errors.Is(ev.Err, configsvc.ErrUnavailable) {
					t.Fatalf("err %v, want unavailable", ev.Err)
				}
			},
		},
		{name: "bad json", event: "revision", data: `{`, decErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, final, err := decodeSSE(tt.event, []byte(tt.data))
			if (err != nil) != tt.decErr {
				t.Fatalf("err = %v, want error %v", err, tt.decErr)
			}
			if final != tt.final {
				t.Fatalf("final = %v, want %v", final, tt.final)
			}
			if tt.check != nil {
				tt.check(t, ev)
			}
		})
	}
}
