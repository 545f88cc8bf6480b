package zkstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// Register records inst as a live instance of inst.Service: an EPHEMERAL
// node instances/{service}/{id} holding inst as JSON, which disappears when
// the Lease is closed, the Store is closed or the process dies. After a
// session expiry the store re-creates it on the new session. ErrConflict if
// a live node with that id exists that is not this store's (or is held by
// another Lease of this store); ErrNotFound if the service does not exist;
// ErrInvalid for an instance that Instance.Validate refuses.
func (s *Store) Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	what := fmt.Sprintf("zkstore: register instance %s/%s", inst.Service, inst.ID)
	if err := inst.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	data, err := json.Marshal(inst)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", what, err, configsvc.ErrInvalid)
	}
	if len(data) > configsvc.MaxRecordSize {
		return nil, fmt.Errorf("%s: %w", what, &configsvc.LimitError{What: "instance", Size: int64(len(data)), Limit: configsvc.MaxRecordSize})
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	p := s.instancesPath(inst.Service) + "/" + inst.ID
	l := &lease{s: s, path: p, inst: inst, data: data}
	s.leaseMu.Lock()
	if _, ok := s.leases[p]; ok {
		s.leaseMu.Unlock()
		return nil, fmt.Errorf("%s: already registered by this store: %w", what, configsvc.ErrConflict)
	}
	s.leases[p] = l
	s.leaseMu.Unlock()
	if err := s.createEphemeral(ctx, inst.Service, p, data); err != nil {
		s.leaseMu.Lock()
		delete(s.leases, p)
		s.leaseMu.Unlock()
		return nil, mapErr(what, err)
	}
	return l, nil
}

// createEphemeral creates the instance node with the ACL of its parent
// instances/{svc}. A node that exists and is owned
// by this store's session (an earlier attempt whose reply was lost) is
// taken over; one owned by another session is ErrConflict.
func (s *Store) createEphemeral(ctx context.Context, svc, p string, data []byte) error {
	for attempt := 0; attempt < 5; attempt++ {
		err := s.do(ctx, func(c *zk.Conn) error {
			// The node takes its parent's ACL: an SDK registering with the
			// read-only identity must leave the node readable by the server.
			acl, _, err := c.GetACL(s.instancesPath(svc))
			if err != nil {
				return err
			}
			_, err = c.Create(p, data, zk.FlagEphemeral, acl)
			return err
		})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, zk.ErrNoNode):
			// The instances node is created with the service; make sure
			// the service exists before creating it.
			if _, _, err := s.get(ctx, s.refPath(configsvc.Service(svc))); err != nil {
				if errors.Is(err, zk.ErrNoNode) {
					return fmt.Errorf("service %s does not exist: %w", svc, configsvc.ErrNotFound)
				}
				return err
			}
			if err := s.createIfMissing(ctx, s.instancesPath(svc), s.instACL); err != nil {
				return err
			}
		case errors.Is(err, zk.ErrNodeExists):
			st, err := call(ctx, s, func(c *zk.Conn) (*zk.Stat, error) {
				_, st, err := c.Get(p)
				return st, err
			})
			if errors.Is(err, zk.ErrNoNode) {
				continue // gone meanwhile
			}
			if err != nil {
				return err
			}
			if st.EphemeralOwner != s.conn().SessionID() {
				return fmt.Errorf("a live instance with this id exists: %w", configsvc.ErrConflict)
			}
			return s.do(ctx, func(c *zk.Conn) error { _, err := c.Set(p, data, -1); return err })
		default:
			return err
		}
	}
	return fmt.Errorf("instance node kept changing: %w", configsvc.ErrConflict)
}

// reRegister re-creates every live lease's node on a new session.
func (s *Store) reRegister() {
	s.leaseMu.Lock()
	ls := make([]*lease, 0, len(s.leases))
	for _, l := range s.leases {
		ls = append(ls, l)
	}
	s.leaseMu.Unlock()
	for _, l := range ls {
		ctx, cancel := s.opCtx(s.life)
		l.mu.Lock()
		closed, data := l.closed, l.data
		l.mu.Unlock()
		if !closed {
			if err := s.createEphemeral(ctx, l.inst.Service, l.path, data); err != nil {
				s.log.Error("zkstore: re-register instance after session expiry", "instance", l.path, "err", err)
			}
		}
		cancel()
	}
}

