package sdk

import (
	"bytes"
	"cmp"
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
	keys  *dataKeys // opens secret files (secrets.go)

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
	fallback   map[string][]byte         // files of the cache found at Open, last good values for Bind
	rewritten  *configsvc.HistoryRewrite // the last rewritten history reloaded, for the instance record
	closed     bool

	cacheErr atomic.Pointer[errBox] // the last cache write's error; nil after a success

	events chan update
	reg    *registrar

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// view is the immutable state that readers see: the effective (good) files
// of the service and its linked groups, main + the grays the instance is in.
type view struct {
	revision int64            // the service's applied revision
	groups   map[string]int64 // linked group → applied revision
	files    map[string][]byte
	grays    []string // ids of the grays the instance is in, sorted
}

// refState is the newest state the store reported for one service or group,
// before bindings had their say.
type refState struct {
	rev    int64
	id     configsvc.Identity // identity of rev
	files  map[string][]byte  // main's files at rev
	synced bool               // loaded from the store (not only from the cache)
	// grays are the summaries of the ref's active grays (sorted by id), in
	// the grays this instance is in, with content (gray.go).
	grays []configsvc.GraySummary
	in    map[string]*grayHeld
}

// position is where a follower of one service or group stands: the
// revision applied and its identity.
type position struct {
	rev int64
	id  configsvc.Identity
}

func (rs *refState) position() position { return position{rev: rs.rev, id: rs.id} }

// rejection records why a file's newest content was refused; gray is the
// gray whose content it was ("" for main's).
type rejection struct {
	revision int64
	err      error
	gray     string
}

// update is one step for the applier, produced by a ref's follower.
type update struct {
	group string // "" for the service
	rev   *configsvc.Revision
	snap  *loaded
	// rewrite marks snap as the reload after the store reported the
	// history rewritten: it is applied whatever its revision.
	rewrite bool
	// recreated marks snap as the reload after the ref was deleted: the
	// ref may have been created again, whose revisions start over, so a
	// snap below the revision held is a new history, not a store behind.
	recreated    bool
	linksChanged bool
	links        []string
	// grays, when not nil, is the ref's new gray state (a GraysChanged
	// event; the grays this instance is in loaded).
	grays *graySet
	// done, when not nil, receives the ref's state once the update was
	// applied (or refused).
	done chan held
}

// held is where a ref's follower stands once the applier handled an
// update: the position and the gray state it holds.
type held struct {
	pos   position
	grays graySet
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
	// file, that the client holds with the change: the one that brought
	// it, or for a gray's change the main revision it applies on.
	Revision int64
	// Gray is the id of the gray whose content the file now has; empty when
	// it is main's (also when a gray the instance left gave the file back
	// to main).
	Gray string
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
	if c.keys, err = newDataKeys(cfg); err != nil {
		return nil, err
	}
	c.dial = c.dialer()
	c.ctx, c.cancel = context.WithCancel(context.Background())

	var cached *cachedState
	var cacheErr error
	if c.cache != nil {
		cached, cacheErr = c.cache.read(cfg.Service)
		if cached != nil {
			c.fallback = c.cachedFiles(cached)
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
			_ = c.keys.close()
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
		c.persistLocked(c.view.Load(), false)
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
	svc, err := c.loadFrom(ctx, src, configsvc.Service(c.cfg.Service), nil)
	if err != nil {
		return err
	}
	c.refs[""] = svc.state()
	c.links = sortedLinks(svc.links)
	for _, g := range c.links {
		grp, err := c.loadFrom(ctx, src, configsvc.Group(g), nil)
		if err != nil {
			return fmt.Errorf("linked group %s: %w", g, err)
		}
		c.refs[g] = grp.state()
	}
	v := &view{revision: svc.revision, groups: map[string]int64{}, files: map[string][]byte{}}
	for g, rs := range c.refs {
		if g != "" {
			v.groups[g] = rs.rev
		}
		for _, name := range append(slices.Collect(maps.Keys(rs.files)), grayFiles(rs.in)...) {
			if content, ok := c.latestLocked(key(g, name)); ok {
				v.files[key(g, name)] = content
			}
		}
	}
	v.grays = c.grayIDsLocked()
	c.view.Store(v)
	return nil
}

// loadCached installs the cached state as the current one.
func (c *Client) loadCached(st *cachedState) {
	c.refs = map[string]*refState{"": {rev: st.Revision, id: st.ID, files: map[string][]byte{}}}
	c.links = sortedLinks(st.Links)
	for _, g := range c.links {
		c.refs[g] = &refState{rev: st.Groups[g], id: st.GroupIDs[g], files: map[string][]byte{}}
	}
	v := &view{revision: st.Revision, groups: map[string]int64{}, files: map[string][]byte{}}
	for g, rs := range c.refs {
		if g != "" {
			v.groups[g] = rs.rev
		}
	}
	for k, content := range c.cachedFiles(st) {
		g, name := splitKey(k)
		rs := c.refs[g]
		if rs == nil {
			continue
		}
		rs.files[name] = content
		v.files[k] = content
	}
	c.restoreGrays(st)
	v.grays = c.grayIDsLocked()
	c.view.Store(v)
}

// start launches the applier, the followers and the registrar.
func (c *Client) start() {
	fromCache := c.fromCache.Load()
	c.goFunc(c.applyLoop)
	svc := c.refs[""].position()
	c.goFunc(func(ctx context.Context) { c.follow(ctx, "", svc, fromCache) })
	c.mu.Lock()
	for _, g := range c.links {
		c.startGroupLocked(g, c.refs[g].position(), fromCache)
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

func (c *Client) startGroupLocked(g string, from position, resync bool) {
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
		c.closeErr = errors.Join(c.closeSource(), c.keys.close())
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

// Err returns the error of the last write of the local cache (CacheDir),
// or nil when it succeeded or there is no cache. A failed write does not
// hold back the new state (the service runs on it), but the cache keeps an
// older one until a later write succeeds, so a restart while the store is
// unreachable would start from it; Metrics.CacheWriteFailed counts the
// failures.
func (c *Client) Err() error {
	if e := c.cacheErr.Load(); e != nil {
		return e.err
	}
	return nil
}

// File returns a copy of a file's current content: the last good content
// when a binding rejected a newer one. Linked group files are named
// "group/file". A secret file (docs/secrets.md) is returned decrypted; it
// is reported missing (false, with a log line) when its data key cannot be
// had from the admin server (no secrets grant, no KeyServers, key missing).
func (c *Client) File(name string) ([]byte, bool) {
	b, ok := c.view.Load().files[name]
	if !ok {
		return nil, false
	}
	plain, err := c.keys.reveal(c.ctx, c.cfg.Service, name, b)
	if err != nil {
		c.log.Warn("sdk: secret file cannot be opened", "file", name, "err", err)
		return nil, false
	}
	return bytes.Clone(plain), true
}

// decodeLocked offers the content of file k to binding b, opening it
// first when it is a secret file.
func (c *Client) decodeLocked(b binder, k string, content []byte) (func(), error) {
	plain, err := c.keys.reveal(c.ctx, c.cfg.Service, k, content)
	if err != nil {
		return nil, err
	}
	commit, err := b.decode(plain)
	if err != nil && configsvc.IsSecretFile(k) {
		// Decoders and Validate methods quote values ("cannot unmarshal
		// !!str `…`"); the reason reaches logs, metrics and the instance
		// record, so a secret file's says only that it was refused.
		return nil, fmt.Errorf("sdk: secret file %s does not decode or validate (details hidden: they may quote the value): %w", k, configsvc.ErrInvalid)
	}
	return commit, err
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
	if configsvc.IsSecretFile(file) {
		fn = c.revealChange(fn)
	}
	s := &subscriber{fn: fn}
	q.add(s)
	return func() { q.remove(s) }
}

// revealChange returns fn called with a secret file's Old and New opened
// (nil when they cannot be: the binding of the file reports why).
func (c *Client) revealChange(fn func(Change)) func(Change) {
	return func(ch Change) {
		for _, p := range []*[]byte{&ch.Old, &ch.New} {
			if *p == nil {
				continue
			}
			plain, err := c.keys.reveal(c.ctx, c.cfg.Service, ch.File, *p)
			if err != nil {
				c.log.Warn("sdk: secret file cannot be opened", "file", ch.File, "err", err)
			}
			*p = plain
		}
		fn(ch)
	}
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

// sendWait hands u to the applier and waits until it was applied (or
// refused); it returns the ref's state then. ok is false when ctx ended
// first.
func (c *Client) sendWait(ctx context.Context, u update) (h held, ok bool) {
	u.done = make(chan held, 1)
	if !c.send(ctx, u) {
		return held{}, false
	}
	select {
	case h = <-u.done:
		return h, true
	case <-ctx.Done():
		return held{}, false
	}
}

func (c *Client) applyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-c.events:
			h := c.apply(u)
			if u.done != nil {
				u.done <- h
			}
		}
	}
}

// heldOf returns the state the client holds of group's ref ("" the
// service).
func (c *Client) heldOf(group string) held {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.refs[group]
	if rs == nil {
		return held{}
	}
	return rs.held()
}

func (rs *refState) held() held {
	return held{pos: rs.position(), grays: graySet{summaries: rs.grays, in: rs.in}}
}

// apply applies one update, in the order docs/sdk.md promises, one step
// per function: advanceLocked merges it into the store state (refusing
// what would go back in time), offerLocked lets the bindings accept or
// refuse each changed file, persistLocked writes the new good state to the
// cache, and only then publishLocked makes it visible to File and Load;
// notifyLocked counts it, queues the callbacks and refreshes the instance
// record. It returns the ref's state after the update.
func (c *Client) apply(u update) held {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.refs[u.group]
	if rs == nil {
		return held{} // a group unlinked while its update was in flight
	}
	step, ok := c.advanceLocked(u, rs)
	if !ok {
		return rs.held()
	}
	old := c.view.Load()
	files, changes, commits := c.offerLocked(step.keys, old.files)
	nv := c.nextViewLocked(files)
	if c.cache != nil && (len(changes) > 0 || step.rewrite != nil || step.graysMoved || nv.revision != old.revision || !maps.Equal(nv.groups, old.groups)) {
		c.persistLocked(nv, step.rewrite != nil)
	}
	c.publishLocked(nv, commits)
	c.notifyLocked(u, step, changes)
	return rs.held()
}

// stepResult is what advanceLocked did to the store state.
type stepResult struct {
	ref       configsvc.Ref
	keys      []string // client-visible files the update may have changed
	applied   int64    // the revision now held, for metrics; 0 if none
	wasSynced bool     // the ref had been loaded from the store before
	rewrite   *configsvc.HistoryRewrite
	// graysMoved: the grays the instance is in (or their versions) changed.
	graysMoved bool
	joined     []string // ids of the grays the instance entered
	left       []string // ids of the grays it left
}

// advanceLocked merges u into rs: a revision or a snapshot of the ref and,
// for the service, its links. It never goes back in time within one
// history: a revision at or below the one held, or a snapshot below it
// (a store or server that has not caught up) is refused (ok false). A
// snapshot of another history — u.rewrite (the store reported it), another
// generation, the revision held carrying another publish id, or, after
// the ref was deleted (u.recreated), a lower revision — is applied
// whatever its revision and recorded as a rewrite.
func (c *Client) advanceLocked(u update, rs *refState) (step stepResult, ok bool) {
	step.ref = refOf(c.cfg.Service, u.group)
	step.wasSynced = rs.synced
	switch {
	case u.snap != nil:
		snap := u.snap
		held := rs.position()
		rewritten := u.rewrite || !held.id.SameGeneration(snap.id) ||
			snap.revision == held.rev && held.rev > 0 && !held.id.Matches(snap.id) ||
			u.recreated && snap.revision < held.rev
		if !rewritten && snap.revision < held.rev {
			c.log.Info("sdk: the store is behind the revision applied; keeping it and waiting for the store",
				"ref", refString(step.ref), "store", snap.revision, "applied", held.rev)
			return step, false
		}
		for name := range rs.files {
			step.keys = append(step.keys, key(u.group, name))
		}
		for name := range snap.files {
			if _, ok := rs.files[name]; !ok {
				step.keys = append(step.keys, key(u.group, name))
			}
		}
		for _, name := range append(grayFiles(rs.in), grayFiles(snap.grays.in)...) {
			step.keys = append(step.keys, key(u.group, name))
		}
		c.moveGraysLocked(&step, rs, snap.grays)
		rs.rev, rs.id, rs.files, rs.synced = snap.revision, snap.id, snap.files, true
		if rs.files == nil {
			rs.files = map[string][]byte{}
		}
		step.applied = rs.rev
		if rewritten {
			step.rewrite = &configsvc.HistoryRewrite{Ref: refString(step.ref), From: held.rev, To: snap.revision,
				Generation: snap.id.Generation, At: c.cfg.Now().UTC()}
		}
	case u.rev != nil:
		if u.rev.Number <= rs.rev {
			return step, false // already applied
		}
		for _, ch := range u.rev.Changes {
			if ch.Delete {
				delete(rs.files, ch.File)
			} else {
				rs.files[ch.File] = ch.Content
			}
			step.keys = append(step.keys, key(u.group, ch.File))
		}
		rs.rev = u.rev.Number
		rs.id = configsvc.Identity{Generation: cmp.Or(u.rev.Generation, rs.id.Generation), PublishID: u.rev.PublishID}
		step.applied = rs.rev
	case u.grays != nil:
		for _, name := range movedGrayFiles(rs.in, u.grays.in) {
			step.keys = append(step.keys, key(u.group, name))
		}
		c.moveGraysLocked(&step, rs, *u.grays)
	}
	if u.group == "" && (u.linksChanged || u.snap != nil) {
		step.keys = append(step.keys, c.relinkLocked(u.snap != nil, u.links, u.snap)...)
	}
	return step, true
}

// offerLocked offers the newest content of each of keys to its bindings
// and returns the files readers will see (files with the accepted changes;
// files itself when nothing changed), the changes for the callbacks, and
// the commits that install the bindings' new values. Nothing is visible
// to readers yet: a refused file keeps its good content and its bindings
// their value.
func (c *Client) offerLocked(keys []string, files map[string][]byte) (map[string][]byte, []Change, []func()) {
	var changes []Change
	var commits []func()
	cloned := false
	for _, k := range keys {
		g, _ := splitKey(k)
		rev := int64(0)
		if st := c.refs[g]; st != nil {
			rev = st.rev
		}
		content, present := c.latestLocked(k)
		gray := c.grayOfLocked(k)
		cur, had := files[k]
		if present == had && bytes.Equal(content, cur) {
			c.clearRejectLocked(k)
			continue
		}
		commit, err := c.bindLocked(k, content, present, rev, gray)
		if err != nil {
			continue
		}
		commits = append(commits, commit)
		if !cloned {
			files = maps.Clone(files)
			cloned = true
		}
		ch := Change{File: k, Old: cur, Revision: rev, Gray: gray}
		if present {
			files[k] = content
			ch.New = content
		} else {
			delete(files, k)
			ch.Deleted = true
		}
		changes = append(changes, ch)
	}
	return files, changes, commits
}

// nextViewLocked returns the view of files at the revisions and grays now
// held.
func (c *Client) nextViewLocked(files map[string][]byte) *view {
	nv := &view{revision: c.refs[""].rev, groups: make(map[string]int64, len(c.links)), files: files, grays: c.grayIDsLocked()}
	for _, g := range c.links {
		nv.groups[g] = c.refs[g].rev
	}
	return nv
}

// publishLocked makes nv and the bindings' new values visible to readers.
func (c *Client) publishLocked(nv *view, commits []func()) {
	for _, commit := range commits {
		commit()
	}
	c.view.Store(nv)
}

// notifyLocked reports what apply did: logs, metrics, the callbacks of the
// changed files and the instance record.
func (c *Client) notifyLocked(u update, step stepResult, changes []Change) {
	if u.group == "" && (u.snap != nil || u.rev != nil) && c.fromCache.Load() {
		// The service's state now comes from the store: a snapshot, or a
		// revision on top of the cached one that the store's watch, which
		// checked it follows the cached revision, delivered.
		c.fromCache.Store(false)
		c.log.Info("sdk: store reachable again, state synchronized", "revision", c.refs[""].rev)
	}
	if u.snap != nil && !step.wasSynced {
		c.log.Debug("sdk: synchronized with the store", "ref", refString(step.ref), "revision", step.applied)
	}
	for _, id := range step.joined {
		c.log.Info("sdk: in the cohort of a gray; applying it", "ref", refString(step.ref), "gray", id)
	}
	for _, id := range step.left {
		c.log.Info("sdk: left a gray (ended, or the cohort no longer includes this instance); back to main for its files", "ref", refString(step.ref), "gray", id)
	}
	if rw := step.rewrite; rw != nil {
		c.rewritten = rw
		c.log.Warn("sdk: the store's history was rewritten (restored or imported?); reloaded it as a new state",
			"ref", rw.Ref, "from", rw.From, "to", rw.To, "generation", rw.Generation)
		c.cfg.Metrics.HistoryRewritten(rw.Ref, rw.From, rw.To)
	}
	// Metrics first: a callback that reads them (or waits for them) must
	// see the revision it is called for counted.
	if step.applied > 0 {
		c.cfg.Metrics.RevisionApplied(refString(step.ref), step.applied)
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
			for _, name := range grayFiles(rs.in) {
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
		c.startGroupLocked(g, position{}, true)
		c.log.Info("sdk: shared group linked", "group", g)
	}
	c.links = links
	return keys
}

// latestLocked returns the newest content the store reported for k, as
// this instance sees it: the content of the gray it is in that holds k
// (absent when the gray deletes it), else main's.
func (c *Client) latestLocked(k string) ([]byte, bool) {
	g, name := splitKey(k)
	rs := c.refs[g]
	if rs == nil {
		return nil, false
	}
	if h := heldGray(rs.in, name); h != nil {
		ch := h.changes[name]
		return ch.Content, !ch.Delete
	}
	b, ok := rs.files[name]
	return b, ok
}

// grayOfLocked returns the id of the gray whose content k has for this
// instance; "" for main's.
func (c *Client) grayOfLocked(k string) string {
	g, name := splitKey(k)
	if rs := c.refs[g]; rs != nil {
		if h := heldGray(rs.in, name); h != nil {
			return h.summary.ID
		}
	}
	return ""
}

// bindLocked offers content to the bindings of k. When one refuses it, the
// rejection is recorded, every binding of k keeps its value, and the error
// is returned: the file keeps its last good content. Otherwise it returns
// the commit that installs the new value in every binding and clears the
// rejection; the caller runs it once the state may become visible.
func (c *Client) bindLocked(k string, content []byte, present bool, rev int64, gray string) (func(), error) {
	bs := c.bindings[k]
	if len(bs) == 0 {
		return func() { delete(c.rejects, k) }, nil
	}
	var firstErr error
	commits := make([]func(), 0, len(bs))
	errs := make([]error, len(bs))
	for i, b := range bs {
		var err error
		if !present && gray != "" {
			err = fmt.Errorf("sdk: %s is deleted by gray %s: %w", k, gray, configsvc.ErrNotFound)
		} else if !present {
			err = fmt.Errorf("sdk: %s was deleted at revision %d: %w", k, rev, configsvc.ErrNotFound)
		} else {
			var commit func()
			commit, err = c.decodeLocked(b, k, content)
			if err != nil && gray != "" {
				err = fmt.Errorf("sdk: %s of gray %s: %w", k, gray, err)
			} else if err != nil {
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
		c.rejects[k] = rejection{revision: rev, err: firstErr, gray: gray}
		c.cfg.Metrics.RevisionRejected(k, rev)
		if gray != "" {
			c.log.Warn("sdk: gray content rejected, keeping the last good value", "file", k, "gray", gray, "revision", rev, "err", firstErr)
		} else {
			c.log.Warn("sdk: revision rejected, keeping the last good value", "file", k, "revision", rev, "err", firstErr)
		}
		return nil, firstErr
	}
	return func() {
		for i, b := range bs {
			commits[i]()
			b.setErr(nil)
		}
		delete(c.rejects, k)
	}, nil
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
	inst.Generation = c.refs[""].id.Generation
	inst.Rewritten = c.rewritten
	inst.FromCache = c.fromCache.Load()
	inst.Status = configsvc.StatusApplied
	inst.Rejected, inst.Error = 0, ""
	inst.Grays = c.grayStatusesLocked()
	var newest string
	for k, r := range c.rejects {
		if r.gray != "" {
			continue // reported in inst.Grays: main's revision was not refused
		}
		if inst.Status != configsvc.StatusRejected || r.revision > inst.Rejected || r.revision == inst.Rejected && k < newest {
			inst.Status = configsvc.StatusRejected
			inst.Rejected = r.revision
			inst.Error = configsvc.Truncate(r.err.Error(), configsvc.MaxInstanceErrorLen)
			newest = k
		}
	}
}

// persistLocked writes v, the new good state, to the cache before apply
// makes it visible; force replaces a newer state another process wrote
// (after a rewritten history, whose numbers may be lower). A failure is
// logged, counted (Metrics.CacheWriteFailed) and kept for Err; the state
// is applied all the same.
func (c *Client) persistLocked(v *view, force bool) {
	st := &cachedState{
		Service: c.cfg.Service, Revision: v.revision, ID: c.refs[""].id, Links: c.links,
		Groups: v.groups, GroupIDs: make(map[string]configsvc.Identity, len(c.links)),
		Files: v.files, Grays: c.cachedGraysLocked(), Instance: c.cfg.Instance.ID, Written: c.cfg.Now().UTC(),
	}
	for _, g := range c.links {
		if rs := c.refs[g]; rs != nil {
			st.GroupIDs[g] = rs.id
		}
	}
	kept, err := c.cache.write(st, force)
	switch {
	case err != nil:
		c.cacheErr.Store(&errBox{err: err})
		c.cfg.Metrics.CacheWriteFailed(err)
		c.log.Warn("sdk: writing the cache failed; the new state is applied, the cache keeps an older one", "err", err)
	case kept:
		c.cacheErr.Store(nil)
		c.log.Debug("sdk: the cache holds a newer state written by another process; left it", "revision", v.revision)
	default:
		c.cacheErr.Store(nil)
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
