package zkstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
)

// Registrations (docs/zookeeper-layout.md, "Instances").
//
// A lease's node is written only through its writeQueue: one write at a
// time, and the next one is sent only once ZooKeeper answered the previous
// one (or the connection failed under it). A call that gives up on its
// context leaves its write in flight, but nothing is sent after it until it
// has returned, and every write takes the lease's newest data when it is
// sent. So an older record never lands over a newer one, a Close or a
// failed Register deletes the node only after a create still in flight has
// landed, and no node is left behind on a live session.
//
// After a session expiry (or any write that could not finish) the store's
// supervisor registers every live lease again, with backoff, until it
// succeeds, the lease is closed or its service is gone.

// Re-registration backoff.
const (
	reRegisterMin = 100 * time.Millisecond
	reRegisterMax = time.Second
	// reRegisterParallel bounds the registrations one round sends at once
	// (a server holds one lease per instance registered through its API).
	reRegisterParallel = 8
)

// errGone: the lease's service was deleted (or deleted and created again)
// since it registered; the registration has ended.
var errGone = errors.New("the service was deleted since the instance registered")

// errLeaseClosed: a write found its lease closed and sent nothing.
var errLeaseClosed = errors.New("lease closed")

// writeQueue orders the writes of the leases of one instance node path.
type writeQueue struct {
	turn  chan struct{}   // holds a token while a write is being sent
	prev  <-chan struct{} // closed when the last write's client call returned; guarded by turn
	users int             // leases using the queue; guarded by Store.leaseMu
}

// queueLocked returns the write queue of path, shared with any lease of
// that path still finishing its writes. s.leaseMu must be held.
func (s *Store) queueLocked(path string) *writeQueue {
	q := s.queues[path]
	if q == nil {
		done := make(chan struct{})
		close(done)
		q = &writeQueue{turn: make(chan struct{}, 1), prev: done}
		s.queues[path] = q
	}
	q.users++
	return q
}

type lease struct {
	s       *Store
	svc, id string
	path    string
	q       *writeQueue

	mu       sync.Mutex
	inst     configsvc.Instance
	data     []byte
	closed   bool
	gone     bool  // errGone: the registration ended without Close
	released bool  // the lease no longer uses q
	owner    int64 // creation zxid of the head of the service it registered in
	sess     int64 // session on which the node was last written; 0: needs registering
	failed   bool  // a re-registration failure was logged
}

