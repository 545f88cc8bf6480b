package zkstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// Layout 2 (docs/zookeeper-layout.md) keeps the manifest of a service or
// group (which file is held by which revision's content node) in one node
// per file, manifest/{file}@{revision}, instead of in the head and in
// every revision node as layout 1 did. A publish deletes and creates the
// manifest nodes of the files it changes and nothing else, so the size of
// its transaction depends on what it changes, not on how many files the
// service has. The head keeps a summary (revision, file count, links).
//
// Reading the manifest lists manifest/ together with the head, pipelined.
// The two answers belong to the same state when the child version
// (cversion) manifest/ comes with in the listing equals the head's
// ManifestCversion: only publishes (and the move to layout 2) change the
// manifest, each changes at least one child, and each writes into its head
// the cversion it leaves manifest/ at; so whichever order ZooKeeper served
// the two reads in, equal versions mean no publish fell between them.

// manifestDir is the node whose children are the manifest of ref.
func (s *Store) manifestDir(ref configsvc.Ref) string { return s.refPath(ref) + "/manifest" }

// manifestNode is the node saying that file is held by revision rev's
// content node.
func (s *Store) manifestNode(ref configsvc.Ref, file string, rev int64) string {
	return s.manifestDir(ref) + "/" + manifestName(file, rev)
}

// manifestName is the name of a manifest node. File names never hold an
// '@', so the last one separates the revision.
func manifestName(file string, rev int64) string { return file + "@" + strconv.FormatInt(rev, 10) }

func parseManifestName(name string) (file string, rev int64, ok bool) {
	i := strings.LastIndexByte(name, '@')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil || n < 1 {
		return "", 0, false
	}
	return name[:i], n, true
}

// fileNodeDoc is the data of a manifest node: what configsvc.FileMeta
// holds beyond the name, the revision and the format (which the file name
// gives). A manifest node is never modified: a change of the file deletes
// it and creates the node of the new revision.
type fileNodeDoc struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// headState is a head with the manifest at its revision.
type headState struct {
	doc      *headDoc
	stat     *zk.Stat
	manifest map[string]int64 // file → revision whose content node holds it
	cversion int32            // manifest/'s cversion with that manifest
}

// maxStateReads bounds the attempts of readStateInOrder to catch a head
// and its manifest between two publishes.
const maxStateReads = 50

// readState reads ref's head and, consistently with it, its manifest; the
// nodes at extra are read in the same round trip (any state: callers pass
// immutable nodes such as revisions) and returned in order. ErrNotFound
// when ref does not exist.
func (s *Store) readState(ctx context.Context, ref configsvc.Ref, extra []string) (headState, []result, error) {
	paths := append([]string{s.headPath(ref)}, extra...)
	for attempt := 0; ; attempt++ {
		l, res, err := s.getWithChildren(ctx, s.manifestDir(ref), paths)
		if err != nil {
			return headState{}, nil, err
		}
		if res[0].err != nil {
			return headState{}, nil, fmt.Errorf("%s does not exist: %w", ref, configsvc.ErrNotFound)
		}
		h, err := decodeHead(res[0].data)
		if err != nil {
			return headState{}, nil, err
		}
		st := headState{doc: h, stat: res[0].stat}
		if !h.layout2() {
			st.manifest = make(map[string]int64, len(h.legacy))
			for name, m := range h.legacy {
				st.manifest[name] = m.Revision
			}
			return st, res[1:], nil
		}
		if l.err != nil && !errors.Is(l.err, zk.ErrNoNode) {
			return headState{}, nil, l.err
		}
		if l.err == nil && l.stat.Cversion == h.ManifestCversion {
			st.cversion = l.stat.Cversion
			st.manifest = make(map[string]int64, len(l.kids))
			for _, k := range l.kids {
				f, n, ok := parseManifestName(k)
				if !ok {
					return headState{}, nil, fmt.Errorf("corrupt manifest node %q", k)
				}
				st.manifest[f] = n
			}
			return st, res[1:], nil
		}
		// A publish fell between the two reads: read both again, and after
		// a second miss one after the other, which needs no version rule (a
		// head whose ManifestCversion is wrong only costs time, and the
		// next publish writes the right one).
		if attempt >= 1 {
			return s.readStateInOrder(ctx, ref, extra)
		}
	}
}

