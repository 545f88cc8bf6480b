package zkstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// Grays (docs/zookeeper-layout.md): {ref}/grays/{id} holds the gray as
// JSON without content, {ref}/grays/{id}/{file} the content of each file
// it writes, and the head (layout 2's summary node) carries the summaries
// of the active ones (headDoc.Grays), so every change of a gray is one
// transaction that also sets the head with its version checked: watchers
// see it through the one node they watch, and no change is half-written.
// A gray never touches manifest/ (only a promote does, as the publish it
// is), so the head's ManifestCversion stays true across gray changes. The
// grays node is created by the first CreateGray of a ref; Delete removes
// it with the rest of the ref's tree.

func (s *Store) graysPath(ref configsvc.Ref) string { return s.refPath(ref) + "/grays" }

func (s *Store) grayPath(ref configsvc.Ref, id string) string { return s.graysPath(ref) + "/" + id }

func (s *Store) grayContentPath(ref configsvc.Ref, id, file string) string {
	return s.grayPath(ref, id) + "/" + file
}

// CreateGray creates a gray of ref: one transaction checks the head's
// epoch node, creates the gray's node and its content nodes and sets the
// head (version-checked) with the new summary. The head and its manifest
// (which NewGray checks the gray's deletions and base files against) are
// read together, as Head reads them. See configsvc.Store.CreateGray.
func (s *Store) CreateGray(ctx context.Context, ref configsvc.Ref, g configsvc.Gray) (configsvc.Gray, error) {
	what := "zkstore: create gray of " + ref.String()
	if err := ref.Validate(); err != nil {
		return configsvc.Gray{}, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var tried []string // ids of attempts whose outcome is unknown
	graysNode := false // the grays node is known to exist
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		if landed, ok, err := s.landedGray(ctx, ref, tried); err != nil {
			return configsvc.Gray{}, s.publishErr(what, err, true)
		} else if ok {
			return landed, nil
		}
		st, _, err := s.readState(ctx, ref, nil)
		if err != nil {
			return configsvc.Gray{}, s.publishErr(what, err, len(tried) > 0)
		}
		h, stat := st.doc, st.stat
		created, summaries, err := configsvc.NewGray(ref, g, h.head(ref, manifestFiles(st.manifest)), s.cfg.Now())
		if err != nil {
			return configsvc.Gray{}, fmt.Errorf("%s: %w", what, err)
		}
		if !graysNode {
			if err := s.createIfMissing(ctx, s.graysPath(ref), s.acl); err != nil {
				return configsvc.Gray{}, mapErr(what, err)
			}
			graysNode = true
		}
		head := *h
		head.Grays = summaries
		var ops []any
		if head.Epoch != "" {
			// A re-created ref whose head reached the same version fails it.
			ops = append(ops, &zk.CheckVersionRequest{Path: s.epochPath(ref, head.Epoch), Version: -1})
		}
		ops = append(ops, &zk.CreateRequest{Path: s.grayPath(ref, created.ID), Data: mustJSON(created.WithoutContent()), Acl: s.acl})
		for _, c := range created.Changes {
			if !c.Delete {
				ops = append(ops, &zk.CreateRequest{Path: s.grayContentPath(ref, created.ID, c.File), Data: c.Content, Acl: s.acl})
			}
		}
		ops = append(ops, &zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(&head), Version: stat.Version})
		_, err = s.multi(ctx, ops...)
		switch {
		case err == nil:
			s.heads.put(ref, &head, stat.Version+1, st.manifest, st.cversion)
			return created, nil
		case errors.Is(err, configsvc.ErrTooLarge):
			return configsvc.Gray{}, fmt.Errorf("%s: %w", what, err)
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNodeExists):
			graysNode = graysNode && !errors.Is(err, zk.ErrNoNode)
			continue // the head moved (or the ref went): read it again
		case uncertain(err) && ctx.Err() == nil:
			tried = append(tried, created.ID)
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue
		default:
			return configsvc.Gray{}, s.publishErr(what, err, len(tried) > 0 || uncertain(err))
		}
	}
	return configsvc.Gray{}, fmt.Errorf("%s: the head kept changing: %w", what, configsvc.ErrConflict)
}

