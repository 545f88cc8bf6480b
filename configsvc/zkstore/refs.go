package zkstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
)

// Create creates an empty service or group at revision 0: its node, its
// head (layout 2, with the store's generation), its epoch node and the
// directories below it, in one transaction that also checks the generation
// node's version, so that a concurrent BumpGeneration cannot leave the new
// head with the generation it replaced (Create then reads the new one and
// tries again). ErrConflict if it exists (or a Delete of it stopped half
// way); ErrInvalid for a bad name; ErrTooMany when Config.Limits' Services
// of its kind exist (counted just before, so servers creating at the same
// moment may pass the limit by their number); ErrOutcomeUnknown when a lost
// reply leaves it unknown whether it was created.
func (s *Store) Create(ctx context.Context, ref configsvc.Ref) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("zkstore: create: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	what := "zkstore: create " + ref.String()
	st, err := call(ctx, s, func(c *zk.Conn) (*zk.Stat, error) {
		_, st, err := c.Exists(s.kindPath(ref.Kind))
		return st, err
	})
	if err != nil {
		return mapErr(what, err)
	}
	if st != nil && int(st.NumChildren) >= s.cfg.Limits.Services {
		return fmt.Errorf("%s: %w", what, &configsvc.CountError{What: ref.Kind.String() + "s in the store", Count: int64(st.NumChildren), Limit: int64(s.cfg.Limits.Services)})
	}
	for attempt := 0; ; attempt++ {
		err := s.create(ctx, what, ref)
		if errors.Is(err, errGenerationMoved) {
			if attempt < maxPublishAttempts {
				continue // the generation was bumped meanwhile
			}
			return fmt.Errorf("%s: the store generation kept changing: %w", what, configsvc.ErrConflict)
		}
		return err
	}
}

// errGenerationMoved: Create's transaction found the generation node
// changed (a BumpGeneration ran meanwhile); Create reads the new
// generation and tries again.
var errGenerationMoved = errors.New("the store generation changed")

// create is one attempt of Create with the store's current generation.
func (s *Store) create(ctx context.Context, what string, ref configsvc.Ref) error {
	gen, genVersion, err := s.readGeneration(ctx)
	if errors.Is(err, configsvc.ErrNotFound) {
		if err = s.ensureGeneration(ctx); err == nil {
			gen, genVersion, err = s.readGeneration(ctx)
		}
	}
	if err != nil {
		return mapErr(what+": read the generation", err)
	}
	now := s.cfg.Now().UTC()
	base := s.refPath(ref)
	head := &headDoc{Files: manifestMarker, Since: 1, Updated: now, First: 1, Epoch: newID(8), Generation: gen.ID}
	ops := []any{
		&zk.CheckVersionRequest{Path: s.generationPath(), Version: genVersion},
		&zk.CreateRequest{Path: base, Data: mustJSON(refDoc{Kind: ref.Kind.String(), Name: ref.Name, Created: now, Pruned: 1}), Acl: s.acl},
		&zk.CreateRequest{Path: s.headPath(ref), Data: mustJSON(head), Acl: s.acl},
		&zk.CreateRequest{Path: s.epochPath(ref, head.Epoch), Acl: s.acl},
		&zk.CreateRequest{Path: base + "/revisions", Acl: s.acl},
		&zk.CreateRequest{Path: base + "/content", Acl: s.acl},
		&zk.CreateRequest{Path: s.manifestDir(ref), Acl: s.acl},
	}
	if ref.Kind == configsvc.KindService {
		ops = append(ops, &zk.CreateRequest{Path: base + "/links", Acl: s.acl})
	} else {
		ops = append(ops, &zk.CreateRequest{Path: base + "/users", Acl: s.acl})
	}
	if err := s.createNodes(ctx, what, ref, head.Epoch, ops); err != nil {
		return err
	}
	s.heads.put(ref, head, 0, map[string]int64{}, 0) // the first publish builds on it
	if ref.Kind == configsvc.KindService {
		if err := s.createIfMissing(ctx, s.instancesPath(ref.Name), s.acls.instParentACL(ref.Name)); err != nil {
			s.log.Warn("zkstore: create instances node", "service", ref.Name, "err", err)
		}
	}
	return nil
}

// createNodes sends Create's transaction ops for ref, whose new epoch is
// epoch. A transaction whose outcome is uncertain is sent again; when that
// finds the nodes there, the new epoch node tells whether they are its own
// (success) or another server's (ErrConflict). ErrOutcomeUnknown when it
// still cannot tell.
func (s *Store) createNodes(ctx context.Context, what string, ref configsvc.Ref, epoch string, ops []any) error {
	unsure := false // an earlier attempt may have landed
	for attempt := 0; ; attempt++ {
		_, err := s.multi(ctx, ops...)
		if err == nil {
			return nil
		}
		if errors.Is(err, zk.ErrNodeExists) {
			if unsure {
				ours, err := s.epochExists(ctx, ref, epoch)
				if err != nil {
					return fmt.Errorf("%s: it may have been created (%v): %w", what, mapErr("", err), configsvc.ErrOutcomeUnknown)
				}
				if ours {
					return nil // our own earlier attempt landed
				}
			}
			return s.existsConflict(ctx, what, ref)
		}
		if errors.Is(err, zk.ErrBadVersion) {
			// The generation node changed. An earlier attempt of ours may
			// have landed before it did.
			if unsure {
				ours, err := s.epochExists(ctx, ref, epoch)
				if err != nil {
					return fmt.Errorf("%s: it may have been created (%v): %w", what, mapErr("", err), configsvc.ErrOutcomeUnknown)
				}
				if ours {
					return nil
				}
			}
			return errGenerationMoved
		}
		if uncertain(err) && ctx.Err() == nil && attempt < maxPublishAttempts {
			unsure = true
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue
		}
		if unsure || uncertain(err) {
			return fmt.Errorf("%s: it may have been created (%v): %w", what, mapErr("", err), configsvc.ErrOutcomeUnknown)
		}
		return mapErr(what, err)
	}
}

