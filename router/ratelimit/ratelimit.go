package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluicehq/sluice/router"
)

// Config bounds per-key limiters. The zero value is the default.
type Config struct {
	// MaxKeys is how many keys one route's limiter tracks at most; 0 means
	// 10000. The keys are spread over 16 shards of MaxKeys/16 each, so the
	// cap may be reached a little early. A new key arriving at a full shard
	// takes the place of an old one (see NewLimiter): every key always has
	// a bucket of its own; none is ever shared.
	MaxKeys int
}

// Limiters makes rate limiters. It holds no state of its own and is safe
// for concurrent use.
type Limiters struct{ cfg Config }

// New returns a factory of limiters.
func New(cfg Config) *Limiters {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 10000
	}
	return &Limiters{cfg: cfg}
}

var _ router.Limiters = (*Limiters)(nil)

// evictSample is how many of a full shard's least recently used keys are
// weighed when a new key needs room.
const evictSample = 8

// NewLimiter returns the limiter of rl: a single bucket for key "global", a
// bucket per key otherwise, at most MaxKeys of them. When a new key finds
// its shard full, one of the shard's evictSample least recently used keys
// makes room: the one whose bucket holds the most tokens, that is, the one
// whose forgetting lets the least extra traffic through (a bucket that has
// refilled loses nothing; a key that sent one request loses one token).
// Keys that drain their buckets, the ones the limit is holding back, are
// kept. So a flood of distinct keys (made-up header values, rotating
// addresses) churns mostly its own keys; it cannot push other clients into
// a shared bucket, as every key, new or old, has its own. capHit is called
// when the evicted bucket had not refilled: that key starts over with a
// full bucket if it comes back.
func (l *Limiters) NewLimiter(route string, rl router.RateLimit, capHit func()) router.Limiter {
	burst := rl.EffectiveBurst()
	if kind, _ := rl.KeyKind(); kind == "global" {
		return &global{lim: rate.NewLimiter(rate.Limit(rl.RPS), burst), rps: rl.RPS}
	}
	k := &keyed{rps: rl.RPS, burst: burst, capHit: capHit, seed: maphash.MakeSeed()}
	per := l.cfg.MaxKeys / len(k.shards)
	if per < 1 {
		per = 1
	}
	for i := range k.shards {
		sh := &k.shards[i]
		sh.keys = map[string]*entry{}
		sh.max = per
		sh.lru.prev, sh.lru.next = &sh.lru, &sh.lru
	}
	return k
}

type global struct {
	lim *rate.Limiter
	rps float64
}

func (g *global) Allow(_ string, now time.Time) router.Decision {
	return decide(g.lim, g.rps, now)
}

func decide(lim *rate.Limiter, rps float64, now time.Time) router.Decision {
	if lim.AllowN(now, 1) {
		return router.Decision{OK: true}
	}
	tokens := lim.TokensAt(now)
	wait := time.Duration((1 - tokens) / rps * float64(time.Second))
	if wait < 0 {
		wait = 0
	}
	return router.Decision{OK: false, Remaining: 0, RetryAfter: wait}
}

type keyed struct {
	rps    float64
	burst  int
	capHit func()
	seed   maphash.Seed
	shards [16]shard
}

// entry is one key's bucket, linked in its shard's recency list.
type entry struct {
	key        string
	lim        *rate.Limiter
	prev, next *entry
}

type shard struct {
	mu   sync.Mutex
	keys map[string]*entry
	max  int
	lru  entry // sentinel: lru.next is the most recently used, lru.prev the least
}

// MaxKeyLen bounds the bytes of a key that are kept: longer keys (a header
// value can be large) are cut, so that MaxKeys keys cannot hold more than
// MaxKeys*MaxKeyLen bytes. Keys sharing their first MaxKeyLen bytes share a
// bucket.
const MaxKeyLen = 128

func (k *keyed) Allow(key string, now time.Time) router.Decision {
	if len(key) > MaxKeyLen {
		key = key[:MaxKeyLen]
	}
	s := &k.shards[maphash.String(k.seed, key)%uint64(len(k.shards))]
	s.mu.Lock()
	e, ok := s.keys[key]
	if ok {
		s.unlink(e)
	} else {
		if len(s.keys) >= s.max {
			k.evict(s, now)
		}
		e = &entry{key: string([]byte(key)), lim: rate.NewLimiter(rate.Limit(k.rps), k.burst)} // own the key: it may point into a request
		s.keys[e.key] = e
	}
	s.pushFront(e)
	s.mu.Unlock()
	return decide(e.lim, k.rps, now)
}

// evict removes, of the evictSample least recently used keys of s, the one
// whose bucket holds the most tokens (the oldest of equals). Caller holds
// s.mu.
func (k *keyed) evict(s *shard, now time.Time) {
	var victim *entry
	best := -1.0
	for e, n := s.lru.prev, 0; e != &s.lru && n < evictSample; e, n = e.prev, n+1 {
		if t := e.lim.TokensAt(now); t > best {
			victim, best = e, t
		}
	}
	if victim == nil {
		return
	}
	s.unlink(victim)
	delete(s.keys, victim.key)
	if best < float64(k.burst) && k.capHit != nil {
		k.capHit()
	}
}

func (s *shard) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

// Len returns how many keys a per-key limiter tracks (0 for a global one);
// for tests and debugging.
func Len(l router.Limiter) int {
	k, ok := l.(*keyed)
	if !ok {
		return 0
	}
	n := 0
	for i := range k.shards {
		k.shards[i].mu.Lock()
		n += len(k.shards[i].keys)
		k.shards[i].mu.Unlock()
	}
	return n
}
