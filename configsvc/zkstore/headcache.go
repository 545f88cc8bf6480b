package zkstore

import (
	"sync"

	"github.com/sluicehq/sluice/configsvc"
)

// maxCachedHeads bounds the heads a store remembers for publishing.
const maxCachedHeads = 4096

// headCache remembers, per service or group, the newest head this store
// wrote or read, with its node version, so that a publish on top of it
// sends its transaction without reading the head first: one round trip.
// An entry is only ever a guess. The transaction checks the head's version
// (any change since, by anyone, fails it) and the existence of the head's
// epoch node (a service deleted and created again has another epoch, so a
// head remembered from before can never match it, whatever its version);
// a publish whose guess failed reads the head and tries again. Reads
// (Head, File, watches) never answer from it.
//
// Entries are never modified: a new head replaces the entry. The cached
// document has no Latest (the newest revision's content): a publish
// builds a new one. Only heads in layout 2 are cached, with the manifest
// at their revision (file → revision of its content node), which is what a
// publish on top of them needs.
type headCache struct {
	mu sync.Mutex
	m  map[configsvc.Ref]cachedHead
}

// cachedHead is a head document, the version of the head node that
// holds it, and the manifest at its revision. None of them is modified.
type cachedHead struct {
	doc      *headDoc
	version  int32
	manifest map[string]int64
	cversion int32 // manifest/'s cversion with that manifest
}

func newHeadCache() *headCache {
	return &headCache{m: map[configsvc.Ref]cachedHead{}}
}

// get returns the remembered head of ref when it is at revision rev and
// has an epoch to check.
func (c *headCache) get(ref configsvc.Ref, rev int64) (cachedHead, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[ref]
	if !ok || h.doc.Revision != rev || h.doc.Epoch == "" {
		return cachedHead{}, false
	}
	return h, true
}

// put remembers doc (stored without Latest; doc itself is not modified)
// at version with its manifest (which the cache now owns), unless the
// entry already holds a newer version of the same epoch. Heads in layout 1
// are not cached.
func (c *headCache) put(ref configsvc.Ref, doc *headDoc, version int32, manifest map[string]int64, cversion int32) {
	if !doc.layout2() || manifest == nil {
		return
	}
	d := *doc
	d.Latest = nil
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[ref]; ok && old.doc.Epoch == d.Epoch && old.version > version {
		return
	}
	if _, ok := c.m[ref]; !ok && len(c.m) >= maxCachedHeads {
		for k := range c.m { // evict one entry, any
			delete(c.m, k)
			break
		}
	}
	c.m[ref] = cachedHead{doc: &d, version: version, manifest: manifest, cversion: cversion}
}

// advance replaces ref's entry after a write that set the head from prev
// (at version from) to doc (at version to) without touching the manifest
// (a link or gray change): when the entry holds prev's incarnation and
// revision at version from, doc takes its place with the same manifest.
// Otherwise the entry is left as it is (a later guess fails its version
// check and is dropped then).
func (c *headCache) advance(ref configsvc.Ref, prev *headDoc, from int32, doc *headDoc, to int32) {
	c.mu.Lock()
	h, ok := c.m[ref]
	c.mu.Unlock()
	if !ok || h.version != from || h.doc.Epoch != prev.Epoch || h.doc.Revision != prev.Revision || doc.Revision != prev.Revision {
		return
	}
	c.put(ref, doc, to, h.manifest, h.cversion)
}

// drop forgets ref's entry if it is still used (a guess that failed);
// a newer entry another publish put meanwhile stays.
func (c *headCache) drop(ref configsvc.Ref, used cachedHead) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.m[ref]; ok && h.doc == used.doc {
		delete(c.m, ref)
	}
}

// forget removes ref's entry (the ref was deleted).
func (c *headCache) forget(ref configsvc.Ref) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, ref)
}
