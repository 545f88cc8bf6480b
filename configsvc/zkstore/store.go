package zkstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

var _ configsvc.Store = (*Store)(nil)

// Store is a configsvc.Store on ZooKeeper. It holds one ZooKeeper session.
// It is safe for concurrent use. Close it to end the session: its
// instance registrations disappear, its watches end, and no goroutine it
// started remains.
type Store struct {
	cfg    Config
	log    *slog.Logger
	client atomic.Pointer[zkClient] // the ZooKeeper client in use; see conn and renewSession
	acl    []zk.ACL                 // ACL of nodes the store creates outside instances/
	acls   acls                     // every ACL the store sets; see acl.go

	// clientMu orders renewSession's swap of the client with Close.
	clientMu sync.Mutex
	closing  bool
	// reachedAt is when the client, without a session, first reached a
	// server (unix nanoseconds; 0 while it has a session): see
	// renewSession.
	reachedAt atomic.Int64

	bg      lifecycle.Group // the store's goroutines; stopped by Close
	life    context.Context // cancelled by Close
	endLife context.CancelFunc

	stateMu sync.Mutex
	stateCh chan struct{} // closed and replaced on every session state change

	resession chan struct{} // a new session was established (buffer 1)

	leaseMu sync.Mutex
	leases  map[string]*lease      // live leases by instance node path
	queues  map[string]*writeQueue // write order per instance node path
	regKick chan struct{}          // a registration needs another attempt (buffer 1)
	watches instWatches            // WatchInstances: one watch per node, shared

	pruneMu      sync.Mutex
	prunePending map[configsvc.Ref]pendingPrune // newest First to prune below
	prunedTo     map[configsvc.Ref]pruneMark    // what is known of pruning, per ref and epoch
	pruneKick    chan struct{}                  // buffer 1

	revs  *revCache  // revisions read by watchers
	heads *headCache // heads a publish may build on without reading
	metas *metaCache // data of manifest nodes (never modified)
	syncs *syncer    // the shared syncs that make reads linearizable

	logHomes sync.Map // collection → the node of its append log (records.go)
}

// Open connects to ZooKeeper, waits for a session, authenticates when
// cfg.Digest is set, and creates the root tree when missing. It returns an
// error wrapping configsvc.ErrUnavailable when that is not done by ctx's
// deadline (or within cfg.OpTimeout when ctx has none), and
// configsvc.ErrInvalid for a bad Config.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:       cfg,
		log:       cfg.Logger,
		stateCh:   make(chan struct{}),
		resession: make(chan struct{}, 1),
		leases:    map[string]*lease{},
		queues:    map[string]*writeQueue{},
		regKick:   make(chan struct{}, 1),

		prunePending: map[configsvc.Ref]pendingPrune{},
		prunedTo:     map[configsvc.Ref]pruneMark{},
		pruneKick:    make(chan struct{}, 1),
		revs:         newRevCache(),
		heads:        newHeadCache(),
		metas:        newMetaCache(),
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.syncs = newSyncer(s.syncRound, s.bg.Go, configsvc.ErrClosed)
	s.acls = buildACLs(cfg)
	s.acl = s.acls.all
	c, err := s.connect()
	if err != nil {
		s.endLife()
		return nil, fmt.Errorf("zkstore: connect %v: %v: %w", cfg.Servers, err, configsvc.ErrInvalid)
	}
	s.client.Store(c)

	// The opening steps share one bound: ctx's deadline when it has one (a
	// caller that grants 20 s to start does not fail on one slow first
	// write of a ZooKeeper still warming up), else cfg.OpTimeout.
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = s.opCtx(ctx)
	}
	defer cancel()
	fail := func(what string, err error) (*Store, error) {
		s.Close()
		return nil, fmt.Errorf("zkstore: open %v%s: %w", cfg.Servers, cfg.Root, mapErr(what, err))
	}
	if err := s.waitSession(ctx); err != nil {
		return fail("", err)
	}
	for _, d := range []string{cfg.Digest, cfg.InstanceDigest} {
		if d == "" {
			continue
		}
		if err := s.do(ctx, func(c *zk.Conn) error { return c.AddAuth("digest", []byte(d)) }); err != nil {
			return fail("authenticate", err)
		}
	}
	if err := s.ensureTree(ctx); err != nil {
		return fail("create root tree", err)
	}
	if err := s.reconcileACLs(ctx); err != nil {
		return fail("set instance ACLs", err)
	}
	s.bg.Go(s.supervise)
	s.bg.Go(s.pruner)
	s.bg.Go(s.renewer)
	return s, nil
}

