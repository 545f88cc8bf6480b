package zkstore

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
)

// Create creates an empty service or group at revision 0: its node, its
// head (with the store's generation), its epoch node and the directories
// below it, in one transaction that also checks the generation node's
// version, so that a concurrent BumpGeneration cannot leave the new head
// with the generation it replaced. ErrConflict if it exists; ErrInvalid
// for a bad name.
func (s *Store) Create(ctx context.Context, ref configsvc.Ref) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("zkstore: create: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for attempt := 0; ; attempt++ {
		err := s.create(ctx, ref)
		if errors.Is(err, zk.ErrBadVersion) {
			if attempt < maxPublishAttempts {
				continue // the generation was bumped meanwhile
			}
			return fmt.Errorf("zkstore: create %s: the store generation kept changing: %w", ref, configsvc.ErrConflict)
		}
		return err
	}
}

func (s *Store) create(ctx context.Context, ref configsvc.Ref) error {
	gen, genVersion, err := s.readGeneration(ctx)
	if errors.Is(err, configsvc.ErrNotFound) {
		if err = s.ensureGeneration(ctx); err == nil {
			gen, genVersion, err = s.readGeneration(ctx)
		}
	}
	if err != nil {
		return mapErr("zkstore: create "+ref.String()+": read the generation", err)
	}
	now := s.cfg.Now().UTC()
	base := s.refPath(ref)
	head := &headDoc{Files: map[string]configsvc.FileMeta{}, Updated: now, First: 1, Epoch: newID(8), Generation: gen.ID}
	ops := []any{
		&zk.CheckVersionRequest{Path: s.generationPath(), Version: genVersion},
		&zk.CreateRequest{Path: base, Data: mustJSON(refDoc{Kind: ref.Kind.String(), Name: ref.Name, Created: now, Pruned: 1}), Acl: s.acl},
		&zk.CreateRequest{Path: s.headPath(ref), Data: mustJSON(head), Acl: s.acl},
		&zk.CreateRequest{Path: s.epochPath(ref, head.Epoch), Acl: s.acl},
		&zk.CreateRequest{Path: base + "/revisions", Acl: s.acl},
		&zk.CreateRequest{Path: base + "/content", Acl: s.acl},
	}
	if ref.Kind == configsvc.KindService {
		ops = append(ops, &zk.CreateRequest{Path: base + "/links", Acl: s.acl})
	} else {
		ops = append(ops, &zk.CreateRequest{Path: base + "/users", Acl: s.acl})
	}
	if _, err := s.multi(ctx, ops...); err != nil {
		if errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zkstore: create %s: already exists: %w", ref, configsvc.ErrConflict)
		}
		if errors.Is(err, zk.ErrBadVersion) {
			return err // Create reads the new generation and tries again
		}
		return mapErr("zkstore: create "+ref.String(), err)
	}
	s.heads.put(ref, head, 0) // the first publish builds on it
	if ref.Kind == configsvc.KindService {
		if err := s.createIfMissing(ctx, s.instancesPath(ref.Name), s.instACL); err != nil {
			s.log.Warn("zkstore: create instances node", "service", ref.Name, "err", err)
		}
	}
	return nil
}

