package boltstore_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
)

func ioStats() map[string]int64 {
	b, _ := os.ReadFile("/proc/self/io")
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			m[k] = n
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	m["cpu_us"] = ru.Utime.Nano()/1000 + ru.Stime.Nano()/1000
	return m
}

func measure(t *testing.T, name string, n int, fn func(i int)) {
	for i := 0; i < 600; i++ { // warm up past the default retention
		fn(i)
	}
	a := ioStats()
	start := time.Now()
	for i := 600; i < 600+n; i++ {
		fn(i)
	}
	wall := time.Since(start)
	b := ioStats()
	t.Logf("%-14s wall %6.0fus cpu %6.0fus syscw %5.1f wchar %7.0f write_bytes %7.0f", name,
		float64(wall.Microseconds())/float64(n), float64(b["cpu_us"]-a["cpu_us"])/float64(n),
		float64(b["syscw"]-a["syscw"])/float64(n), float64(b["wchar"]-a["wchar"])/float64(n), float64(b["write_bytes"]-a["write_bytes"])/float64(n))
}

func TestTmpIO(t *testing.T) {
	const n = 1000
	db, _ := bolt.Open(filepath.Join(t.TempDir(), "raw.db"), 0o600, nil)
	defer db.Close()
	key := make([]byte, 8)
	measure(t, "raw", n, func(i int) {
		binary.BigEndian.PutUint64(key, uint64(i+1))
		db.Update(func(tx *bolt.Tx) error {
			bk, _ := tx.CreateBucketIfNotExists([]byte("raw"))
			return bk.Put(key, benchContent)
		})
	})
	for _, ret := range []int{0, 1000000} {
		s := MustOpen(t, boltstore.Options{Retention: ret})
		ctx := context.Background()
		ref := configsvc.Service("bench")
		s.Create(ctx, ref)
		measure(t, "publish/"+strconv.Itoa(ret), n, func(i int) {
			cs := configsvc.Changeset{Base: int64(i), Changes: []configsvc.Change{{File: "a.yaml", Content: benchContent}}}
			if _, err := s.Publish(ctx, ref, cs); err != nil {
				t.Fatal(err)
			}
		})
	}
}