// readStateInOrder is readState with the head, the listing and the head
// again read one after the other: ZooKeeper answers a session's requests
// in order, so when both head reads show the same write, the listing
// between them belongs to it (only head writes change the manifest).
func (s *Store) readStateInOrder(ctx context.Context, ref configsvc.Ref, extra []string) (headState, []result, error) {
	for attempt := 0; attempt < maxStateReads; attempt++ {
		data, stat, err := s.get(ctx, s.headPath(ref))
		if errors.Is(err, zk.ErrNoNode) {
			return headState{}, nil, fmt.Errorf("%s does not exist: %w", ref, configsvc.ErrNotFound)
		}
		if err != nil {
			return headState{}, nil, err
		}
		h, err := decodeHead(data)
		if err != nil {
			return headState{}, nil, err
		}
		if !h.layout2() {
			return s.readState(ctx, ref, extra)
		}
		l, err := call(ctx, s, func(c *zk.Conn) (listing, error) {
			kids, st, err := c.Children(s.manifestDir(ref))
			return listing{kids: kids, stat: st}, err
		})
		if err != nil {
			return headState{}, nil, err
		}
		_, again, err := s.get(ctx, s.headPath(ref))
		if errors.Is(err, zk.ErrNoNode) {
			return headState{}, nil, fmt.Errorf("%s does not exist: %w", ref, configsvc.ErrNotFound)
		}
		if err != nil {
			return headState{}, nil, err
		}
		if again.Mzxid != stat.Mzxid {
			continue
		}
		st := headState{doc: h, stat: stat, manifest: make(map[string]int64, len(l.kids)), cversion: l.stat.Cversion}
		for _, k := range l.kids {
			f, n, ok := parseManifestName(k)
			if !ok {
				return headState{}, nil, fmt.Errorf("corrupt manifest node %q", k)
			}
			st.manifest[f] = n
		}
		res, err := s.getMany(ctx, extra)
		if err != nil {
			return headState{}, nil, err
		}
		return st, res, nil
	}
	return headState{}, nil, fmt.Errorf("the head of %s kept changing while its manifest was read: %w", ref, configsvc.ErrUnavailable)
}

// listing is a children listing with the parent's stat.
type listing struct {
	kids []string
	stat *zk.Stat
	err  error
}

// getWithChildren lists dir and reads paths (getMany), all pipelined on
// the client's one connection: one round trip.
func (s *Store) getWithChildren(ctx context.Context, dir string, paths []string) (listing, []result, error) {
	if !s.connected() {
		if err := s.waitSession(ctx); err != nil {
			return listing{}, nil, err
		}
	}
	lch := make(chan listing, 1)
	if !s.bg.Go(func() {
		kids, st, err := s.conn().Children(dir)
		lch <- listing{kids, st, err}
	}) {
		return listing{}, nil, configsvc.ErrClosed
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return listing{}, nil, err
	}
	select {
	case l := <-lch:
		return l, res, nil
	case <-ctx.Done():
		return listing{}, nil, fmt.Errorf("ZooKeeper did not answer: %w", ctx.Err())
	case <-s.bg.Done():
		return listing{}, nil, configsvc.ErrClosed
	}
}

// errManifestMoved: a manifest node was gone when its metadata was read
// (a publish replaced it): the caller reads the state again.
var errManifestMoved = errors.New("manifest changed while it was read")

