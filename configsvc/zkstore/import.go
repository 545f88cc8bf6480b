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

var _ configsvc.Importer = (*Store)(nil)

// importTimeout bounds one ImportBase, whose content may take several
// bounded transactions, in units of Config.OpTimeout.
const importTimeout = 10

// ImportBase writes rev as the first, oldest retained revision of ref:
// the content nodes of every file (under the revision that last wrote
// it) and its manifest nodes first, in transactions of bounded size
// (after removing what an interrupted import left behind), then one
// transaction creates the revision node and sets
// the ref node's pruning progress and the head, version-checked. Until
// that last transaction the head stays at revision 0, so nothing is
// visible half-written. See configsvc.Importer.
func (s *Store) ImportBase(ctx context.Context, ref configsvc.Ref, rev configsvc.Revision, files map[string]configsvc.FileMeta, content map[string][]byte) error {
	what := fmt.Sprintf("zkstore: import base revision %d of %s", rev.Number, ref)
	if err := configsvc.CheckImportBase(ref, rev, files, content); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := context.WithTimeout(ctx, importTimeout*s.cfg.OpTimeout)
	defer cancel()
	defer s.heads.forget(ref)
	st, _, err := s.readState(ctx, ref, nil)
	if err == nil && !st.doc.layout2() {
		if err = s.migrate(ctx, ref); err == nil {
			st, _, err = s.readState(ctx, ref, nil)
		}
	}
	if err != nil {
		return mapErr(what, err)
	}
	if st.doc.Revision != 0 {
		return fmt.Errorf("%s: head is at revision %d, not 0: %w", what, st.doc.Revision, configsvc.ErrConflict)
	}
	// A head at revision 0 has no content or manifest node of its own (a
	// publish writes them with the head): any there are what an
	// interrupted import left, maybe of another archive. Start clean.
	if err := s.clearImportLeftovers(ctx, ref); err != nil {
		return mapErr(what, err)
	}
	var ops []any
	dirs := map[int64]bool{}
	for _, name := range sortedKeys(files) {
		m := files[name]
		if !dirs[m.Revision] {
			dirs[m.Revision] = true
			ops = append(ops, &zk.CreateRequest{Path: s.contentDir(ref, m.Revision), Acl: s.acl})
		}
		ops = append(ops,
			&zk.CreateRequest{Path: s.contentPath(ref, st.doc.Since, m.Revision, name), Data: content[name], Acl: s.acl},
			&zk.CreateRequest{Path: s.manifestNode(ref, name, m.Revision), Data: mustJSON(fileNodeDoc{SHA256: m.SHA256, Size: m.Size}), Acl: s.acl})
	}
	if err := s.applyBounded(ctx, ops); err != nil {
		return mapErr(what, err)
	}
	nodes, err := s.getMany(ctx, []string{s.refPath(ref), s.manifestDir(ref)})
	if err != nil {
		return mapErr(what, err)
	}
	for _, n := range nodes {
		if n.err != nil {
			return mapErr(what, n.err)
		}
	}
	rd, err := decode[refDoc]("ref", nodes[0].data)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	rd.Pruned = rev.Number
	doc := revDoc{Revision: rev.Number, Author: rev.Author, Time: rev.Time.UTC(), Message: rev.Message, RollbackOf: rev.RollbackOf,
		PublishID: rev.PublishID, Parent: rev.Parent, Changes: make([]changeDoc, len(rev.Changes))}
	for i, c := range rev.Changes {
		doc.Changes[i] = changeDoc{File: c.File, Delete: c.Delete}
	}
	head := *st.doc
	head.Revision, head.Files, head.Count, head.legacy = rev.Number, manifestMarker, len(files), nil
	head.Updated, head.Author, head.First, head.PublishID, head.Latest = doc.Time, rev.Author, rev.Number, rev.PublishID, nil
	head.ManifestCversion = nodes[1].stat.Cversion
	var txn []any
	if head.Epoch == "" {
		head.Epoch = newID(8)
		txn = append(txn, &zk.CreateRequest{Path: s.epochPath(ref, head.Epoch), Acl: s.acl})
	} else {
		txn = append(txn, &zk.CheckVersionRequest{Path: s.epochPath(ref, head.Epoch), Version: -1})
	}
	txn = append(txn,
		&zk.CreateRequest{Path: s.revPath(ref, rev.Number), Data: mustJSON(doc), Acl: s.acl},
		&zk.SetDataRequest{Path: s.refPath(ref), Data: mustJSON(rd), Version: nodes[0].stat.Version},
		&zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(&head), Version: st.stat.Version})
	if _, err := s.multi(ctx, txn...); err != nil {
		if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("%s: %s changed meanwhile: %w", what, ref, configsvc.ErrConflict)
		}
		return s.publishErr(what, err, uncertain(err))
	}
	return nil
}

