package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/configsvc"
)

// Client keeps a service's configuration live. It is safe for concurrent
// use. Open returns one; Close releases it.
type Client struct {
	cfg   Config
	log   *slog.Logger
	cache *cache
	dial  func(ctx context.Context) (*transport, error)

	srcMu sync.Mutex
	src   *transport

	view      atomic.Pointer[view]
	fromCache atomic.Bool

	// mu guards the fields below. The applier holds it while it applies an
	// update, so Bind and OnChange see either the state before or after.
	mu         sync.Mutex
	refs       map[string]*refState // "" is the service, other keys are linked groups
	links      []string
	groupStops map[string]context.CancelFunc
	bindings   map[string][]binder
	rejects    map[string]rejection
	queues     map[string]*fileQueue
	fallback   map[string][]byte // files of the cache found at Open, last good values for Bind
	closed     bool

	events chan update
	reg    *registrar

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// view is the immutable state that readers see: the effective (good) files
// of the service and its linked groups.
type view struct {
	revision int64            // the service's applied revision
	groups   map[string]int64 // linked group → applied revision
	files    map[string][]byte
}

// refState is the newest state the store reported for one service or group,
// before bindings had their say.
type refState struct {
	rev    int64
	files  map[string][]byte
	synced bool // loaded from the store (not only from the cache)
}

// rejection records why a file's newest content was refused.
type rejection struct {
	revision int64
	err      error
}

// update is one step for the applier, produced by a ref's follower.
type update struct {
	group        string // "" for the service
	rev          *configsvc.Revision
	snap         *loaded
	linksChanged bool
	links        []string
}

// Change describes one file's change, passed to OnChange callbacks. Old and
// New share memory with the client and must not be modified.
type Change struct {
	// File is the name as the client shows it: "db.yaml", or
	// "redis-common/redis.yaml" for a linked group's file.
	File string
	// Old is the previous content; nil when the file is new.
	Old []byte
	// New is the new content; nil when Deleted.
	New []byte
	// Deleted is set when the file was removed (or its group unlinked).
	Deleted bool
	// Revision is the revision of the service, or of the group for a group
	// file, that brought the change.
	Revision int64
}

// Open starts a client for cfg.Service: it loads the service's files and
// those of its linked groups from the configured transport, starts watching
// them, and registers the instance (unless cfg.NoRegister).
//
// When the store cannot be reached within cfg.OpenTimeout (default 5s),
// Open serves the state kept in cfg.CacheDir, logs that it does, and
// FromCache reports true until the store answers again. When neither works,
// the error names both causes (and wraps both). A service that does not
// exist in the store fails with an error wrapping configsvc.ErrNotFound; the
// cache is not used then. The returned client must be closed.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:        cfg,
		log:        cfg.Logger.With("service", cfg.Service),
		cache:      newCache(cfg.CacheDir, cfg.Service),
		refs:       map[string]*refState{},
		groupStops: map[string]context.CancelFunc{},
		bindings:   map[string][]binder{},
		rejects:    map[string]rejection{},
		queues:     map[string]*fileQueue{},
		events:     make(chan update),
	}
	c.dial = c.dialer()
	c.ctx, c.cancel = context.WithCancel(context.Background())

	var cached *cachedState
	var cacheErr error
	if c.cache != nil {
		cached, cacheErr = c.cache.read(cfg.Service)
		if cached != nil {
			c.fallback = cached.Files
		}
	} else {
		cacheErr = errors.New("no CacheDir configured")
	}

	octx, ocancel := context.WithTimeout(ctx, cfg.OpenTimeout)
	storeErr := c.initialLoad(octx)
	ocancel()
	if storeErr != nil {
		if ctx.Err() != nil || !isUnavailable(storeErr) || cached == nil {
			c.cancel()
			if err := c.closeSource(); err != nil {
				c.log.Warn("sdk: closing transport", "err", err)
			}
			if ctx.Err() != nil || !isUnavailable(storeErr) {
				return nil, fmt.Errorf("sdk: open %s: %w", cfg.Service, storeErr)
			}
			return nil, fmt.Errorf("sdk: open %s: store: %w; cache: %w", cfg.Service, storeErr, cacheErr)
		}
		c.loadCached(cached)
		c.fromCache.Store(true)
		c.log.Warn("sdk: store unreachable, serving config from the local cache",
			"cache", c.cache.path, "revision", cached.Revision, "written", cached.Written, "err", storeErr)
	} else if c.cache != nil {
		c.writeCache(c.view.Load())
	}

	if !cfg.NoRegister {
		c.reg = newRegistrar(c)
		c.reg.set(c.instanceLocked)
	}
	c.start()
	return c, nil
}