// existsConflict is Create's ErrConflict when ref's node exists already,
// saying so when it is what a Delete that stopped half way left (a node
// without head), which a repeated Delete removes.
func (s *Store) existsConflict(ctx context.Context, what string, ref configsvc.Ref) error {
	if _, _, err := s.readHead(ctx, ref); errors.Is(err, configsvc.ErrNotFound) {
		return fmt.Errorf("%s: a delete of it did not finish; delete it again, then create it: %w", what, configsvc.ErrConflict)
	}
	return fmt.Errorf("%s: already exists: %w", what, configsvc.ErrConflict)
}

// epochExists reports, after a sync, whether ref's epoch node epoch exists:
// whether a Create whose reply was lost landed.
func (s *Store) epochExists(ctx context.Context, ref configsvc.Ref, epoch string) (bool, error) {
	return call(ctx, s, func(c *zk.Conn) (bool, error) {
		if _, err := c.Sync(s.refPath(ref)); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return false, err
		}
		ok, _, err := c.Exists(s.epochPath(ref, epoch))
		return ok, err
	})
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
// linearizable read (after a sync). A ref whose Delete stopped half way
// (its head is gone, the rest of its tree not yet) is not listed: it no
// longer exists, and a repeated Delete finishes it. The heads are checked
// with pipelined requests: one round trip.
func (s *Store) List(ctx context.Context, kind configsvc.Kind) ([]string, error) {
	if kind != configsvc.KindService && kind != configsvc.KindGroup {
		return nil, fmt.Errorf("zkstore: list: %w", &configsvc.FieldError{Field: "kind", Value: kind.String(), Msg: "must be service or group"})
	}
	what := "zkstore: list " + kind.String() + "s"
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.synced(ctx); err != nil {
		return nil, mapErr(what, err)
	}
	names, err := s.children(ctx, s.kindPath(kind))
	if err != nil {
		return nil, mapErr(what, err)
	}
	sort.Strings(names)
	heads := make([]string, len(names))
	for i, name := range names {
		heads[i] = s.headPath(configsvc.Ref{Kind: kind, Name: name})
	}
	live, err := s.existMany(ctx, heads)
	if err != nil {
		return nil, mapErr(what, err)
	}
	out := make([]string, 0, len(names))
	for i, name := range names {
		if live[i] {
			out = append(out, name)
		}
	}
	return out, nil
}

// existMany reports which of paths exist, with pipelined requests.
func (s *Store) existMany(ctx context.Context, paths []string) ([]bool, error) {
	out := make([]bool, len(paths))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i, p := range paths {
		g.Go(func() error {
			ok, err := call(gctx, s, func(c *zk.Conn) (bool, error) {
				ok, _, err := c.Exists(p)
				return ok, err
			})
			out[i] = ok
			return err
		})
	}
	return out, g.Wait()
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
	if err := s.synced(ctx); err != nil {
		return configsvc.Head{}, mapErr("zkstore: head "+ref.String(), err)
	}
	// After the sync every read on the session sees at least its state, so
	// a read repeated because a publish moved the manifest needs no other.
	for attempt := 0; ; attempt++ {
		st, _, err := s.readState(ctx, ref, nil)
		if err != nil {
			return configsvc.Head{}, mapErr("zkstore: head "+ref.String(), err)
		}
		files, err := s.fileMetas(ctx, ref, st)
		if errors.Is(err, errManifestMoved) && attempt < maxStateReads {
			continue
		}
		if err != nil {
			return configsvc.Head{}, mapErr("zkstore: head "+ref.String(), err)
		}
		s.heads.put(ref, st.doc, st.stat.Version, st.manifest, st.cversion) // a publish on top of this head usually follows
		return st.doc.head(ref, files), nil
	}
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

// decodeHead decodes a head node in either layout; a layout 1 manifest is
// decoded into legacy.
func decodeHead(data []byte) (*headDoc, error) {
	h, err := decode[headDoc]("head", data)
	if err != nil {
		return nil, err
	}
	if !h.layout2() {
		h.legacy = map[string]configsvc.FileMeta{}
		if len(h.Files) > 0 && string(h.Files) != "null" {
			if err := json.Unmarshal(h.Files, &h.legacy); err != nil {
				return nil, fmt.Errorf("corrupt head node: files: %v", err)
			}
		}
	}
	if h.First < 1 {
		h.First = 1
	}
	return h, nil
}