// fileMetas returns the manifest of st with metadata: from the head in
// layout 1, else from the manifest nodes (remembered by the store's
// metaCache, as they never change). errManifestMoved when a node was
// replaced meanwhile.
func (s *Store) fileMetas(ctx context.Context, ref configsvc.Ref, st headState) (map[string]configsvc.FileMeta, error) {
	out := make(map[string]configsvc.FileMeta, len(st.manifest))
	if !st.doc.layout2() {
		for name, m := range st.doc.legacy {
			out[name] = m
		}
		return out, nil
	}
	var names, paths []string
	cache := st.doc.Epoch != "" // a head without an epoch has no incarnation to key by
	for name, rev := range st.manifest {
		if d, ok := s.metas.get(metaKey(ref, st.doc.Epoch, st.doc.Generation, name, rev)); cache && ok {
			out[name] = fileMeta(name, rev, d)
			continue
		}
		names = append(names, name)
		paths = append(paths, s.manifestNode(ref, name, rev))
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, err
	}
	for i, r := range res {
		if r.err != nil {
			return nil, errManifestMoved
		}
		d, err := decode[fileNodeDoc]("manifest", r.data)
		if err != nil {
			return nil, err
		}
		rev := st.manifest[names[i]]
		if cache {
			s.metas.put(metaKey(ref, st.doc.Epoch, st.doc.Generation, names[i], rev), *d)
		}
		out[names[i]] = fileMeta(names[i], rev, *d)
	}
	return out, nil
}

func fileMeta(name string, rev int64, d fileNodeDoc) configsvc.FileMeta {
	return configsvc.FileMeta{Name: name, Revision: rev, SHA256: d.SHA256, Size: d.Size, Format: configsvc.FormatOf(name)}
}

// revReadAhead is how many revisions after the one asked for a history
// read fetches in one round trip; fileReadAhead how many File reads in
// its first one (usually enough to find when a file changed next, and
// cheap when it was not needed).
const (
	revReadAhead  = 16
	fileReadAhead = 4
)

// revWindow returns the paths of revisions from..from+n-1.
func (s *Store) revWindow(ref configsvc.Ref, from int64, n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = s.revPath(ref, from+int64(i))
	}
	return paths
}

// revDocs decodes the revision nodes read for revisions from, from+1, …;
// missing ones are left out.
func revDocs(into map[int64]*revDoc, from int64, res []result) error {
	for i, r := range res {
		if r.err != nil {
			continue
		}
		d, err := decode[revDoc]("revision", r.data)
		if err != nil {
			return err
		}
		into[from+int64(i)] = d
	}
	return nil
}

// readRevs reads the revisions from..to that docs lacks. A missing one was
// pruned: ErrCompacted.
func (s *Store) readRevs(ctx context.Context, ref configsvc.Ref, docs map[int64]*revDoc, from, to int64) error {
	var nums []int64
	var paths []string
	for n := from; n <= to; n++ {
		if docs[n] == nil {
			nums = append(nums, n)
			paths = append(paths, s.revPath(ref, n))
		}
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.err != nil {
			return fmt.Errorf("revision %d was pruned: %w", nums[i], configsvc.ErrCompacted)
		}
		d, err := decode[revDoc]("revision", r.data)
		if err != nil {
			return err
		}
		docs[nums[i]] = d
	}
	return nil
}

// manifestAt returns the manifest of ref at revision rev (0 = head), the
// revision it resolved to, the head it was read with and the identity of
// the resolved revision (the head's generation, the revision's publish
// id). An older revision's manifest is the head's with the changes since
// undone (each change names the content its file had before), or, for a
// revision written in layout 1, the manifest its node carries. A rev past
// the head is a *pastHeadError (see readAt).
func (s *Store) manifestAt(ctx context.Context, ref configsvc.Ref, rev int64) (m map[string]int64, at int64, h *headDoc, id configsvc.Identity, err error) {
	var extra []string
	if rev > 0 {
		extra = s.revWindow(ref, rev, revReadAhead+1)
	}
	st, res, err := s.readState(ctx, ref, extra)
	if err != nil {
		return nil, 0, nil, id, err
	}
	h = st.doc
	if rev == 0 || rev == h.Revision {
		return st.manifest, h.Revision, h, h.identity(), nil
	}
	if err := checkRange(h, rev); err != nil {
		return nil, 0, nil, id, err
	}
	docs := map[int64]*revDoc{}
	if err := revDocs(docs, rev, res); err != nil {
		return nil, 0, nil, id, err
	}
	d := docs[rev]
	if d == nil {
		return nil, 0, nil, id, fmt.Errorf("revision %d was pruned: %w", rev, configsvc.ErrCompacted)
	}
	id = configsvc.Identity{Generation: h.Generation, PublishID: d.PublishID}
	if d.Files != nil || !h.layout2() || rev < h.Since {
		if d.Files == nil {
			d.Files = map[string]int64{}
		}
		return d.Files, rev, h, id, nil
	}
	if err := s.readRevs(ctx, ref, docs, rev+1, h.Revision); err != nil {
		return nil, 0, nil, configsvc.Identity{}, err
	}
	m = make(map[string]int64, len(st.manifest))
	for name, n := range st.manifest {
		m[name] = n
	}
	for n := h.Revision; n > rev; n-- {
		for _, c := range docs[n].Changes {
			if c.Prev == 0 {
				delete(m, c.File)
			} else {
				m[c.File] = c.Prev
			}
		}
	}
	return m, rev, h, id, nil
}