// dialer returns the function that connects the configured transport.
func (c *Client) dialer() func(ctx context.Context) (*transport, error) {
	cfg := c.cfg
	switch {
	case cfg.Store != nil:
		t := &transport{store: cfg.Store, name: "store"}
		return func(context.Context) (*transport, error) { return t, nil }
	case len(cfg.Servers) > 0:
		t, err := dialHTTP(cfg, c.log)
		return func(context.Context) (*transport, error) { return t, err }
	default:
		return func(ctx context.Context) (*transport, error) { return dialZooKeeper(ctx, cfg) }
	}
}

// source returns the transport, connecting it on first use.
func (c *Client) source(ctx context.Context) (*transport, error) {
	c.srcMu.Lock()
	defer c.srcMu.Unlock()
	if c.src != nil {
		return c.src, nil
	}
	s, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.src = s
	return s, nil
}

func (c *Client) closeSource() error {
	c.srcMu.Lock()
	defer c.srcMu.Unlock()
	if c.src == nil {
		return nil
	}
	err := c.src.release()
	c.src = nil
	return err
}

// initialLoad reads the service and its linked groups from the store.
func (c *Client) initialLoad(ctx context.Context) error {
	src, err := c.source(ctx)
	if err != nil {
		return err
	}
	svc, err := src.load(ctx, configsvc.Service(c.cfg.Service))
	if err != nil {
		return err
	}
	c.refs[""] = &refState{rev: svc.revision, files: svc.files, synced: true}
	c.links = sortedLinks(svc.links)
	for _, g := range c.links {
		grp, err := src.load(ctx, configsvc.Group(g))
		if err != nil {
			return fmt.Errorf("linked group %s: %w", g, err)
		}
		c.refs[g] = &refState{rev: grp.revision, files: grp.files, synced: true}
	}
	v := &view{revision: svc.revision, groups: map[string]int64{}, files: map[string][]byte{}}
	for g, rs := range c.refs {
		if g != "" {
			v.groups[g] = rs.rev
		}
		for name, content := range rs.files {
			v.files[key(g, name)] = content
		}
	}
	c.view.Store(v)
	return nil
}

// loadCached installs the cached state as the current one.
func (c *Client) loadCached(st *cachedState) {
	c.refs = map[string]*refState{"": {rev: st.Revision, files: map[string][]byte{}}}
	c.links = sortedLinks(st.Links)
	for _, g := range c.links {
		c.refs[g] = &refState{rev: st.Groups[g], files: map[string][]byte{}}
	}
	v := &view{revision: st.Revision, groups: map[string]int64{}, files: map[string][]byte{}}
	for g, rs := range c.refs {
		if g != "" {
			v.groups[g] = rs.rev
		}
	}
	for k, content := range st.Files {
		g, name := splitKey(k)
		rs := c.refs[g]
		if rs == nil {
			continue
		}
		rs.files[name] = content
		v.files[k] = content
	}
	c.view.Store(v)
}