// zkClient is one go-zookeeper client with its event channel, which the
// client closes when its loop has ended.
type zkClient struct {
	conn   *zk.Conn
	events <-chan zk.Event
}

// connect starts a new ZooKeeper client (it connects in the background).
func (s *Store) connect() (*zkClient, error) {
	conn, events, err := zk.Connect(s.cfg.Servers, s.cfg.SessionTimeout,
		zk.WithLogger(zkLogger{s.log}), zk.WithLogInfo(false), zk.WithEventCallback(s.onEvent))
	if err != nil {
		return nil, err
	}
	return &zkClient{conn: conn, events: events}, nil
}

// conn returns the ZooKeeper client in use. renewSession may replace it:
// a caller uses the one it got for one call (a call on a replaced client
// fails with a connection error, which the store reports as
// ErrUnavailable).
func (s *Store) conn() *zk.Conn { return s.client.Load().conn }

// renewer starts a new session (renewSession) when the client has reached
// a server without getting a session for longer than the session timeout.
//
// go-zookeeper tries to resume its session forever. A ZooKeeper server
// refuses to resume a session that has seen a transaction it does not have
// ("client has seen zxid … our last zxid is …"): one restored from an older
// backup, until its own transaction ids pass the client's, which may be
// never. The session is dead by then anyway: a server that has been up for
// a session timeout without hearing from it has expired it. A new client
// starts a new session; the store's watches then re-arm and its instance
// registrations are re-created (supervise), as after a session expiry.
func (s *Store) renewer() {
	limit := s.cfg.SessionTimeout + time.Second
	for {
		wait := limit
		if at := s.reachedAt.Load(); at != 0 && !s.connected() {
			if since := time.Since(time.Unix(0, at)); since >= limit {
				s.renewSession(since)
				s.reachedAt.Store(0)
			} else {
				wait = limit - since
			}
		}
		if s.bg.Sleep(s.life, min(wait, time.Second)) != nil {
			return
		}
	}
}

// renewSession replaces the ZooKeeper client by a new one, which starts a
// new session, and closes the old one.
func (s *Store) renewSession(without time.Duration) {
	s.log.Warn("zkstore: the ZooKeeper servers answer but will not resume this session (an ensemble restored from an older backup refuses a session that has seen newer transactions); starting a new session",
		"without_session", without.Round(time.Millisecond), "old_session", fmt.Sprintf("%#x", s.conn().SessionID()))
	c, err := s.connect()
	if err != nil {
		s.log.Error("zkstore: start a new ZooKeeper session", "err", err)
		return
	}
	s.clientMu.Lock()
	if s.closing {
		s.clientMu.Unlock()
		s.closeClient(c)
		return
	}
	old := s.client.Swap(c)
	s.clientMu.Unlock()
	if !s.bg.Go(func() { s.closeClient(old) }) {
		s.closeClient(old)
	}
	ctx, cancel := s.opCtx(s.life)
	defer cancel()
	for _, d := range []string{s.cfg.Digest, s.cfg.InstanceDigest} {
		if d == "" {
			continue
		}
		if err := s.do(ctx, func(c *zk.Conn) error { return c.AddAuth("digest", []byte(d)) }); err != nil {
			s.log.Error("zkstore: authenticate the new ZooKeeper session", "err", err)
		}
	}
}