// Register records inst as a live instance of inst.Service: an EPHEMERAL
// node instances/{service}/{id} holding inst as JSON, which disappears when
// the Lease is closed, the Store is closed or the process dies. Its
// Started and Updated are stored in UTC. After a session expiry the store
// creates it again on the new session, retrying with backoff until it
// succeeds (docs/zookeeper-layout.md). ErrConflict if a live node with that
// id exists that is not this store's (or is held by another Lease of this
// store); ErrNotFound if the service does not exist; ErrTooMany (a
// *configsvc.CountError) when the service has Config.Limits'
// InstancesPerService live instances; ErrInvalid for an instance that
// Instance.Validate refuses. When Register fails with its
// write still in flight (a timeout), the node it may yet create is removed
// as soon as ZooKeeper answers.
func (s *Store) Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	what := fmt.Sprintf("zkstore: register instance %s/%s", inst.Service, inst.ID)
	inst, data, err := encodeInstance(inst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	p := s.instancesPath(inst.Service) + "/" + inst.ID
	l := &lease{s: s, svc: inst.Service, id: inst.ID, path: p, inst: inst, data: data}
	s.leaseMu.Lock()
	if _, ok := s.leases[p]; ok {
		s.leaseMu.Unlock()
		return nil, fmt.Errorf("%s: already registered by this store: %w", what, configsvc.ErrConflict)
	}
	l.q = s.queueLocked(p)
	s.leases[p] = l
	s.leaseMu.Unlock()
	err = l.exec(ctx, l.registerNew)
	if err == nil {
		return l, nil
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.unmap()
	if errors.Is(err, errGone) {
		err = fmt.Errorf("service %s does not exist: %w", inst.Service, configsvc.ErrNotFound)
	}
	if settled(err) {
		l.release()
	} else if !s.bg.Go(func() { l.removeUntilDone() }) {
		l.release()
	}
	return nil, mapErr(what, err)
}

// encodeInstance validates inst, puts its times in UTC and encodes it.
func encodeInstance(inst configsvc.Instance) (configsvc.Instance, []byte, error) {
	if err := inst.Validate(); err != nil {
		return inst, nil, err
	}
	inst = configsvc.NormalizeInstance(inst)
	data, err := json.Marshal(inst)
	if err != nil {
		return inst, nil, fmt.Errorf("%v: %w", err, configsvc.ErrInvalid)
	}
	if len(data) > configsvc.MaxRecordSize {
		return inst, nil, &configsvc.LimitError{What: "instance", Size: int64(len(data)), Limit: configsvc.MaxRecordSize}
	}
	return inst, data, nil
}

// settled reports whether a failed write certainly left nothing behind
// that the lease must clean up.
func settled(err error) bool {
	return errors.Is(err, errGone) || errors.Is(err, configsvc.ErrNotFound) || errors.Is(err, configsvc.ErrConflict) ||
		errors.Is(err, configsvc.ErrTooMany) ||
		errors.Is(err, configsvc.ErrInvalid) || errors.Is(err, configsvc.ErrClosed) || errors.Is(err, errLeaseClosed) ||
		errors.Is(err, errNoSession) || errors.Is(err, zk.ErrNoAuth)
}

// exec sends fn, one write of the lease (a few client calls in a row), once
// every earlier write of the lease's node has returned from the client.
// When ctx ends first, exec returns and fn carries on; the next write waits
// for it.
func (l *lease) exec(ctx context.Context, fn func(c *zk.Conn) error) error {
	s, q := l.s, l.q
	select {
	case q.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("another write of this instance is being sent: %w", ctx.Err())
	case <-s.bg.Done():
		return configsvc.ErrClosed
	}
	defer func() { <-q.turn }()
	select {
	case <-q.prev:
	case <-ctx.Done():
		return fmt.Errorf("ZooKeeper has not answered an earlier write of this instance: %w", ctx.Err())
	case <-s.bg.Done():
		return configsvc.ErrClosed
	}
	if !s.connected() {
		if err := s.waitSession(ctx); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	errc := make(chan error, 1)
	if !s.bg.Go(func() {
		defer close(done)
		errc <- fn(s.conn())
	}) {
		return configsvc.ErrClosed
	}
	q.prev = done
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("ZooKeeper did not answer: %w", ctx.Err())
	case <-s.bg.Done():
		return configsvc.ErrClosed
	}
}

// registerNew is register for Register: the first registration of a new
// lease, which the service's instance limit may refuse.
func (l *lease) registerNew(c *zk.Conn) error { return l.create(c, true) }

// register creates the lease's node on c's session with the lease's newest
// data, or takes over the node if this session holds it already (an
// earlier attempt whose reply was lost). It runs inside exec. A lease
// registering again is not held to the instance limit: it was counted
// when it registered first.
func (l *lease) register(c *zk.Conn) error { return l.create(c, false) }

// create is register; with limited it refuses the registration with a
// *configsvc.CountError when instances/{svc} already holds the limit of
// children. The count comes from the parent's stat, read just before the
// create, so instances registering at the same moment may pass the limit by
// their number (a listing stays far below a packet all the same).
func (l *lease) create(c *zk.Conn, limited bool) error {
	s := l.s
	sid := c.SessionID()
	l.mu.Lock()
	closed, owner := l.closed, l.owner
	l.mu.Unlock()
	if closed {
		return errLeaseClosed
	}
	// The head marks a live service: created with it in one transaction
	// (so its creation zxid names this incarnation of the service), and
	// the first node a Delete removes.
	svcPath := s.headPath(configsvc.Service(l.svc))
	ok, st, err := c.Exists(svcPath)
	if err != nil {
		return err
	}
	if !ok || (owner != 0 && st.Czxid != owner) {
		return errGone
	}
	owner = st.Czxid
	parent := s.instancesPath(l.svc)
	acl, pst, err := c.GetACL(parent)
	if errors.Is(err, zk.ErrNoNode) {
		// The server creates it with the service; an older tree may lack it.
		if _, err := c.Create(parent, nil, 0, s.acls.instParentACL(l.svc)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		acl, pst, err = c.GetACL(parent)
	}
	if err != nil {
		return err
	}
	if limit := s.cfg.Limits.InstancesPerService; limited && int(pst.NumChildren) >= limit {
		return &configsvc.CountError{What: "live instances of service " + l.svc, Count: int64(pst.NumChildren), Limit: int64(limit)}
	}
	acl = s.acls.instanceACL(acl)
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			return fmt.Errorf("instance node kept changing: %w", configsvc.ErrConflict)
		}
		l.mu.Lock()
		data := l.data
		l.mu.Unlock()
		_, err = c.Create(l.path, data, zk.FlagEphemeral, acl)
		if err == nil {
			break
		}
		if !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
		ok, st, err := c.Exists(l.path)
		if err != nil {
			return err
		}
		if !ok {
			continue // gone meanwhile
		}
		if st.EphemeralOwner != sid {
			return fmt.Errorf("a live instance with this id is held by another ZooKeeper session: %w", configsvc.ErrConflict)
		}
		if _, err = c.Set(l.path, data, st.Version); err == nil {
			break
		}
		if !errors.Is(err, zk.ErrBadVersion) && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	// The service may have been deleted (and created again) while the node
	// was being created: then the node belongs to no registration.
	ok, st, err = c.Exists(svcPath)
	if err != nil {
		return err
	}
	if !ok || st.Czxid != owner {
		_ = c.Delete(l.path, -1)
		return errGone
	}
	l.mu.Lock()
	l.owner, l.sess = owner, sid
	l.mu.Unlock()
	return nil
}

// write sets the lease's node to its newest data, registering again when
// the node is gone. It runs inside exec.
func (l *lease) write(c *zk.Conn) error {
	sid := c.SessionID()
	for attempt := 0; attempt < 5; attempt++ {
		l.mu.Lock()
		closed, data := l.closed, l.data
		l.mu.Unlock()
		if closed {
			return errLeaseClosed
		}
		ok, st, err := c.Exists(l.path)
		if err != nil {
			return err
		}
		if !ok {
			return l.register(c)
		}
		if st.EphemeralOwner != sid {
			// Our node went with an old session and another process holds
			// the id now: the supervisor keeps trying to get it back.
			l.mu.Lock()
			l.sess = 0
			l.mu.Unlock()
			l.s.kickRegistrations()
			return fmt.Errorf("a live instance with this id is held by another ZooKeeper session: %w", configsvc.ErrConflict)
		}
		_, err = c.Set(l.path, data, st.Version)
		if err == nil {
			l.mu.Lock()
			l.sess = sid
			l.mu.Unlock()
			return nil
		}
		if !errors.Is(err, zk.ErrBadVersion) && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return fmt.Errorf("instance node kept changing: %w", configsvc.ErrConflict)
}

// remove deletes the lease's node if this session holds it and no newer
// lease of this store has taken it over. It runs inside exec.
func (l *lease) remove(c *zk.Conn) error {
	s := l.s
	s.leaseMu.Lock()
	other := s.leases[l.path]
	s.leaseMu.Unlock()
	if other != nil && other != l {
		return nil
	}
	sid := c.SessionID()
	for attempt := 0; attempt < 5; attempt++ {
		ok, st, err := c.Exists(l.path)
		if err != nil || !ok {
			return err
		}
		if st.EphemeralOwner != sid {
			return nil // not ours (any more): leave it alone
		}
		err = c.Delete(l.path, st.Version)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if !errors.Is(err, zk.ErrBadVersion) {
			return err
		}
	}
	return fmt.Errorf("instance node kept changing: %w", configsvc.ErrConflict)
}

// Update replaces the registered instance's data (same service and id),
// with Started and Updated in UTC. If the node is missing (its session just
// expired) it is created again. ErrClosed once the lease is closed;
// ErrNotFound once its service was deleted, even if a service of that name
// was created since (the registration ended with the service it was made
// in; register again).
func (l *lease) Update(ctx context.Context, inst configsvc.Instance) error {
	what := fmt.Sprintf("zkstore: update instance %s/%s", inst.Service, inst.ID)
	if inst.Service != l.svc || inst.ID != l.id {
		return fmt.Errorf("%s: a lease keeps its service and id (%s/%s): %w", what, l.svc, l.id, configsvc.ErrInvalid)
	}
	inst, data, err := encodeInstance(inst)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return fmt.Errorf("%s: lease closed: %w", what, configsvc.ErrClosed)
	case l.gone:
		l.mu.Unlock()
		return fmt.Errorf("%s: %w: %w", what, errGone, configsvc.ErrNotFound)
	}
	l.inst, l.data = inst, data
	l.mu.Unlock()
	ctx, cancel := l.s.opCtx(ctx)
	defer cancel()
	err = l.exec(ctx, l.write)
	switch {
	case errors.Is(err, errGone):
		l.end()
		return fmt.Errorf("%s: %w: %w", what, errGone, configsvc.ErrNotFound)
	case errors.Is(err, errLeaseClosed):
		return fmt.Errorf("%s: lease closed: %w", what, configsvc.ErrClosed)
	case err != nil && !settled(err):
		// Not known to have landed: the supervisor makes sure it does.
		l.mu.Lock()
		l.sess = 0
		l.mu.Unlock()
		l.s.kickRegistrations()
	}
	return mapErr(what, err)
}

// Close deletes the instance node. It is safe to call more than once. When
// ZooKeeper cannot be reached now, Close returns an error wrapping
// ErrUnavailable and the store keeps trying in the background until the
// node is gone (or the session ends, which removes it too).
func (l *lease) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	gone := l.gone
	l.mu.Unlock()
	l.unmap()
	if gone {
		l.release()
		return nil
	}
	s := l.s
	ctx, cancel := s.opCtx(context.Background())
	defer cancel()
	err := l.exec(ctx, l.remove)
	if err == nil || errors.Is(err, configsvc.ErrClosed) {
		l.release()
		return nil
	}
	if !s.bg.Go(func() { l.removeUntilDone() }) {
		l.release()
		return nil
	}
	return mapErr("zkstore: close lease "+l.path+" (removal continues in the background)", err)
}

