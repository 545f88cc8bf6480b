package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// liveInstance is a registration held in memory, with the lease that owns it
// so that a closed lease never removes a later registration of the same id.
// removed marks a record RemoveInstance took away while its lease lives on:
// it is not listed, a new registration may take its id, and its lease's
// next Update lists it again.
type liveInstance struct {
	inst    configsvc.Instance
	owner   *lease
	removed bool
}

func instKey(svc string) string { return "instances/" + svc }

// cloneInstance deep-copies in (Instance.Clone), its times in UTC.
func cloneInstance(in configsvc.Instance) configsvc.Instance {
	return configsvc.NormalizeInstance(in.Clone())
}

// Register records inst as a live instance until the returned Lease is
// closed or the store is closed, its Started and Updated in UTC. The
// service must exist (ErrNotFound); ErrConflict if an instance with that id
// is already live; ErrTooMany when the service has its limit of live
// instances (Options.Limits).
func (s *Store) Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	what := fmt.Sprintf("register instance %s/%s", inst.Service, inst.ID)
	if err := inst.Validate(); err != nil {
		return nil, fmt.Errorf("boltstore: %s: %w", what, err)
	}
	if data, err := json.Marshal(inst); err != nil || len(data) > configsvc.MaxRecordSize {
		return nil, fmt.Errorf("boltstore: %s: %w", what, &configsvc.LimitError{What: "instance", Size: int64(len(data)), Limit: configsvc.MaxRecordSize})
	}
	if err := s.serviceExists(ctx, what, inst.Service); err != nil {
		return nil, err
	}
	l := &lease{s: s, svc: inst.Service, id: inst.ID}
	s.mu.Lock()
	if s.bg.Stopped() {
		s.mu.Unlock()
		return nil, fmt.Errorf("boltstore: %s: %w", what, configsvc.ErrClosed)
	}
	live := s.instances[inst.Service]
	if li, ok := live[inst.ID]; ok && !li.removed {
		s.mu.Unlock()
		return nil, fmt.Errorf("boltstore: %s: already live: %w", what, configsvc.ErrConflict)
	}
	if len(live) >= s.limits.InstancesPerService {
		s.mu.Unlock()
		return nil, fmt.Errorf("boltstore: %s: %w", what, &configsvc.CountError{What: "live instances of service " + inst.Service, Count: int64(len(live)), Limit: int64(s.limits.InstancesPerService)})
	}
	if live == nil {
		live = map[string]liveInstance{}
		s.instances[inst.Service] = live
	}
	live[inst.ID] = liveInstance{inst: cloneInstance(inst), owner: l}
	s.mu.Unlock()
	s.notify(instKey(inst.Service))
	return l, nil
}

// RemoveInstance removes the record of instance id of svc, whoever
// registered it; see configsvc.Store. Its lease's next Update lists it
// again. ErrNotFound if the service or the instance does not exist.
func (s *Store) RemoveInstance(ctx context.Context, svc, id string) error {
	what := fmt.Sprintf("remove instance %s/%s", svc, id)
	if err := configsvc.ValidateServiceName(svc); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	if err := configsvc.ValidateInstanceID(id); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	if err := s.serviceExists(ctx, what, svc); err != nil {
		return err
	}
	s.mu.Lock()
	li, ok := s.instances[svc][id]
	if !ok || li.removed {
		s.mu.Unlock()
		return fmt.Errorf("boltstore: %s: not registered: %w", what, configsvc.ErrNotFound)
	}
	li.removed = true
	s.instances[svc][id] = li
	s.mu.Unlock()
	s.notify(instKey(svc))
	return nil
}

// dropInstances removes every instance of svc (the service was deleted).
func (s *Store) dropInstances(svc string) {
	s.mu.Lock()
	delete(s.instances, svc)
	s.mu.Unlock()
	s.notify(instKey(svc))
}

// Instances lists the live instances of svc, sorted by id; ErrNotFound if
// the service does not exist.
func (s *Store) Instances(ctx context.Context, svc string) ([]configsvc.Instance, error) {
	what := "list instances of service/" + svc
	if err := configsvc.ValidateServiceName(svc); err != nil {
		return nil, fmt.Errorf("boltstore: %s: %w", what, err)
	}
	if err := s.serviceExists(ctx, what, svc); err != nil {
		return nil, err
	}
	return s.instanceList(svc), nil
}

