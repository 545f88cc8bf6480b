package ratelimit_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/ratelimit"
)

func TestGlobalBucket(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := ratelimit.New(ratelimit.Config{}).NewLimiter("r", router.RateLimit{RPS: 10, Burst: 3}, nil)
	for i := 0; i < 3; i++ {
		if d := l.Allow("", now); !d.OK {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	d := l.Allow("", now)
	if d.OK || d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond {
		t.Fatalf("over burst: %+v, want refused with RetryAfter ≤ 100ms", d)
	}
	if d := l.Allow("", now.Add(100*time.Millisecond)); !d.OK {
		t.Fatalf("one token refilled after 100ms at 10 rps, got %+v", d)
	}
}

func TestPerKeyBucketsAreBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var hits atomic.Int64
	l := ratelimit.New(ratelimit.Config{MaxKeys: 64}).NewLimiter("r", router.RateLimit{RPS: 1, Burst: 1, Key: "ip"}, func() { hits.Add(1) })
	for i := 0; i < 1000; i++ {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
	}
	if n := ratelimit.Len(l); n > 64 {
		t.Fatalf("tracking %d keys, cap is 64", n)
	}
	if hits.Load() == 0 {
		t.Fatal("cap was hit but capHit was never called")
	}
	// Keys idle long enough to refill are forgotten to make room.
	later := now.Add(2 * time.Second)
	before := hits.Load()
	for i := 0; i < 4; i++ { // 4: at most one shard's share of the cap, wherever they hash
		if d := l.Allow(fmt.Sprintf("192.168.0.%d", i), later); !d.OK {
			t.Fatalf("new key %d refused after idle keys refilled", i)
		}
	}
	if hits.Load() != before {
		t.Errorf("capHit called %d more times though idle keys could be evicted", hits.Load()-before)
	}
	// A tracked key keeps its own state.
	l.Allow("192.168.0.1", later)
	if d := l.Allow("192.168.0.1", later); d.OK {
		t.Error("key 192.168.0.1 exceeded its burst of 1 but was allowed")
	}
}

func TestLongKeysAreCut(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := ratelimit.New(ratelimit.Config{}).NewLimiter("r", router.RateLimit{RPS: 1, Burst: 1, Key: "header:X-User"}, nil)
	long := strings.Repeat("u", ratelimit.MaxKeyLen)
	if !l.Allow(long+"-a", now).OK {
		t.Fatal("first long key refused")
	}
	if l.Allow(long+"-b", now).OK {
		t.Fatal("keys equal in their first MaxKeyLen bytes must share a bucket")
	}
	if !l.Allow("short", now).OK {
		t.Fatal("an unrelated key was limited")
	}
}

// TestAttackKeyFloodStarvesNewKeys: a client sending a flood of distinct
// keys (made-up header values, rotating addresses) fills the table; a
// legitimate key arriving afterwards still gets a bucket of its own instead
// of a shared overflow bucket the flood has drained.
func TestAttackKeyFloodStarvesNewKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := ratelimit.New(ratelimit.Config{MaxKeys: 64}).NewLimiter("r", router.RateLimit{RPS: 1, Burst: 5, Key: "header:X-User"}, nil)
	for i := 0; i < 5000; i++ {
		l.Allow(fmt.Sprintf("flood-%d", i), now)
	}
	for i := 0; i < 20; i++ {
		if d := l.Allow(fmt.Sprintf("legit-%d", i), now); !d.OK {
			t.Fatalf("legitimate key %d refused after a flood of distinct keys: %+v", i, d)
		}
	}
	if n := ratelimit.Len(l); n > 64 {
		t.Fatalf("tracking %d keys, cap is 64", n)
	}
}

// TestKeyFloodKeepsDrainedKeys: flooding distinct keys must not make
// the limiter forget a key that drained its bucket (which would let that
// client start over with a full burst): the keys evicted first are those
// whose buckets are fullest, the flood's own.
func TestKeyFloodKeepsDrainedKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evictedWithDebt atomic.Int64
	l := ratelimit.New(ratelimit.Config{MaxKeys: 64}).NewLimiter("r", router.RateLimit{RPS: 1, Burst: 5, Key: "header:X-User"}, func() { evictedWithDebt.Add(1) })
	for i := 0; i < 5; i++ {
		if !l.Allow("heavy", now).OK {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	for i := 0; i < 5000; i++ {
		l.Allow(fmt.Sprintf("flood-%d", i), now)
	}
	if d := l.Allow("heavy", now); d.OK {
		t.Fatal("the flood of distinct keys reset the drained key's bucket")
	}
	if evictedWithDebt.Load() == 0 {
		t.Error("keys were evicted before refilling but capHit was never called")
	}
}