// removeUntilDone retries remove with backoff until it succeeds, the
// store closes (ending the session, which removes the node) or ZooKeeper
// refuses for good.
func (l *lease) removeUntilDone() {
	s := l.s
	defer l.release()
	backoff := reRegisterMin
	for {
		ctx, cancel := s.opCtx(s.life)
		err := l.exec(ctx, l.remove)
		cancel()
		switch {
		case err == nil, errors.Is(err, configsvc.ErrClosed):
			return
		case errors.Is(err, zk.ErrNoAuth):
			s.log.Error("zkstore: remove instance node", "instance", l.path, "err", err)
			return
		}
		_ = s.bg.Sleep(s.life, backoff)
		backoff = min(2*backoff, reRegisterMax)
	}
}

// unmap removes the lease from the store's live leases.
func (l *lease) unmap() {
	s := l.s
	s.leaseMu.Lock()
	if s.leases[l.path] == l {
		delete(s.leases, l.path)
	}
	s.leaseMu.Unlock()
}

// end marks the registration ended by its service's deletion.
func (l *lease) end() {
	l.mu.Lock()
	l.gone = true
	l.mu.Unlock()
	l.unmap()
	l.release()
}

// release gives up the lease's use of its write queue, once.
func (l *lease) release() {
	l.mu.Lock()
	done := l.released
	l.released = true
	l.mu.Unlock()
	if done {
		return
	}
	s := l.s
	s.leaseMu.Lock()
	l.q.users--
	if l.q.users == 0 && s.queues[l.path] == l.q {
		delete(s.queues, l.path)
	}
	s.leaseMu.Unlock()
}

