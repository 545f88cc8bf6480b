package zkstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// ensureGeneration creates the generation node with a first generation
// when it is missing (a new store, or one created before generations
// existed). An identity that may not create it (an SDK's read-only
// digest) leaves it to the admin server.
func (s *Store) ensureGeneration(ctx context.Context) error {
	err := s.do(ctx, func(c *zk.Conn) error {
		ok, _, err := c.Exists(s.generationPath())
		if err != nil || ok {
			return err
		}
		g := configsvc.StoreGeneration{ID: newID(8), Since: s.cfg.Now().UTC()}
		_, err = c.Create(s.generationPath(), mustJSON(g), 0, s.acl)
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
	if errors.Is(err, zk.ErrNoAuth) {
		s.log.Debug("zkstore: no permission to create the generation node; the admin server creates it", "path", s.generationPath())
		return nil
	}
	return err
}

// readGeneration reads the generation node (after a sync) and its version.
// A missing node is configsvc.ErrNotFound.
func (s *Store) readGeneration(ctx context.Context) (configsvc.StoreGeneration, int32, error) {
	if err := s.synced(ctx); err != nil {
		return configsvc.StoreGeneration{}, 0, err
	}
	data, stat, err := s.get(ctx, s.generationPath())
	if errors.Is(err, zk.ErrNoNode) {
		return configsvc.StoreGeneration{}, 0, fmt.Errorf("the store has no generation node %s yet: %w", s.generationPath(), configsvc.ErrNotFound)
	}
	if err != nil {
		return configsvc.StoreGeneration{}, 0, err
	}
	g, err := decode[configsvc.StoreGeneration]("generation", data)
	if err != nil {
		return configsvc.StoreGeneration{}, 0, err
	}
	return *g, stat.Version, nil
}

// Generation returns the store's generation record, as a linearizable
// read. ErrNotFound when no admin server has opened the store since
// generations exist.
func (s *Store) Generation(ctx context.Context) (configsvc.StoreGeneration, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	g, _, err := s.readGeneration(ctx)
	return g, mapErr("zkstore: generation", err)
}

// BumpGeneration replaces the store's generation with a new random one and
// stamps it on every head (see configsvc.Store.BumpGeneration): first the
// generation node (version-checked; a concurrent bump is built upon), then
// each service's and group's head, each a version-checked write that is
// read again and retried when a publish or link moved the head meanwhile.
// Create checks the generation node's version in its transaction, so a
// service created during the bump gets the new generation. Each step has
// the store's operation timeout; the bump as a whole is bounded by ctx.
func (s *Store) BumpGeneration(ctx context.Context, reason string) (configsvc.StoreGeneration, error) {
	what := "zkstore: bump generation"
	if len(reason) > configsvc.MaxGenerationReasonLen {
		return configsvc.StoreGeneration{}, fmt.Errorf("%s: %w", what, &configsvc.LimitError{What: "reason", Size: int64(len(reason)), Limit: configsvc.MaxGenerationReasonLen})
	}
	g, err := s.setGeneration(ctx, reason)
	if err != nil {
		return configsvc.StoreGeneration{}, mapErr(what, err)
	}
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := s.List(ctx, kind)
		if err != nil {
			return g, mapErr(what, err)
		}
		for _, name := range names {
			ref := configsvc.Ref{Kind: kind, Name: name}
			if err := s.stampHead(ctx, ref, g.ID); err != nil {
				return g, mapErr(fmt.Sprintf("%s: stamp %s (run the bump again to finish)", what, ref), err)
			}
		}
	}
	s.log.Warn("zkstore: store generation bumped: every follower reloads its services as a new history",
		"generation", g.ID, "previous", g.Previous, "reason", g.Reason)
	return g, nil
}

// setGeneration writes a new generation record over the current one.
func (s *Store) setGeneration(ctx context.Context, reason string) (configsvc.StoreGeneration, error) {
	for attempt := 0; ; attempt++ {
		octx, cancel := s.opCtx(ctx)
		cur, version, err := s.readGeneration(octx)
		next := configsvc.StoreGeneration{ID: newID(8), Since: s.cfg.Now().UTC(), Previous: cur.ID, Reason: reason}
		switch {
		case errors.Is(err, configsvc.ErrNotFound):
			_, err = call(octx, s, func(c *zk.Conn) (string, error) {
				return c.Create(s.generationPath(), mustJSON(next), 0, s.acl)
			})
		case err == nil:
			err = s.do(octx, func(c *zk.Conn) error {
				_, err := c.Set(s.generationPath(), mustJSON(next), version)
				return err
			})
		}
		cancel()
		switch {
		case err == nil:
			return next, nil
		case (errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists)) && attempt < maxPublishAttempts:
			continue // a concurrent bump: build on it
		}
		return configsvc.StoreGeneration{}, err
	}
}

// stampHead sets ref's head generation to gen. A head deleted meanwhile is
// left alone.
func (s *Store) stampHead(ctx context.Context, ref configsvc.Ref, gen string) error {
	for attempt := 0; ; attempt++ {
		octx, cancel := s.opCtx(ctx)
		h, stat, err := s.readHeadSynced(octx, ref)
		if err == nil && h.Generation != gen {
			h.Generation = gen
			err = s.do(octx, func(c *zk.Conn) error {
				_, err := c.Set(s.headPath(ref), mustJSON(h), stat.Version)
				return err
			})
			if c, ok := s.heads.get(ref, h.Revision); err == nil && ok && c.version == stat.Version {
				// The stamp leaves the manifest as it was.
				s.heads.put(ref, h, stat.Version+1, c.manifest, c.cversion)
			}
		}
		cancel()
		switch {
		case err == nil, errors.Is(err, configsvc.ErrNotFound), errors.Is(err, zk.ErrNoNode):
			return nil
		case errors.Is(err, zk.ErrBadVersion) && attempt < maxPublishAttempts:
			continue
		}
		return err
	}
}