// landedGray returns the gray one of the attempts ids created, if one
// landed (after a sync, so that it sees what the leader committed).
func (s *Store) landedGray(ctx context.Context, ref configsvc.Ref, ids []string) (configsvc.Gray, bool, error) {
	if len(ids) == 0 {
		return configsvc.Gray{}, false, nil
	}
	if err := s.do(ctx, func(c *zk.Conn) error { _, err := c.Sync(s.headPath(ref)); return err }); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return configsvc.Gray{}, false, err
	}
	for _, id := range ids {
		g, err := s.readGray(ctx, ref, id, true)
		if errors.Is(err, configsvc.ErrNotFound) {
			continue
		}
		return g, err == nil, err
	}
	return configsvc.Gray{}, false, nil
}

// UpdateGray changes an active gray: one transaction sets the gray's node
// and the head (both version-checked). See configsvc.Store.UpdateGray.
func (s *Store) UpdateGray(ctx context.Context, ref configsvc.Ref, id string, version int64, fn func(*configsvc.Gray) error) (configsvc.Gray, error) {
	what := fmt.Sprintf("zkstore: update gray %s of %s", id, ref)
	if err := s.validGray(ref, id); err != nil {
		return configsvc.Gray{}, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var wrote *configsvc.Gray // an attempt whose outcome is unknown
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		st, err := s.readGrayState(ctx, ref, id, true, false)
		if err != nil {
			return configsvc.Gray{}, s.publishErr(what, err, wrote != nil)
		}
		if wrote != nil && st.gray.Version == wrote.Version && st.gray.Updated.Equal(wrote.Updated) {
			return *wrote, nil // the unsure attempt landed
		}
		next, err := configsvc.UpdatedGray(st.gray, version, s.cfg.Now(), fn)
		if err != nil {
			return configsvc.Gray{}, fmt.Errorf("%s: %w", what, err)
		}
		head := *st.head
		head.Grays = configsvc.WithGraySummary(st.head.Grays, next.Summary())
		_, err = s.multi(ctx,
			&zk.SetDataRequest{Path: s.grayPath(ref, id), Data: mustJSON(next.WithoutContent()), Version: st.grayVersion},
			&zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(&head), Version: st.headVersion})
		switch {
		case err == nil:
			s.heads.advance(ref, st.head, st.headVersion, &head, st.headVersion+1)
			return next, nil
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNoNode):
			continue // the gray or the head moved: read again (a moved gray is a conflict)
		case uncertain(err) && ctx.Err() == nil:
			wrote = &next
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue
		default:
			return configsvc.Gray{}, s.publishErr(what, err, wrote != nil || uncertain(err))
		}
	}
	return configsvc.Gray{}, fmt.Errorf("%s: the head kept changing: %w", what, configsvc.ErrConflict)
}