// fileAt returns which revision's content node holds file at revision rev
// (0 = head), ok false when the file does not exist there, with the head
// it was read with. It reads only as much history as it needs: a file not
// changed since rev needs none, else the first change after rev says what
// the file was before it. A rev past the head is a *pastHeadError (see
// readAt).
func (s *Store) fileAt(ctx context.Context, ref configsvc.Ref, file string, rev int64) (contentRev int64, ok bool, h *headDoc, err error) {
	var extra []string
	if rev > 0 {
		extra = s.revWindow(ref, rev, fileReadAhead+1)
	}
	st, res, err := s.readState(ctx, ref, extra)
	if err != nil {
		return 0, false, nil, err
	}
	h = st.doc
	cur, exists := st.manifest[file]
	if rev == 0 || rev == h.Revision || exists && cur <= rev {
		if rev != 0 && rev != h.Revision {
			if err := checkRange(h, rev); err != nil {
				return 0, false, nil, err
			}
		}
		return cur, exists, h, nil
	}
	if err := checkRange(h, rev); err != nil {
		return 0, false, nil, err
	}
	docs := map[int64]*revDoc{}
	if err := revDocs(docs, rev, res); err != nil {
		return 0, false, nil, err
	}
	if d := docs[rev]; d == nil {
		return 0, false, nil, fmt.Errorf("revision %d was pruned: %w", rev, configsvc.ErrCompacted)
	} else if d.Files != nil || !h.layout2() || rev < h.Since {
		n, ok := d.Files[file]
		return n, ok, h, nil
	}
	for n := rev + 1; n <= h.Revision; n++ {
		if docs[n] == nil {
			if err := s.readRevs(ctx, ref, docs, n, min(n+revReadAhead, h.Revision)); err != nil {
				return 0, false, nil, err
			}
		}
		for _, c := range docs[n].Changes {
			if c.File == file {
				return c.Prev, c.Prev > 0, h, nil
			}
		}
	}
	return 0, false, h, nil // absent at the head and unchanged since rev
}