// start launches the applier, the followers and the registrar.
func (c *Client) start() {
	fromCache := c.fromCache.Load()
	c.goFunc(c.applyLoop)
	svc := c.refs[""]
	c.goFunc(func(ctx context.Context) { c.follow(ctx, "", svc.rev, fromCache) })
	c.mu.Lock()
	for _, g := range c.links {
		c.startGroupLocked(g, c.refs[g].rev, fromCache)
	}
	c.mu.Unlock()
	if c.reg != nil {
		c.goFunc(c.reg.run)
	}
}

func (c *Client) goFunc(f func(ctx context.Context)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f(c.ctx)
	}()
}

func (c *Client) startGroupLocked(g string, from int64, resync bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.groupStops[g] = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.follow(ctx, g, from, resync)
	}()
}

// Close stops the watches, removes the instance registration, waits for
// every goroutine the client started (including running callbacks) and
// releases the transport. Bindings keep their last values. Close is safe to
// call more than once; later calls return the first call's result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.closeErr = c.closeSource()
	})
	return c.closeErr
}

// Revision returns the revision of the service currently applied: the
// newest one received, even if a binding rejected some of its files.
func (c *Client) Revision() int64 { return c.view.Load().revision }

// GroupRevision returns the applied revision of a linked shared group and
// whether the service links to it.
func (c *Client) GroupRevision(group string) (int64, bool) {
	r, ok := c.view.Load().groups[group]
	return r, ok
}

// FromCache reports whether the client serves the state it read from its
// cache at Open because the store was unreachable; it turns false once the
// store answered and its state was applied.
func (c *Client) FromCache() bool { return c.fromCache.Load() }

// File returns a copy of a file's current content: the last good content
// when a binding rejected a newer one. Linked group files are named
// "group/file".
func (c *Client) File(name string) ([]byte, bool) {
	b, ok := c.view.Load().files[name]
	if !ok {
		return nil, false
	}
	return bytes.Clone(b), true
}

// Files returns the names of the current files, sorted.
func (c *Client) Files() []string {
	return slices.Sorted(maps.Keys(c.view.Load().files))
}

// Links returns the shared groups the service links to, sorted.
func (c *Client) Links() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.links)
}

// OnChange calls fn with every later change of file (a name as File takes
// it) until the returned stop function is called or the client is closed.
// Callbacks for one file run one at a time, in revision order, on a
// goroutine of that file; a slow callback delays only later callbacks of the
// same file, never the watch. A change is passed to the callbacks registered
// when it was applied. Callbacks run after the new state was written to the
// cache and is visible through File and bindings. stop does not wait for a
// running callback; it may be called from inside the callback.
func (c *Client) OnChange(file string, fn func(Change)) (stop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return func() {}
	}
	q := c.queues[file]
	if q == nil {
		q = newFileQueue()
		c.queues[file] = q
		c.goFunc(q.run)
	}
	s := &subscriber{fn: fn}
	q.add(s)
	return func() { q.remove(s) }
}

// send hands u to the applier unless ctx ends first.
func (c *Client) send(ctx context.Context, u update) bool {
	select {
	case c.events <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Client) applyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-c.events:
			c.apply(u)
		}
	}
}