// serviceExists returns an ErrNotFound error when svc does not exist.
func (s *Store) serviceExists(ctx context.Context, what, svc string) error {
	return s.view(ctx, what, func(tx *bolt.Tx) error {
		_, err := refBucket(tx, configsvc.Service(svc))
		return err
	})
}

func (s *Store) instanceList(svc string) []configsvc.Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]configsvc.Instance, 0, len(s.instances[svc]))
	for _, li := range s.instances[svc] {
		if !li.removed {
			out = append(out, cloneInstance(li.inst))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// WatchInstances sends the live instance list of svc now and after every
// change, until ctx ends or the store closes; then the channel is closed.
// A slow receiver skips intermediate lists and gets the newest. When the
// service does not exist or is deleted, an event with Err wrapping
// ErrNotFound is sent and the channel closed.
func (s *Store) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	out := make(chan configsvc.InstancesEvent)
	started := s.bg.Go(func() {
		defer close(out)
		what := "watch instances of service/" + svc
		fail := func(err error) {
			select {
			case out <- configsvc.InstancesEvent{Err: err}:
			case <-ctx.Done():
			case <-s.bg.Done():
			}
		}
		if err := configsvc.ValidateServiceName(svc); err != nil {
			fail(fmt.Errorf("boltstore: %s: %w", what, err))
			return
		}
		key := instKey(svc)
		for {
			sig := s.signal(key)
			if err := s.serviceExists(ctx, what, svc); err != nil {
				fail(err)
				return
			}
			ev := configsvc.InstancesEvent{Instances: s.instanceList(svc)}
			select {
			case out <- ev:
			case <-sig:
				continue // a newer list replaces this one
			case <-ctx.Done():
				return
			case <-s.bg.Done():
				return
			}
			if !s.await(ctx, sig) {
				return
			}
		}
	})
	if !started {
		close(out)
	}
	return out
}

// lease is a Register registration.
type lease struct {
	s       *Store
	svc, id string
	once    sync.Once
	closed  atomic.Bool
}

// Update replaces the registered instance's data; inst must have the same
// service and id (ErrInvalid). A record RemoveInstance took away is listed
// again. ErrClosed once the lease is closed; ErrNotFound once its service
// was deleted.
func (l *lease) Update(ctx context.Context, inst configsvc.Instance) error {
	what := fmt.Sprintf("update instance %s/%s", l.svc, l.id)
	if l.closed.Load() {
		return fmt.Errorf("boltstore: %s: lease closed: %w", what, configsvc.ErrClosed)
	}
	if inst.Service != l.svc || inst.ID != l.id {
		return fmt.Errorf("boltstore: %s: %w", what, &configsvc.FieldError{
			Field: "instance", Value: inst.Service + "/" + inst.ID, Msg: "must keep the registered service and id"})
	}
	if err := inst.Validate(); err != nil {
		return fmt.Errorf("boltstore: %s: %w", what, err)
	}
	if data, err := json.Marshal(inst); err != nil || len(data) > configsvc.MaxRecordSize {
		return fmt.Errorf("boltstore: %s: %w", what, &configsvc.LimitError{What: "instance", Size: int64(len(data)), Limit: configsvc.MaxRecordSize})
	}
	if err := l.s.check(ctx, what); err != nil {
		return err
	}
	l.s.mu.Lock()
	li, ok := l.s.instances[l.svc][l.id]
	if !ok || li.owner != l {
		l.s.mu.Unlock()
		return fmt.Errorf("boltstore: %s: registration closed: %w", what, configsvc.ErrNotFound)
	}
	l.s.instances[l.svc][l.id] = liveInstance{inst: cloneInstance(inst), owner: l}
	l.s.mu.Unlock()
	l.s.notify(instKey(l.svc))
	return nil
}

// Close removes the registration. It is safe to call more than once and
// after the store closed.
func (l *lease) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		l.s.mu.Lock()
		li, ok := l.s.instances[l.svc][l.id]
		removed := ok && li.owner == l
		if removed {
			delete(l.s.instances[l.svc], l.id)
			if len(l.s.instances[l.svc]) == 0 {
				delete(l.s.instances, l.svc)
			}
		}
		l.s.mu.Unlock()
		if removed {
			l.s.notify(instKey(l.svc))
		}
	})
	return nil
}