// migrate moves the manifest of a head still in layout 1 into manifest/
// nodes and turns the head into layout 2: the manifest nodes are created
// in transactions of bounded size (nodes another server's migration of
// the same manifest created meanwhile are kept), then one transaction sets
// the head, checking its version. Revisions before the head's next one
// stay as they are (layout 1) and are read as such. A service too large
// for one transaction migrates all the same.
//
// Every server that writes a service must run a build that knows layout
// 2 (docs/operations.md): a build that does not cannot decode a layout 2
// head and refuses to publish; one that publishes a layout 1 head while
// another migrates makes that migration start over.
func (s *Store) migrate(ctx context.Context, ref configsvc.Ref) error {
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		h, stat, err := s.readHead(ctx, ref)
		if err != nil {
			return err
		}
		if h.layout2() {
			return nil
		}
		if err := s.createIfMissing(ctx, s.manifestDir(ref), s.acl); err != nil {
			return err
		}
		kids, err := s.children(ctx, s.manifestDir(ref))
		if err != nil {
			return err
		}
		want := make(map[string]configsvc.FileMeta, len(h.legacy))
		for name, m := range h.legacy {
			want[manifestName(name, m.Revision)] = m
		}
		var ops []any
		for _, k := range kids {
			if _, ok := want[k]; ok {
				delete(want, k)
			} else {
				ops = append(ops, &zk.DeleteRequest{Path: s.manifestDir(ref) + "/" + k, Version: -1})
			}
		}
		for _, k := range sortedKeys(want) {
			m := want[k]
			ops = append(ops, &zk.CreateRequest{Path: s.manifestDir(ref) + "/" + k, Data: mustJSON(fileNodeDoc{SHA256: m.SHA256, Size: m.Size}), Acl: s.acl})
		}
		if err := s.applyBounded(ctx, ops); err != nil {
			return err
		}
		dir, err := call(ctx, s, func(c *zk.Conn) (*zk.Stat, error) {
			_, st, err := c.Exists(s.manifestDir(ref))
			return st, err
		})
		if err != nil {
			return err
		}
		next := *h
		next.Files, next.Count, next.Since, next.legacy = manifestMarker, len(h.legacy), h.Revision+1, nil
		next.ManifestCversion = dir.Cversion
		var flip []any
		if next.Epoch == "" {
			next.Epoch = newID(8)
			flip = append(flip, &zk.CreateRequest{Path: s.epochPath(ref, next.Epoch), Acl: s.acl})
		}
		flip = append(flip, &zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(&next), Version: stat.Version})
		_, err = s.multi(ctx, flip...)
		switch {
		case err == nil:
			s.log.Info("zkstore: moved a manifest to layout 2", "ref", ref.String(), "files", len(h.legacy), "revision", h.Revision)
			return nil
		case errors.Is(err, zk.ErrBadVersion):
			continue // a link change, or another server migrated it: look again
		default:
			return err
		}
	}
	return fmt.Errorf("migrating %s to layout 2: its head kept changing: %w", ref, configsvc.ErrConflict)
}

// boundedTxn is the estimated size (opsSize) of the transactions that
// migration and pruning send: a quarter of what ZooKeeper accepts.
const boundedTxn = 256 << 10

// applyBounded applies creations and deletions in transactions of at most
// boundedTxn bytes. A transaction that fails on a node created or deleted
// meanwhile (another server doing the same work) is applied one operation
// at a time, skipping those.
func (s *Store) applyBounded(ctx context.Context, ops []any) error {
	for len(ops) > 0 {
		n := 0
		for n < len(ops) && (n == 0 || opsSize(ops[:n+1]) <= boundedTxn) {
			n++
		}
		batch := ops[:n]
		ops = ops[n:]
		_, err := s.multi(ctx, batch...)
		if err == nil {
			continue
		}
		if !errors.Is(err, zk.ErrNodeExists) && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		for _, op := range batch {
			err := s.do(ctx, func(c *zk.Conn) error {
				switch o := op.(type) {
				case *zk.CreateRequest:
					_, err := c.Create(o.Path, o.Data, o.Flags, o.Acl)
					return err
				case *zk.DeleteRequest:
					return c.Delete(o.Path, o.Version)
				}
				return nil
			})
			if err != nil && !errors.Is(err, zk.ErrNodeExists) && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
		}
	}
	return nil
}

// maxCachedMetas bounds the manifest node data a store remembers.
const maxCachedMetas = 1 << 16

// metaCache remembers the data of manifest nodes. A manifest node never
// changes (a new revision of the file is a new node), and keys carry the
// epoch of the service's incarnation and the store generation (a restore
// from a backup, then a generation bump, may issue revision numbers again
// for other content), so an entry is never stale within one history. A
// restore without a bump issues numbers again under the same key: a
// watcher that finds the history rewritten empties the cache (reset).
// Safe for concurrent use.
type metaCache struct {
	mu sync.Mutex
	m  map[string]fileNodeDoc
}

func newMetaCache() *metaCache { return &metaCache{m: map[string]fileNodeDoc{}} }

func metaKey(ref configsvc.Ref, epoch, generation, file string, rev int64) string {
	return ref.String() + "/" + epoch + "/" + generation + "/" + manifestName(file, rev)
}

func (c *metaCache) get(key string) (fileNodeDoc, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[key]
	return d, ok
}

// reset forgets every entry.
func (c *metaCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

func (c *metaCache) put(key string, d fileNodeDoc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= maxCachedMetas {
		for k := range c.m { // evict one entry, any
			delete(c.m, k)
			break
		}
	}
	c.m[key] = d
}

// sortedRevs returns the keys of m in increasing order.
func sortedRevs[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
