package zkstore

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

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

// RemoveInstance deletes the instance node instances/{svc}/{id}, whichever
// ZooKeeper session holds it (see configsvc.Store): the node of a process
// that died without closing its session stays until the session expires,
// and an administrator may not want to wait. The lease that created the
// node, in this process or another, creates it again at its next Update.
// ErrNotFound if the service or the instance does not exist.
func (s *Store) RemoveInstance(ctx context.Context, svc, id string) error {
	what := fmt.Sprintf("zkstore: remove instance %s/%s", svc, id)
	if err := configsvc.ValidateServiceName(svc); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := configsvc.ValidateInstanceID(id); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	p := s.instancesPath(svc) + "/" + id
	err := s.do(ctx, func(c *zk.Conn) error { return c.Delete(p, -1) })
	if errors.Is(err, zk.ErrNoNode) {
		if _, _, err := s.get(ctx, s.headPath(configsvc.Service(svc))); err != nil {
			return mapErr(what+": service", err)
		}
		return fmt.Errorf("%s: not registered: %w", what, configsvc.ErrNotFound)
	}
	return mapErr(what, err)
}