// Delete removes a service or group with its whole history and, for a
// service, its links (both directions) and instance nodes. The head, the
// links and, for a group, its users directory go first in one transaction
// (so a group still linked fails with ErrConflict and nothing changes);
// the rest is removed after. A Delete interrupted half way leaves a node
// without head that Head reports as ErrNotFound and that a repeated Delete
// finishes. ErrNotFound if ref does not exist.
func (s *Store) Delete(ctx context.Context, ref configsvc.Ref) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("zkstore: delete: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	what := "zkstore: delete " + ref.String()
	skip := map[int]bool{}
	for attempt := 0; ; attempt++ {
		// The first read after a sync, so that a service created through
		// another store just before is not reported missing.
		read := s.readHead
		if attempt == 0 {
			read = s.readHeadSynced
		}
		h, stat, err := read(ctx, ref)
		if errors.Is(err, configsvc.ErrNotFound) {
			_, _, err := s.get(ctx, s.refPath(ref))
			if err != nil {
				return mapErr(what, err)
			}
			break // half-deleted: finish the job
		}
		if err != nil {
			return mapErr(what, err)
		}
		var ops []any
		if ref.Kind == configsvc.KindGroup {
			ops = append(ops, &zk.DeleteRequest{Path: s.refPath(ref) + "/users", Version: -1})
		} else {
			for _, g := range h.Links {
				ops = append(ops,
					&zk.DeleteRequest{Path: s.linkPath(ref.Name, g), Version: -1},
					&zk.DeleteRequest{Path: s.userPath(g, ref.Name), Version: -1})
			}
		}
		var kept []any
		for i, op := range ops {
			if !skip[i] {
				kept = append(kept, op)
			}
		}
		kept = append(kept, &zk.DeleteRequest{Path: s.headPath(ref), Version: stat.Version})
		idx, err := s.multi(ctx, kept...)
		switch {
		case err == nil:
		case errors.Is(err, zk.ErrNotEmpty):
			users, _ := s.Users(ctx, ref.Name)
			return fmt.Errorf("%s: still linked by services %v: %w", what, users, configsvc.ErrConflict)
		case errors.Is(err, zk.ErrBadVersion) && attempt < 20:
			continue
		case errors.Is(err, zk.ErrNoNode) && idx >= 0 && idx < len(kept)-1 && attempt < 20:
			// A link or users node is already gone; delete the rest.
			n := 0
			for i := range ops {
				if !skip[i] {
					if n == idx {
						skip[i] = true
						break
					}
					n++
				}
			}
			continue
		default:
			return mapErr(what, err)
		}
		break
	}
	s.pruneMu.Lock()
	delete(s.prunedTo, ref)
	s.pruneMu.Unlock()
	s.heads.forget(ref)
	s.notes.forget(ref)
	if err := s.removeTree(ctx, s.refPath(ref)); err != nil {
		return mapErr(what, err)
	}
	if ref.Kind == configsvc.KindService {
		if err := s.removeTree(ctx, s.instancesPath(ref.Name)); err != nil {
			return mapErr(what, err)
		}
	}
	return nil
}

// removeTree deletes p and everything below it, many nodes at a time.
func (s *Store) removeTree(ctx context.Context, p string) error {
	kids, err := s.children(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, k := range kids {
		g.Go(func() error { return s.removeTree(gctx, p+"/"+k) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	err = s.do(ctx, func(c *zk.Conn) error { return c.Delete(p, -1) })
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// List returns the names of all services or all groups, sorted, as a
// linearizable read (after a sync).
func (s *Store) List(ctx context.Context, kind configsvc.Kind) ([]string, error) {
	if kind != configsvc.KindService && kind != configsvc.KindGroup {
		return nil, fmt.Errorf("zkstore: list: %w", &configsvc.FieldError{Field: "kind", Value: kind.String(), Msg: "must be service or group"})
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.synced(ctx); err != nil {
		return nil, mapErr("zkstore: list "+kind.String()+"s", err)
	}
	names, err := s.children(ctx, s.kindPath(kind))
	if err != nil {
		return nil, mapErr("zkstore: list "+kind.String()+"s", err)
	}
	sort.Strings(names)
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// Head returns the current head manifest, as a linearizable read: after a
// sync (see syncer), so that it shows every publish acknowledged before the
// call, through any store on the ensemble. ErrNotFound if ref does not
// exist.
func (s *Store) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	if err := ref.Validate(); err != nil {
		return configsvc.Head{}, fmt.Errorf("zkstore: head: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	h, stat, err := s.readHeadSynced(ctx, ref)
	if err != nil {
		return configsvc.Head{}, mapErr("zkstore: head "+ref.String(), err)
	}
	s.heads.put(ref, h, stat.Version) // a publish on top of this head usually follows
	return h.head(ref), nil
}

// readHeadSynced is readHead after a sync: a linearizable read of the head.
func (s *Store) readHeadSynced(ctx context.Context, ref configsvc.Ref) (*headDoc, *zk.Stat, error) {
	if err := s.synced(ctx); err != nil {
		return nil, nil, err
	}
	return s.readHead(ctx, ref)
}

// readHead reads and decodes ref's head node, as the store's server has
// it (which may be behind the leader: see readHeadSynced). A missing head
// is configsvc.ErrNotFound.
func (s *Store) readHead(ctx context.Context, ref configsvc.Ref) (*headDoc, *zk.Stat, error) {
	data, stat, err := s.get(ctx, s.headPath(ref))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil, fmt.Errorf("%s does not exist: %w", ref, configsvc.ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	h, err := decodeHead(data)
	if err != nil {
		return nil, nil, err
	}
	return h, stat, nil
}

func decodeHead(data []byte) (*headDoc, error) {
	h, err := decode[headDoc]("head", data)
	if err != nil {
		return nil, err
	}
	if h.Files == nil {
		h.Files = map[string]configsvc.FileMeta{}
	}
	if h.First < 1 {
		h.First = 1
	}
	return h, nil
}