// closeClient closes c and waits (at most 10 s) until its loop has ended.
func (s *Store) closeClient(c *zkClient) {
	c.conn.Close()
	// The client closes its event channel when its connection loop has
	// ended; draining it is how the store waits for the client.
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-timeout:
			s.log.Warn("zkstore: ZooKeeper client did not stop within 10s")
			return
		}
	}
}

// ensureTree creates the root, its fixed children and the generation node.
func (s *Store) ensureTree(ctx context.Context) error {
	root := s.cfg.Root
	parts := strings.Split(strings.TrimPrefix(root, "/"), "/")
	p := ""
	for _, part := range parts {
		p += "/" + part
		if err := s.createIfMissing(ctx, p, s.acl); err != nil {
			return err
		}
	}
	for _, child := range []string{"services", "shared", "records"} {
		if err := s.createIfMissing(ctx, root+"/"+child, s.acl); err != nil {
			return err
		}
	}
	if err := s.createIfMissing(ctx, root+"/instances", s.acls.instRoot); err != nil {
		return err
	}
	return s.ensureGeneration(ctx)
}

func (s *Store) createIfMissing(ctx context.Context, p string, acl []zk.ACL) error {
	return s.do(ctx, func(c *zk.Conn) error {
		ok, _, err := c.Exists(p)
		if err != nil || ok {
			return err
		}
		_, err = c.Create(p, nil, 0, acl)
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
}

// onEvent is the client's event callback. It runs on the client's own
// goroutines and so only flips state, never blocks.
func (s *Store) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		s.reachedAt.Store(0)
	case zk.StateConnected:
		s.reachedAt.CompareAndSwap(0, time.Now().UnixNano())
	}
	s.stateMu.Lock()
	close(s.stateCh)
	s.stateCh = make(chan struct{})
	s.stateMu.Unlock()
	if ev.State == zk.StateHasSession {
		select {
		case s.resession <- struct{}{}:
		default:
		}
	}
}

// stateChanged returns a channel closed at the next session state change.
func (s *Store) stateChanged() <-chan struct{} {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.stateCh
}

// connected reports whether the client has a live session right now.
func (s *Store) connected() bool { return s.conn().State() == zk.StateHasSession }

// waitSession waits until the client has a session, ctx ends or the store
// closes.
func (s *Store) waitSession(ctx context.Context) error {
	for {
		ch := s.stateChanged()
		if s.connected() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w (state %v): %w", errNoSession, s.conn().State(), ctx.Err())
		case <-s.bg.Done():
			return configsvc.ErrClosed
		}
	}
}

// opCtx bounds ctx by the store's operation timeout.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.OpTimeout)
}

// do runs fn against the client; see call.
func (s *Store) do(ctx context.Context, fn func(c *zk.Conn) error) error {
	_, err := call(ctx, s, func(c *zk.Conn) (struct{}, error) { return struct{}{}, fn(c) })
	return err
}

// call runs fn against the client and returns its result, or returns early
// when ctx ends: go-zookeeper blocks a call while it reconnects, so every
// call runs on its own goroutine and is abandoned (not cancelled: the
// client finishes it later) when ctx ends first. The result travels over a
// channel, so an abandoned call shares no memory with its caller. Calls
// wait for a session first, so that writes are not queued inside the
// client during an outage.
func call[T any](ctx context.Context, s *Store, fn func(c *zk.Conn) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if !s.connected() {
		if err := s.waitSession(ctx); err != nil {
			return zero, err
		}
	}
	type answer struct {
		v   T
		err error
	}
	done := make(chan answer, 1)
	if !s.bg.Go(func() {
		v, err := fn(s.conn())
		done <- answer{v, err}
	}) {
		return zero, configsvc.ErrClosed
	}
	select {
	case a := <-done:
		return a.v, a.err
	case <-ctx.Done():
		return zero, fmt.Errorf("ZooKeeper did not answer: %w", ctx.Err())
	case <-s.bg.Done():
		return zero, configsvc.ErrClosed
	}
}