// apply applies one update: it advances the store state, lets bindings
// accept or reject changed files, writes the new good state to the cache,
// publishes it to readers and only then queues the callbacks.
func (c *Client) apply(u update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.refs[u.group]
	if rs == nil {
		return // a group unlinked while its update was in flight
	}
	old := c.view.Load()
	var keys []string
	ref := refOf(c.cfg.Service, u.group)
	var applied int64
	wasSynced := rs.synced
	switch {
	case u.snap != nil:
		for name := range rs.files {
			keys = append(keys, key(u.group, name))
		}
		for name := range u.snap.files {
			if _, ok := rs.files[name]; !ok {
				keys = append(keys, key(u.group, name))
			}
		}
		rs.rev, rs.files, rs.synced = u.snap.revision, u.snap.files, true
		if rs.files == nil {
			rs.files = map[string][]byte{}
		}
		applied = rs.rev
	case u.rev != nil:
		for _, ch := range u.rev.Changes {
			if ch.Delete {
				delete(rs.files, ch.File)
			} else {
				rs.files[ch.File] = ch.Content
			}
			keys = append(keys, key(u.group, ch.File))
		}
		rs.rev = u.rev.Number
		applied = rs.rev
	}
	if u.group == "" && (u.linksChanged || u.snap != nil) {
		keys = append(keys, c.relinkLocked(u.snap != nil, u.links, u.snap)...)
	}

	files := old.files
	var changes []Change
	cloned := false
	for _, k := range keys {
		g, _ := splitKey(k)
		rev := int64(0)
		if st := c.refs[g]; st != nil {
			rev = st.rev
		}
		content, present := c.latestLocked(k)
		cur, had := files[k]
		if present == had && bytes.Equal(content, cur) {
			c.clearRejectLocked(k)
			continue
		}
		if err := c.bindLocked(k, content, present, rev); err != nil {
			continue
		}
		if !cloned {
			files = maps.Clone(files)
			cloned = true
		}
		ch := Change{File: k, Old: cur, Revision: rev}
		if present {
			files[k] = content
			ch.New = content
		} else {
			delete(files, k)
			ch.Deleted = true
		}
		changes = append(changes, ch)
	}

	nv := &view{revision: c.refs[""].rev, groups: make(map[string]int64, len(c.links)), files: files}
	for _, g := range c.links {
		nv.groups[g] = c.refs[g].rev
	}
	if c.cache != nil && (cloned || nv.revision != old.revision || !maps.Equal(nv.groups, old.groups)) {
		c.writeCache(nv)
	}
	c.view.Store(nv)
	if u.group == "" && u.snap != nil && c.fromCache.Load() {
		c.fromCache.Store(false)
		c.log.Info("sdk: store reachable again, state synchronized", "revision", nv.revision)
	}
	if u.snap != nil && !wasSynced {
		c.log.Debug("sdk: synchronized with the store", "ref", refString(ref), "revision", applied)
	}
	// Metrics first: a callback that reads them (or waits for them) must
	// see the revision it is called for counted.
	if applied > 0 {
		c.cfg.Metrics.RevisionApplied(refString(ref), applied)
	}
	for _, ch := range changes {
		if q := c.queues[ch.File]; q != nil {
			q.push(ch)
		}
	}
	if c.reg != nil {
		c.reg.set(c.instanceLocked)
	}
}

// relinkLocked installs a new set of linked groups and returns the keys of
// files that left with unlinked groups. Groups that appear start a follower
// that loads them.
func (c *Client) relinkLocked(fromSnap bool, links []string, snap *loaded) []string {
	if fromSnap {
		links = snap.links
	}
	links = sortedLinks(links)
	if slices.Equal(links, c.links) {
		return nil
	}
	var keys []string
	for _, g := range c.links {
		if slices.Contains(links, g) {
			continue
		}
		if stop := c.groupStops[g]; stop != nil {
			stop()
		}
		delete(c.groupStops, g)
		if rs := c.refs[g]; rs != nil {
			for name := range rs.files {
				keys = append(keys, key(g, name))
			}
		}
		delete(c.refs, g)
		c.log.Info("sdk: shared group unlinked", "group", g)
	}
	for _, g := range links {
		if slices.Contains(c.links, g) {
			continue
		}
		c.refs[g] = &refState{files: map[string][]byte{}}
		c.startGroupLocked(g, 0, true)
		c.log.Info("sdk: shared group linked", "group", g)
	}
	c.links = links
	return keys
}

// latestLocked returns the newest content the store reported for k.
func (c *Client) latestLocked(k string) ([]byte, bool) {
	g, name := splitKey(k)
	rs := c.refs[g]
	if rs == nil {
		return nil, false
	}
	b, ok := rs.files[name]
	return b, ok
}