// EndGray abandons or promotes a gray in one transaction: the gray's node
// and the head (version-checked), the dropped history of ended grays,
// and for a promote what Publish writes (the epoch check, the content
// nodes, the manifest nodes of the changed files, the revision node), on
// the head and manifest read together with the gray. A promote on a head
// still in layout 1 moves it to layout 2 first, as Publish does. See
// configsvc.Store.EndGray.
func (s *Store) EndGray(ctx context.Context, ref configsvc.Ref, id string, version int64, end configsvc.GrayEnd) (configsvc.Gray, *configsvc.Revision, error) {
	what := fmt.Sprintf("zkstore: end gray %s of %s", id, ref)
	if err := s.validGray(ref, id); err != nil {
		return configsvc.Gray{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	promote := end.State == configsvc.GrayPromoted
	unsure := false
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		st, err := s.readGrayState(ctx, ref, id, promote, promote)
		if err != nil {
			return configsvc.Gray{}, nil, s.publishErr(what, err, unsure)
		}
		if promote && !st.head.layout2() && st.gray.State == configsvc.GrayActive {
			if err := s.migrate(ctx, ref); err != nil {
				return configsvc.Gray{}, nil, s.publishErr(what+": move to layout 2", err, unsure)
			}
			continue
		}
		if unsure && st.gray.State == end.State && st.gray.Version == version+1 {
			return s.endLanded(ctx, ref, st.gray, promote, what)
		}
		// The gray's state, version and end's shape first, so an ended
		// gray says so whatever main did meanwhile.
		if _, err := configsvc.EndedGray(st.gray, version, end, 0, s.cfg.Now()); err != nil {
			return configsvc.Gray{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		base := *st.head
		base.Grays = configsvc.WithoutGraySummary(st.head.Grays, id)
		t := endTxn{head: &base}
		if promote {
			if err := s.promoteOps(ref, &st.gray, st, end, &t); err != nil {
				return configsvc.Gray{}, nil, fmt.Errorf("%s: %w", what, err)
			}
		} else {
			t.ops = []any{&zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(&base), Version: st.headVersion}}
		}
		ended, err := configsvc.EndedGray(st.gray, version, end, t.number(), s.cfg.Now())
		if err != nil {
			return configsvc.Gray{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		t.ops = append(t.ops, &zk.SetDataRequest{Path: s.grayPath(ref, id), Data: mustJSON(ended.WithoutContent()), Version: st.grayVersion})
		drop, err := s.dropEndedOps(ctx, ref, ended, len(st.head.Grays))
		if err != nil {
			return configsvc.Gray{}, nil, mapErr(what, err)
		}
		_, err = s.multi(ctx, append(t.ops, drop...)...)
		switch {
		case err == nil:
			if t.pub != nil {
				s.heads.put(ref, t.head, st.headVersion+1, t.manifest, t.head.ManifestCversion)
				t.pub.cacheMetas(t.head.Epoch)
				s.schedulePrune(ref, t.head.Epoch, t.head.First)
				return ended.WithoutContent(), &t.pub.rev, nil
			}
			s.heads.advance(ref, st.head, st.headVersion, t.head, st.headVersion+1)
			return ended.WithoutContent(), nil, nil
		case errors.Is(err, configsvc.ErrTooLarge):
			return configsvc.Gray{}, nil, fmt.Errorf("%s: %w", what, err)
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNoNode), errors.Is(err, zk.ErrNodeExists):
			continue // the gray, the head or the history moved: read again
		case uncertain(err) && ctx.Err() == nil:
			unsure = true
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue
		default:
			return configsvc.Gray{}, nil, s.publishErr(what, err, unsure || uncertain(err))
		}
	}
	return configsvc.Gray{}, nil, fmt.Errorf("%s: the head kept changing: %w", what, configsvc.ErrConflict)
}

// endTxn is the transaction of one EndGray attempt: its operations, the
// head it writes and, for a promote, the publication it carries and the
// manifest it leaves.
type endTxn struct {
	ops      []any
	head     *headDoc
	pub      *publication
	manifest map[string]int64
}

// number is the main revision the transaction creates; 0 for an abandon.
func (t *endTxn) number() int64 {
	if t.pub == nil {
		return 0
	}
	return t.pub.doc.Revision
}

// promoteOps fills t with the publish of gray g's promote on the head of
// st (t.head: without g's summary), as Publish builds it.
func (s *Store) promoteOps(ref configsvc.Ref, g *configsvc.Gray, st grayState, end configsvc.GrayEnd, t *endTxn) error {
	if end.Promote.Base != st.head.Revision {
		return fmt.Errorf("promote on base revision %d, but the head is %d: %w", end.Promote.Base, st.head.Revision, configsvc.ErrConflict)
	}
	cs, err := configsvc.PromoteChangeset(g, st.head.head(ref, manifestFiles(st.manifest)), end)
	if err != nil {
		return err
	}
	if err := cs.Validate(); err != nil {
		return err
	}
	t.pub = s.newPublication(ref, cs)
	ops, head, manifest, err := t.pub.transaction(cachedHead{doc: t.head, version: st.headVersion, manifest: st.manifest, cversion: st.cversion})
	if err != nil {
		return err
	}
	t.ops, t.head, t.manifest = ops, head, manifest
	return nil
}

// endLanded answers an EndGray whose unsure attempt landed: the ended
// gray and, for a promote, the revision it created.
func (s *Store) endLanded(ctx context.Context, ref configsvc.Ref, g configsvc.Gray, promote bool, what string) (configsvc.Gray, *configsvc.Revision, error) {
	g = g.WithoutContent()
	if !promote {
		return g, nil, nil
	}
	d, err := s.readRev(ctx, ref, g.EndedRevision)
	if err != nil {
		return configsvc.Gray{}, nil, s.publishErr(what, err, true)
	}
	rev := d.revision()
	return g, &rev, nil
}

// dropEndedOps returns the deletions that keep the history of ended grays
// of ref within configsvc.MaxEndedGrays once ended has ended; active is
// how many grays were active before. It lists the grays node, and reads
// the ended grays only when the history is full.
func (s *Store) dropEndedOps(ctx context.Context, ref configsvc.Ref, ended configsvc.Gray, active int) ([]any, error) {
	ids, err := s.children(ctx, s.graysPath(ref))
	if err != nil {
		return nil, err
	}
	if len(ids)-(active-1) <= configsvc.MaxEndedGrays {
		return nil, nil
	}
	grays, err := s.readGrays(ctx, ref, ids)
	if err != nil {
		return nil, err
	}
	for i := range grays {
		if grays[i].ID == ended.ID {
			grays[i] = ended
		}
	}
	var ops []any
	for _, id := range configsvc.EndedBeyond(grays) {
		i := slices.IndexFunc(grays, func(g configsvc.Gray) bool { return g.ID == id })
		for _, c := range grays[i].Changes {
			if !c.Delete {
				ops = append(ops, &zk.DeleteRequest{Path: s.grayContentPath(ref, id, c.File), Version: -1})
			}
		}
		ops = append(ops, &zk.DeleteRequest{Path: s.grayPath(ref, id), Version: -1})
	}
	return ops, nil
}

// Gray returns one gray with content; see configsvc.Store.Gray.
func (s *Store) Gray(ctx context.Context, ref configsvc.Ref, id string) (configsvc.Gray, error) {
	what := fmt.Sprintf("zkstore: gray %s of %s", id, ref)
	if err := s.validGray(ref, id); err != nil {
		return configsvc.Gray{}, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	st, err := s.readGrayState(ctx, ref, id, true, true)
	if err != nil {
		return configsvc.Gray{}, mapErr(what, err)
	}
	g := st.gray
	if g.State == configsvc.GrayActive {
		g.MainChanged = g.MainChangedIn(manifestFiles(st.manifest))
	}
	return g, nil
}

// Grays lists the grays of ref without content; see
// configsvc.Store.Grays.
func (s *Store) Grays(ctx context.Context, ref configsvc.Ref) ([]configsvc.Gray, error) {
	what := "zkstore: grays of " + ref.String()
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	st, _, err := s.readState(ctx, ref, nil)
	if err != nil {
		return nil, mapErr(what, err)
	}
	files := manifestFiles(st.manifest)
	ids, err := s.children(ctx, s.graysPath(ref))
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return nil, mapErr(what, err)
	}
	grays, err := s.readGrays(ctx, ref, ids)
	if err != nil {
		return nil, mapErr(what, err)
	}
	for i := range grays {
		if grays[i].State == configsvc.GrayActive {
			grays[i].MainChanged = grays[i].MainChangedIn(files)
		}
	}
	configsvc.SortGrays(grays)
	return grays, nil
}

func (s *Store) validGray(ref configsvc.Ref, id string) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	return configsvc.ValidateGrayID(id)
}

// grayState is a gray and the head of its ref, read together, with the
// versions of their nodes and, when asked for, the manifest at the head.
type grayState struct {
	head        *headDoc
	headVersion int32
	gray        configsvc.Gray
	grayVersion int32
	manifest    map[string]int64 // nil unless read
	cversion    int32            // manifest/'s cversion with manifest
}

// readGrayState reads ref's head and gray id (pipelined: one round trip),
// with the manifest at the head when withManifest is set (listed in the
// same round trip, consistently with the head: readState), and the gray's
// content when withContent is set (a second one). ErrNotFound for a
// missing ref or gray.
func (s *Store) readGrayState(ctx context.Context, ref configsvc.Ref, id string, withContent, withManifest bool) (grayState, error) {
	var out grayState
	var gres result
	if withManifest {
		st, res, err := s.readState(ctx, ref, []string{s.grayPath(ref, id)})
		if err != nil {
			return grayState{}, err
		}
		out = grayState{head: st.doc, headVersion: st.stat.Version, manifest: st.manifest, cversion: st.cversion}
		gres = res[0]
	} else {
		res, err := s.getMany(ctx, []string{s.headPath(ref), s.grayPath(ref, id)})
		if err != nil {
			return grayState{}, err
		}
		if res[0].err != nil {
			return grayState{}, fmt.Errorf("%s does not exist: %w", ref, configsvc.ErrNotFound)
		}
		h, err := decodeHead(res[0].data)
		if err != nil {
			return grayState{}, err
		}
		out = grayState{head: h, headVersion: res[0].stat.Version}
		gres = res[1]
	}
	if gres.err != nil {
		return grayState{}, fmt.Errorf("%s has no gray %s: %w", ref, id, configsvc.ErrNotFound)
	}
	g, err := decode[configsvc.Gray]("gray", gres.data)
	if err != nil {
		return grayState{}, err
	}
	g.Ref = ref
	if withContent {
		if err := s.grayContent(ctx, ref, g); err != nil {
			return grayState{}, err
		}
	}
	out.gray, out.grayVersion = *g, gres.stat.Version
	return out, nil
}

// readGray reads gray id of ref, with content when withContent is set.
func (s *Store) readGray(ctx context.Context, ref configsvc.Ref, id string, withContent bool) (configsvc.Gray, error) {
	st, err := s.readGrayState(ctx, ref, id, withContent, false)
	return st.gray, err
}

// manifestFiles returns manifest (file → revision of its content node)
// as the FileMeta map of a configsvc.Head with only the names, revisions
// and formats set: what the gray transitions read of main (which files
// exist, and which revision last wrote each), without reading the
// manifest nodes' data.
func manifestFiles(manifest map[string]int64) map[string]configsvc.FileMeta {
	out := make(map[string]configsvc.FileMeta, len(manifest))
	for name, rev := range manifest {
		out[name] = configsvc.FileMeta{Name: name, Revision: rev, Format: configsvc.FormatOf(name)}
	}
	return out
}

// grayContent reads the content of the changes of g (pipelined).
func (s *Store) grayContent(ctx context.Context, ref configsvc.Ref, g *configsvc.Gray) error {
	var paths []string
	var at []int
	for i, c := range g.Changes {
		if !c.Delete {
			paths = append(paths, s.grayContentPath(ref, g.ID, c.File))
			at = append(at, i)
		}
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return err
	}
	for j, r := range res {
		if r.err != nil {
			return fmt.Errorf("content of %q in gray %s missing", g.Changes[at[j]].File, g.ID)
		}
		if r.data == nil {
			r.data = []byte{}
		}
		g.Changes[at[j]].Content = r.data
	}
	return nil
}

// readGrays reads the grays ids of ref without content (pipelined); a
// gray dropped meanwhile is left out.
func (s *Store) readGrays(ctx context.Context, ref configsvc.Ref, ids []string) ([]configsvc.Gray, error) {
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = s.grayPath(ref, id)
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, err
	}
	out := make([]configsvc.Gray, 0, len(ids))
	for i, r := range res {
		if r.err != nil {
			continue
		}
		g, err := decode[configsvc.Gray]("gray "+ids[i], r.data)
		if err != nil {
			return nil, err
		}
		g.Ref = ref
		out = append(out, *g)
	}
	return out, nil
}

// graysStep sends the GraysChanged event a watcher owes for head h, after
// the revisions up to it; the first head a watcher reads is its baseline
// when Watch could not read one.
func (w *watcher) graysStep(h *headDoc) error {
	if w.graysSeen && !configsvc.SameGrays(w.grays, h.Grays) {
		if !w.send(configsvc.Event{GraysChanged: true, Grays: append([]configsvc.GraySummary{}, h.Grays...)}) {
			return errStopped
		}
	}
	w.grays, w.graysSeen = h.Grays, true
	return nil
}
