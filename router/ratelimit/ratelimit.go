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
	// cap may be reached a little early. Keys beyond it share one overflow
	// bucket per shard (and the route's capHit callback is called for each
	// such request).
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

// NewLimiter returns the limiter of rl: a single bucket for key "global", a
// bucket per key otherwise. A per-key bucket that has refilled completely
// (its key idle for Burst/RPS seconds) equals a new one and is forgotten
// when room is needed, so memory stays bounded by MaxKeys.
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
		k.shards[i] = shard{keys: map[string]*rate.Limiter{}, max: per, overflow: rate.NewLimiter(rate.Limit(rl.RPS), burst)}
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

type shard struct {
	mu        sync.Mutex
	keys      map[string]*rate.Limiter
	max       int
	overflow  *rate.Limiter
	lastSweep time.Time
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
	lim, ok := s.keys[key]
	if !ok {
		if len(s.keys) >= s.max && now.Sub(s.lastSweep) >= 100*time.Millisecond {
			s.lastSweep = now
			for kk, l := range s.keys {
				if l.TokensAt(now) >= float64(k.burst) {
					delete(s.keys, kk)
				}
			}
		}
		if len(s.keys) < s.max {
			lim = rate.NewLimiter(rate.Limit(k.rps), k.burst)
			s.keys[string([]byte(key))] = lim // own the key: it may point into a request
		} else {
			lim = s.overflow
			if k.capHit != nil {
				k.capHit()
			}
		}
	}
	s.mu.Unlock()
	return decide(lim, k.rps, now)
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
