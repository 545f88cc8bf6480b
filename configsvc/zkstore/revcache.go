package zkstore

import (
	"fmt"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/sluicehq/sluice/configsvc"
)

// revCacheBytes bounds the content held by the watch revision cache.
const revCacheBytes = 16 << 20

// revCache holds recently read revisions (with content) for watchers, so
// that n watchers of one service cost one read of each new revision, not n.
// Revisions are immutable, and entries are keyed by the head node's
// creation zxid, which differs for every incarnation of a service name, and
// the store generation, which a restore followed by a bump changes. A
// restore without a bump issues revision numbers again under the same key:
// the watcher checks every entry it takes against the history it delivers
// (its parent's publish id, the head's) and drops one that does not fit.
// Concurrent misses for one key share one read.
type revCache struct {
	flight singleflight.Group

	mu    sync.Mutex
	items map[revKey]*configsvc.Revision
	order []revKey // insertion order, for eviction
	bytes int
}

type revKey struct {
	czxid int64
	gen   string
	n     int64
}

func newRevCache() *revCache { return &revCache{items: map[revKey]*configsvc.Revision{}} }

// get returns the revision of key k, from the cache (cached is then true)
// or read once by load; fresh skips the cache (a read of the same key in
// flight is shared). The result is the caller's own copy.
func (c *revCache) get(k revKey, fresh bool, load func() (configsvc.Revision, error)) (rev configsvc.Revision, cached bool, err error) {
	if !fresh {
		c.mu.Lock()
		r, ok := c.items[k]
		c.mu.Unlock()
		if ok {
			return copyRevision(r), true, nil
		}
	}
	v, err, _ := c.flight.Do(fmt.Sprint(k.czxid, "/", k.gen, "/", k.n), func() (any, error) {
		r, err := load()
		if err != nil {
			return nil, err
		}
		c.put(k, &r)
		return &r, nil
	})
	if err != nil {
		return configsvc.Revision{}, false, err
	}
	return copyRevision(v.(*configsvc.Revision)), false, nil
}

// drop forgets the entry of k (it did not fit the history being delivered).
func (c *revCache) drop(k revKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.items[k]; ok {
		for _, ch := range r.Changes {
			c.bytes -= len(ch.Content) + len(ch.File)
		}
		delete(c.items, k)
	}
}

func (c *revCache) put(k revKey, r *configsvc.Revision) {
	size := 0
	for _, ch := range r.Changes {
		size += len(ch.Content) + len(ch.File)
	}
	if size > revCacheBytes/4 {
		return // too big to be worth keeping
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items[k]; ok {
		// A fresh read replaces what was there (a revision of a rewritten
		// history under the same key).
		for _, ch := range old.Changes {
			c.bytes -= len(ch.Content) + len(ch.File)
		}
		c.items[k] = r
		c.bytes += size
		return
	}
	c.items[k] = r
	c.order = append(c.order, k)
	c.bytes += size
	for c.bytes > revCacheBytes && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		if o, ok := c.items[old]; ok {
			for _, ch := range o.Changes {
				c.bytes -= len(ch.Content) + len(ch.File)
			}
			delete(c.items, old)
		}
	}
}

// copyRevision returns a deep copy, so receivers may modify what they get.
func copyRevision(r *configsvc.Revision) configsvc.Revision {
	out := *r
	out.Changes = make([]configsvc.Change, len(r.Changes))
	for i, ch := range r.Changes {
		out.Changes[i] = ch
		if ch.Content != nil {
			out.Changes[i].Content = append([]byte{}, ch.Content...)
		}
	}
	return out
}