// syncRound sends one sync and waits for its answer, within the store's
// operation timeout: the round serves every reader waiting for it, so no
// single reader's ctx bounds it.
func (s *Store) syncRound() error {
	ctx, cancel := s.opCtx(s.life)
	defer cancel()
	return s.do(ctx, func(c *zk.Conn) error {
		_, err := c.Sync("/")
		return err
	})
}

// synced returns once this store's ZooKeeper server has caught up with
// every write acknowledged before synced was called (see syncer), so that
// the reads that follow on the session are linearizable.
func (s *Store) synced(ctx context.Context) error {
	return s.syncs.wait(ctx)
}

type node struct {
	data []byte
	stat *zk.Stat
}

// get reads one node.
func (s *Store) get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	n, err := call(ctx, s, func(c *zk.Conn) (node, error) {
		d, st, err := c.Get(p)
		return node{d, st}, err
	})
	return n.data, n.stat, err
}

func (s *Store) children(ctx context.Context, p string) ([]string, error) {
	return call(ctx, s, func(c *zk.Conn) ([]string, error) {
		kids, _, err := c.Children(p)
		return kids, err
	})
}

// result is one node read by getMany.
type result struct {
	data []byte
	stat *zk.Stat
	err  error
}

// getMany reads many nodes at once: the client pipelines the requests on
// its one connection, so n reads cost about one round trip.
func (s *Store) getMany(ctx context.Context, paths []string) ([]result, error) {
	out := make([]result, len(paths))
	if len(paths) == 0 {
		return out, nil
	}
	if !s.connected() {
		if err := s.waitSession(ctx); err != nil {
			return nil, err
		}
	}
	type item struct {
		i int
		r result
	}
	ch := make(chan item, len(paths))
	sem := make(chan struct{}, 64)
	started := 0
	conn := s.conn()
	for i, p := range paths {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("ZooKeeper did not answer: %w", ctx.Err())
		}
		ok := s.bg.Go(func() {
			d, st, err := conn.Get(p)
			<-sem
			ch <- item{i, result{d, st, err}}
		})
		if !ok {
			return nil, configsvc.ErrClosed
		}
		started++
	}
	for range started {
		select {
		case it := <-ch:
			out[it.i] = it.r
		case <-ctx.Done():
			return nil, fmt.Errorf("ZooKeeper did not answer: %w", ctx.Err())
		case <-s.bg.Done():
			return nil, configsvc.ErrClosed
		}
	}
	for _, r := range out {
		if r.err != nil && !errors.Is(r.err, zk.ErrNoNode) {
			return nil, r.err
		}
	}
	return out, nil
}

// multi runs ops in one transaction. On failure the returned error is the
// failing operation's (zk.ErrBadVersion, zk.ErrNoNode, …) and index its
// position, or -1 when the transaction as a whole failed.
func (s *Store) multi(ctx context.Context, ops ...any) (index int, err error) {
	if size := opsSize(ops); size > maxTxnSize {
		return -1, &configsvc.LimitError{What: "ZooKeeper transaction", Size: int64(size), Limit: maxTxnSize}
	}
	type outcome struct {
		index int
		err   error
	}
	o, err := call(ctx, s, func(c *zk.Conn) (outcome, error) {
		res, err := c.Multi(ops...)
		for i, r := range res {
			if r.Error != nil && isDataErr(r.Error) {
				return outcome{i, r.Error}, r.Error
			}
		}
		return outcome{-1, err}, err
	})
	if err != nil && o.err == nil {
		return -1, err
	}
	return o.index, o.err
}

// maxTxnSize keeps a transaction under ZooKeeper's default jute.maxbuffer
// (1 MiB - 1 byte) with room for the request framing.
const maxTxnSize = 1_040_000