// kickRegistrations asks the supervisor for a registration round.
func (s *Store) kickRegistrations() {
	select {
	case s.regKick <- struct{}{}:
	default:
	}
}

// supervise registers again, on every new session and then with backoff
// until it succeeds, each live lease whose node is not known to be on the
// current session.
func (s *Store) supervise() {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := reRegisterMin
	for {
		select {
		case <-s.bg.Done():
			return
		case <-s.resession:
		case <-s.regKick:
		case <-retry.C:
		}
		if s.registerPending() {
			backoff = reRegisterMin
			retry.Stop()
			continue
		}
		retry.Reset(backoff)
		backoff = min(2*backoff, reRegisterMax)
	}
}

// registerPending registers the leases that need it and reports whether
// none is left waiting.
func (s *Store) registerPending() bool {
	if !s.connected() {
		return false // the next session event starts another round
	}
	sid := s.conn().SessionID()
	var pending []*lease
	s.leaseMu.Lock()
	for _, l := range s.leases {
		l.mu.Lock()
		if !l.closed && !l.gone && l.sess != sid {
			pending = append(pending, l)
		}
		l.mu.Unlock()
	}
	s.leaseMu.Unlock()
	if len(pending) == 0 {
		return true
	}
	var (
		mu   sync.Mutex
		left int
	)
	var g errgroup.Group
	g.SetLimit(reRegisterParallel)
	for _, l := range pending {
		g.Go(func() error {
			ctx, cancel := s.opCtx(s.life)
			err := l.exec(ctx, l.register)
			cancel()
			l.mu.Lock()
			failed := l.failed
			l.failed = err != nil && !errors.Is(err, errGone) && !errors.Is(err, errLeaseClosed)
			l.mu.Unlock()
			switch {
			case err == nil:
				if failed {
					s.log.Info("zkstore: instance registered again", "instance", l.path)
				}
			case errors.Is(err, errGone):
				s.log.Warn("zkstore: instance registration ended: its service was deleted", "instance", l.path)
				l.end()
			case errors.Is(err, errLeaseClosed), errors.Is(err, configsvc.ErrClosed):
			default:
				if !failed {
					s.log.Warn("zkstore: could not register instance again; retrying", "instance", l.path, "err", err)
				}
				mu.Lock()
				left++
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return left == 0
}