// bindLocked offers content to the bindings of k. When one refuses it, the
// rejection is recorded, every binding of k keeps its value, and the error
// is returned: the file keeps its last good content.
func (c *Client) bindLocked(k string, content []byte, present bool, rev int64) error {
	bs := c.bindings[k]
	if len(bs) == 0 {
		delete(c.rejects, k)
		return nil
	}
	var firstErr error
	commits := make([]func(), 0, len(bs))
	errs := make([]error, len(bs))
	for i, b := range bs {
		var err error
		if !present {
			err = fmt.Errorf("sdk: %s was deleted at revision %d: %w", k, rev, configsvc.ErrNotFound)
		} else {
			var commit func()
			commit, err = b.decode(content)
			if err != nil {
				err = fmt.Errorf("sdk: %s at revision %d: %w", k, rev, err)
			}
			commits = append(commits, commit)
		}
		errs[i] = err
		if firstErr == nil && err != nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		for i, b := range bs {
			if errs[i] != nil {
				b.setErr(errs[i])
			} else {
				b.setErr(fmt.Errorf("sdk: %s at revision %d rejected by another binding: %w", k, rev, firstErr))
			}
		}
		c.rejects[k] = rejection{revision: rev, err: firstErr}
		c.cfg.Metrics.RevisionRejected(k, rev)
		c.log.Warn("sdk: revision rejected, keeping the last good value", "file", k, "revision", rev, "err", firstErr)
		return firstErr
	}
	for i, b := range bs {
		commits[i]()
		b.setErr(nil)
	}
	delete(c.rejects, k)
	return nil
}

// clearRejectLocked forgets a rejection of k when its content is back to
// the good one.
func (c *Client) clearRejectLocked(k string) {
	if _, ok := c.rejects[k]; !ok {
		return
	}
	delete(c.rejects, k)
	for _, b := range c.bindings[k] {
		b.setErr(nil)
	}
}

// instanceLocked fills in the registration's view of the client state.
// AppliedAt moves only when the applied revision does (or is first
// reported), so the record says since when the instance runs it.
func (c *Client) instanceLocked(inst *configsvc.Instance) {
	v := c.view.Load()
	if inst.AppliedAt.IsZero() || inst.Revision != v.revision {
		inst.AppliedAt = c.cfg.Now().UTC()
	}
	inst.Revision = v.revision
	inst.FromCache = c.fromCache.Load()
	inst.Status = configsvc.StatusApplied
	inst.Rejected, inst.Error = 0, ""
	var newest string
	for k, r := range c.rejects {
		if inst.Status != configsvc.StatusRejected || r.revision > inst.Rejected || r.revision == inst.Rejected && k < newest {
			inst.Status = configsvc.StatusRejected
			inst.Rejected = r.revision
			inst.Error = configsvc.Truncate(r.err.Error(), configsvc.MaxInstanceErrorLen)
			newest = k
		}
	}
}

func (c *Client) writeCache(v *view) {
	st := &cachedState{
		Service: c.cfg.Service, Revision: v.revision, Links: c.links,
		Groups: v.groups, Files: v.files, Written: c.cfg.Now().UTC(),
	}
	if err := c.cache.write(st); err != nil {
		c.log.Warn("sdk: writing the cache", "err", err)
	}
}

// key returns the client-visible name of a file of group g ("" = service).
func key(g, name string) string {
	if g == "" {
		return name
	}
	return g + "/" + name
}

func splitKey(k string) (group, name string) {
	g, n, ok := strings.Cut(k, "/")
	if !ok {
		return "", k
	}
	return g, n
}

func refOf(service, group string) configsvc.Ref {
	if group == "" {
		return configsvc.Service(service)
	}
	return configsvc.Group(group)
}

func sortedLinks(l []string) []string {
	out := slices.Clone(l)
	slices.Sort(out)
	return slices.Compact(out)
}
