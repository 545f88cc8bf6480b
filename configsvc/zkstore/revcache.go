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
// creation zxid, which differs for every incarnation of a service name, so
// no entry is ever stale. Concurrent misses for one key share one read.
type revCache struct {
	flight singleflight.Group

	mu    sync.Mutex
	items map[revKey]*configsvc.Revision
	order []revKey // insertion order, for eviction
	bytes int
}

type revKey struct {
	czxid int64
	n     int64
}

func newRevCache() *revCache { return &revCache{items: map[revKey]*configsvc.Revision{}} }

// get returns revision n of ref (whose head node was created at czxid),
// from the cache or read once by load. The result is the caller's own copy.
func (c *revCache) get(czxid, n int64, load func() (configsvc.Revision, error)) (configsvc.Revision, error) {
	k := revKey{czxid, n}
	c.mu.Lock()
	r, ok := c.items[k]
	c.mu.Unlock()
	if ok {
		return copyRevision(r), nil
	}
	v, err, _ := c.flight.Do(fmt.Sprint(czxid, "/", n), func() (any, error) {
		r, err := load()
		if err != nil {
			return nil, err
		}
		c.put(k, &r)
		return &r, nil
	})
	if err != nil {
		return configsvc.Revision{}, err
	}
	return copyRevision(v.(*configsvc.Revision)), nil
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
	if _, ok := c.items[k]; ok {
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