// ImportRevision writes rev as the next revision of ref: a publish (one
// transaction, see Publish) that keeps rev's time, publish id and parent.
// See configsvc.Importer.
func (s *Store) ImportRevision(ctx context.Context, ref configsvc.Ref, rev configsvc.Revision) error {
	what := fmt.Sprintf("zkstore: import revision %d of %s", rev.Number, ref)
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	cs := configsvc.ImportChangeset(rev)
	if err := cs.Validate(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	p := s.newPublication(ref, cs)
	if rev.PublishID != "" {
		p.doc.PublishID, p.rev.PublishID = rev.PublishID, rev.PublishID
	}
	// A zero time takes the head's (RevisionTime never goes back).
	p.now, p.parent = rev.Time.UTC(), rev.Parent
	p.latest = inlineLatest(p.rev, cs)
	_, err := s.publish(ctx, what, p)
	return err
}

// ImportGray writes g with its content, and for an active gray its summary
// to the head, in one transaction checking the head's version. See
// configsvc.Importer.
func (s *Store) ImportGray(ctx context.Context, ref configsvc.Ref, g configsvc.Gray) error {
	what := "zkstore: import gray " + g.ID + " of " + ref.String()
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := configsvc.CheckImportGray(&g); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.createIfMissing(ctx, s.graysPath(ref), s.acl); err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("%s: %w", what, configsvc.ErrNotFound)
		}
		return mapErr(what, err)
	}
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		st, _, err := s.readStateSynced(ctx, ref)
		if err != nil {
			return mapErr(what, err)
		}
		head := *st.doc
		if g.State == configsvc.GrayActive {
			head.Grays = configsvc.WithGraySummary(slices.Clone(head.Grays), g.Summary())
		}
		var ops []any
		if head.Epoch != "" {
			ops = append(ops, &zk.CheckVersionRequest{Path: s.epochPath(ref, head.Epoch), Version: -1})
		}
		ops = append(ops, &zk.CreateRequest{Path: s.grayPath(ref, g.ID), Data: mustJSON(g.WithoutContent()), Acl: s.acl})
		for _, c := range g.Changes {
			if !c.Delete {
				ops = append(ops, &zk.CreateRequest{Path: s.grayContentPath(ref, g.ID, c.File), Data: c.Content, Acl: s.acl})
			}
		}
		ops = append(ops, &zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(&head), Version: st.stat.Version})
		_, err = s.multi(ctx, ops...)
		switch {
		case err == nil:
			s.heads.forget(ref)
			return nil
		case errors.Is(err, zk.ErrNodeExists):
			return fmt.Errorf("%s: %s has a gray %s already: %w", what, ref, g.ID, configsvc.ErrConflict)
		case errors.Is(err, zk.ErrBadVersion):
			continue
		case uncertain(err) && ctx.Err() == nil:
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue // a landed attempt shows as ErrNodeExists: the caller reads the gray
		default:
			return mapErr(what, err)
		}
	}
	return fmt.Errorf("%s: the head kept changing: %w", what, configsvc.ErrConflict)
}

// Collections lists the record collections and logs that hold entries
// (a log written before logs/ existed lives under records/ with its
// counter, and is listed as a log).
func (s *Store) Collections(ctx context.Context) (records, logs []string, err error) {
	what := "zkstore: list collections"
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for _, dir := range []string{s.cfg.Root + "/records", s.cfg.Root + "/logs"} {
		kids, err := s.children(ctx, dir)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, nil, mapErr(what, err)
		}
		paths := make([]string, len(kids))
		for i, k := range kids {
			paths[i] = dir + "/" + k
		}
		res, err := s.getMany(ctx, paths)
		if err != nil {
			return nil, nil, mapErr(what, err)
		}
		for i, r := range res {
			switch {
			case r.err != nil || r.stat.NumChildren == 0:
			case dir == s.cfg.Root+"/logs" || isCounter(r.data):
				logs = append(logs, kids[i])
			default:
				records = append(records, kids[i])
			}
		}
	}
	slices.Sort(records)
	slices.Sort(logs)
	return records, logs, nil
}

// clearImportLeftovers removes every content and manifest node of ref,
// whose head is at revision 0.
func (s *Store) clearImportLeftovers(ctx context.Context, ref configsvc.Ref) error {
	dirs, err := s.children(ctx, s.refPath(ref)+"/content")
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	for _, d := range dirs {
		if err := s.removeTree(ctx, s.refPath(ref)+"/content/"+d); err != nil {
			return err
		}
	}
	kids, err := s.children(ctx, s.manifestDir(ref))
	if err != nil {
		return err
	}
	ops := make([]any, len(kids))
	for i, k := range kids {
		ops[i] = &zk.DeleteRequest{Path: s.manifestDir(ref) + "/" + k, Version: -1}
	}
	return s.applyBounded(ctx, ops)
}