func opsSize(ops []any) int {
	n := 64
	for _, op := range ops {
		switch o := op.(type) {
		case *zk.CreateRequest:
			n += 32 + len(o.Path) + len(o.Data) + 64*len(o.Acl)
		case *zk.SetDataRequest:
			n += 24 + len(o.Path) + len(o.Data)
		case *zk.DeleteRequest:
			n += 24 + len(o.Path)
		case *zk.CheckVersionRequest:
			n += 24 + len(o.Path)
		}
	}
	return n
}

func isDataErr(err error) bool {
	return errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNodeExists) ||
		errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNotEmpty) ||
		errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrNoChildrenForEphemerals)
}

// mapErr translates client errors into configsvc sentinels; what, when not
// empty, says what was being done.
func mapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	prefix := ""
	if what != "" {
		prefix = what + ": "
	}
	switch {
	case errors.Is(err, configsvc.ErrNotFound), errors.Is(err, configsvc.ErrConflict),
		errors.Is(err, configsvc.ErrInvalid), errors.Is(err, configsvc.ErrTooLarge),
		errors.Is(err, configsvc.ErrUnavailable), errors.Is(err, configsvc.ErrCompacted),
		errors.Is(err, configsvc.ErrClosed), errors.Is(err, configsvc.ErrTooMany),
		errors.Is(err, configsvc.ErrOutcomeUnknown), errors.Is(err, configsvc.ErrRewritten):
		if prefix == "" {
			return err
		}
		return fmt.Errorf("%s%w", prefix, err)
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("%s%w", prefix, configsvc.ErrNotFound)
	case errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNotEmpty):
		return fmt.Errorf("%s%w (%v)", prefix, configsvc.ErrConflict, err)
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed), errors.Is(err, zk.ErrInvalidACL):
		return fmt.Errorf("%spermission denied by ZooKeeper (check Config.Digest and node ACLs): %w", prefix, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrNoServer),
		errors.Is(err, zk.ErrSessionExpired), errors.Is(err, zk.ErrSessionMoved),
		errors.Is(err, zk.ErrClosing), errors.Is(err, zk.ErrUnknown):
		return fmt.Errorf("%s%w: %w", prefix, configsvc.ErrUnavailable, err)
	}
	return fmt.Errorf("%s%w: %w", prefix, configsvc.ErrUnavailable, err)
}

// errNoSession: a call gave up waiting for a session; it sent nothing.
var errNoSession = errors.New("no ZooKeeper session")

// uncertain reports whether err leaves the outcome of a write unknown: the
// request may have reached ZooKeeper before the connection failed.
func uncertain(err error) bool {
	if errors.Is(err, errNoSession) {
		return false
	}
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, zk.ErrClosing)
}

// Ping checks that a ZooKeeper session is live and the root node readable.
// It returns an error wrapping configsvc.ErrUnavailable otherwise.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	err := s.do(ctx, func(c *zk.Conn) error {
		_, _, err := c.Exists(s.cfg.Root)
		return err
	})
	return mapErr("zkstore: ping", err)
}

// Close ends the ZooKeeper session (its instance nodes disappear), ends
// every watch, and waits until every goroutine the store started has
// returned. It is safe to call more than once; later calls return nil.
func (s *Store) Close() error {
	if !s.bg.Stop() {
		return nil
	}
	s.endLife()
	s.clientMu.Lock()
	s.closing = true
	c := s.client.Load()
	s.clientMu.Unlock()
	if c != nil {
		s.closeClient(c)
	}
	s.bg.Wait()
	return nil
}

// zkLogger sends the client's log lines to slog at debug level: they are
// reconnect chatter, and the store logs what matters itself.
type zkLogger struct{ l *slog.Logger }

// Printf implements zk.Logger.
func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug("zk: " + fmt.Sprintf(format, args...))
}