type lease struct {
	s    *Store
	path string

	mu     sync.Mutex
	inst   configsvc.Instance
	data   []byte
	closed bool
}

// Update replaces the registered instance's data (same service and id).
// If the node is missing (its session just expired) it is re-created.
func (l *lease) Update(ctx context.Context, inst configsvc.Instance) error {
	what := fmt.Sprintf("zkstore: update instance %s/%s", inst.Service, inst.ID)
	l.mu.Lock()
	cur, closed := l.inst, l.closed
	l.mu.Unlock()
	if closed {
		return fmt.Errorf("%s: lease closed: %w", what, configsvc.ErrClosed)
	}
	if inst.Service != cur.Service || inst.ID != cur.ID {
		return fmt.Errorf("%s: a lease keeps its service and id (%s/%s): %w", what, cur.Service, cur.ID, configsvc.ErrInvalid)
	}
	if err := inst.Validate(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	data, err := json.Marshal(inst)
	if err != nil {
		return fmt.Errorf("%s: %v: %w", what, err, configsvc.ErrInvalid)
	}
	if len(data) > configsvc.MaxRecordSize {
		return fmt.Errorf("%s: %w", what, &configsvc.LimitError{What: "instance", Size: int64(len(data)), Limit: configsvc.MaxRecordSize})
	}
	l.mu.Lock()
	l.inst, l.data = inst, data
	l.mu.Unlock()
	ctx, cancel := l.s.opCtx(ctx)
	defer cancel()
	err = l.s.do(ctx, func(c *zk.Conn) error { _, err := c.Set(l.path, data, -1); return err })
	if errors.Is(err, zk.ErrNoNode) {
		err = l.s.createEphemeral(ctx, inst.Service, l.path, data)
	}
	return mapErr(what, err)
}

// Close deletes the instance node. It is safe to call more than once; a
// node that cannot be deleted now disappears when the session ends.
func (l *lease) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	s := l.s
	s.leaseMu.Lock()
	if s.leases[l.path] == l {
		delete(s.leases, l.path)
	}
	s.leaseMu.Unlock()
	ctx, cancel := s.opCtx(context.Background())
	defer cancel()
	err := s.do(ctx, func(c *zk.Conn) error {
		_, st, err := c.Get(l.path)
		if err != nil {
			return err
		}
		if st.EphemeralOwner != c.SessionID() {
			return nil // not ours (anymore): leave it alone
		}
		return c.Delete(l.path, st.Version)
	})
	if err == nil || errors.Is(err, zk.ErrNoNode) || errors.Is(err, configsvc.ErrClosed) {
		return nil
	}
	return mapErr("zkstore: close lease "+l.path, err)
}

// Instances lists the live instances of a service, sorted by id, with
// pipelined reads. ErrNotFound if the service does not exist.
func (s *Store) Instances(ctx context.Context, svc string) ([]configsvc.Instance, error) {
	what := "zkstore: instances of " + svc
	if err := configsvc.ValidateServiceName(svc); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	kids, err := s.children(ctx, s.instancesPath(svc))
	if errors.Is(err, zk.ErrNoNode) {
		if _, _, err := s.get(ctx, s.refPath(configsvc.Service(svc))); err != nil {
			return nil, mapErr(what, err)
		}
		return []configsvc.Instance{}, nil
	}
	if err != nil {
		return nil, mapErr(what, err)
	}
	sort.Strings(kids)
	paths := make([]string, len(kids))
	for i, k := range kids {
		paths[i] = s.instancesPath(svc) + "/" + k
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, mapErr(what, err)
	}
	out := make([]configsvc.Instance, 0, len(res))
	for _, r := range res {
		if r.err != nil {
			continue // left meanwhile
		}
		inst, err := decode[configsvc.Instance]("instance", r.data)
		if err != nil {
			return nil, mapErr(what, err)
		}
		out = append(out, *inst)
	}
	return out, nil
}
