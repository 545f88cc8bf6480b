package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
)

func (s *Server) listRefs(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		names, err := s.cfg.Store.List(c.Request.Context(), kind)
		if err != nil {
			s.fail(c, err)
			return
		}
		p := state(c).principal
		visible := []string{}
		for _, n := range names {
			if s.authz.Decide(p, access.ActionRead, access.Target{Ref: configsvc.Ref{Kind: kind, Name: n}}).Allowed {
				visible = append(visible, n)
			}
		}
		if kind == configsvc.KindGroup {
			c.JSON(http.StatusOK, api.GroupList{Groups: visible})
			return
		}
		c.JSON(http.StatusOK, api.ServiceList{Services: visible})
	}
}

func (s *Server) getRef(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		h, err := s.cfg.Store.Head(c.Request.Context(), ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		h.Ref = ref
		if s.notModified(c, h.Revision) {
			return
		}
		c.JSON(http.StatusOK, api.FromHead(h))
	}
}

// createRef creates a service or group. Creating one that exists is not an
// error (PUT is idempotent): 200 with its head instead of 201.
func (s *Server) createRef(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionCreate, access.Target{Ref: ref}) {
			return
		}
		ctx := c.Request.Context()
		status := http.StatusCreated
		if err := s.cfg.Store.Create(ctx, ref); errors.Is(err, configsvc.ErrConflict) {
			status = http.StatusOK
		} else if err != nil {
			s.fail(c, err)
			return
		} else {
			s.index.poke()
		}
		h, err := s.cfg.Store.Head(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		h.Ref = ref
		setRevisionHeaders(c, h.Revision)
		c.JSON(status, api.FromHead(h))
	}
}

func (s *Server) deleteRef(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionDelete, access.Target{Ref: ref}) {
			return
		}
		if err := s.cfg.Store.Delete(c.Request.Context(), ref); err != nil {
			s.fail(c, err)
			return
		}
		s.index.deleted(ref)
		c.Status(http.StatusNoContent)
	}
}

func contentTypeOf(file string) string {
	switch configsvc.FormatOf(file) {
	case configsvc.FormatJSON:
		return "application/json"
	case configsvc.FormatYAML:
		return "application/yaml; charset=utf-8"
	case configsvc.FormatTOML:
		return "application/toml; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

// getFile returns a file's raw content at the head or at ?revision=N, with
// ETag "<revision of the service>" and X-Sluice-Revision; 304 when
// If-None-Match names that revision.
func (s *Server) getFile(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		file, ok := s.fileParam(c, ref)
		if !ok {
			return
		}
		rev, ok := s.queryInt(c, "revision", 1, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		state(c).askedRev = rev
		ctx := c.Request.Context()
		if rev == 0 {
			h, err := s.cfg.Store.Head(ctx, ref)
			if err != nil {
				s.fail(c, err)
				return
			}
			if h.Revision == 0 {
				s.fail(c, userErr(configsvc.ErrNotFound, "%s has no file %s: nothing is published in it yet", refWords(ref), file))
				return
			}
			rev = h.Revision
		}
		content, meta, err := s.cfg.Store.File(ctx, ref, file, rev)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.Header("X-Sluice-File-Revision", strconv.FormatInt(meta.Revision, 10))
		if s.notModified(c, rev) {
			return
		}
		c.Data(http.StatusOK, contentTypeOf(file), content)
	}
}

// published answers the revision a write published (answer).
func (s *Server) published(c *gin.Context, ref configsvc.Ref, rev configsvc.Revision, status int) {
	s.answer(c, ref, written{rev: &rev}, status)
}

// writeBase is what a write builds on: the head it read, and whether
// If-Match was given and holds for it (the store then answers a lost race
// 412, not 409).
type writeBase struct {
	head        configsvc.Head
	conditional bool
}

// base reads the head a write to ref builds on and evaluates If-Match
// against it (checkIfMatch; the target is file when not "", else ref). The
// request is answered (ok false) when the head cannot be read or the
// condition fails.
func (s *Server) base(c *gin.Context, ref configsvc.Ref, file string) (b writeBase, ok bool) {
	h, err := s.cfg.Store.Head(c.Request.Context(), ref)
	if err != nil {
		s.fail(c, err)
		return b, false
	}
	target, exists := ref.String(), true
	if file != "" {
		_, exists = h.Files[file]
		target += " file " + file
	}
	conditional, err := checkIfMatch(c, target, h.Revision, exists)
	if err != nil {
		s.fail(c, err)
		return b, false
	}
	return writeBase{head: h, conditional: conditional}, true
}

// putFile publishes one file from the raw request body; the message comes
// from X-Sluice-Message.
func (s *Server) putFile(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		file, ok := s.fileParam(c, ref)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		mt, err := mediaType(c)
		if err == nil && !rawContentOK(mt) {
			err = userErr(errUnsupportedMed, "a file body must be its raw content (text/*, application/json, yaml, toml or octet-stream), not %q", mt)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		content, err := readBody(c, configsvc.MaxFileSize, fmt.Sprintf("file %q", file))
		if err != nil {
			s.fail(c, err)
			return
		}
		b, ok := s.base(c, ref, file)
		if !ok {
			return
		}
		s.submit(c, plan{ref: ref, op: approval.OpPublish, conditional: b.conditional, status: http.StatusOK,
			cs: configsvc.Changeset{Base: b.head.Revision, Message: c.GetHeader("X-Sluice-Message"),
				Changes: []configsvc.Change{{File: file, Content: content}}}})
	}
}

func (s *Server) deleteFile(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		file, ok := s.fileParam(c, ref)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		b, ok := s.base(c, ref, file)
		if !ok {
			return
		}
		s.submit(c, plan{ref: ref, op: approval.OpPublish, conditional: b.conditional, status: http.StatusOK,
			cs: configsvc.Changeset{Base: b.head.Revision, Message: c.GetHeader("X-Sluice-Message"),
				Changes: []configsvc.Change{{File: file, Delete: true}}}})
	}
}

// publish creates one revision from several changes. The base is
// base_revision, else the current head; If-Match, when given, must hold
// for the current head (412).
func (s *Server) publish(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req api.PublishRequest
		if err := decodeJSON(c, MaxPublishBody, &req); err != nil {
			s.fail(c, err)
			return
		}
		changes, err := domainChanges(req.Changes)
		if err != nil {
			s.fail(c, err)
			return
		}
		cs := configsvc.Changeset{Message: req.Message, Changes: changes}
		conditional := false
		if req.BaseRevision != nil && len(c.Request.Header.Values(headerIfMatch)) == 0 {
			cs.Base = *req.BaseRevision // the store checks it: no head read needed
		} else {
			b, ok := s.base(c, ref, "")
			if !ok {
				return
			}
			cs.Base, conditional = b.head.Revision, b.conditional
			if req.BaseRevision != nil && *req.BaseRevision != b.head.Revision {
				cs.Base, conditional = *req.BaseRevision, false // a stale base_revision: 409
			}
		}
		s.submit(c, plan{ref: ref, op: approval.OpPublish, cs: cs, conditional: conditional, status: http.StatusCreated})
	}
}

func (s *Server) listRevisions(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		limit, ok := s.queryInt(c, "limit", 1, MaxListLimit)
		if !ok {
			return
		}
		before, ok := s.queryInt(c, "before", 0, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		revs, err := s.cfg.Store.Revisions(c.Request.Context(), ref, before, int(limit))
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, api.RevisionList{Revisions: api.FromRevisions(revs)})
	}
}

func (s *Server) getRevision(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		raw, err := param(c, "n")
		if err != nil {
			s.fail(c, err)
			return
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 1 {
			s.fail(c, &configsvc.FieldError{Field: "revision", Value: raw, Msg: "must be a positive integer"})
			return
		}
		if !s.authorizeRead(c, ref) {
			return
		}
		state(c).askedRev = n
		rev, err := s.cfg.Store.Revision(c.Request.Context(), ref, n)
		if err != nil {
			s.fail(c, err)
			return
		}
		if s.notModified(c, rev.Number) {
			return
		}
		c.JSON(http.StatusOK, api.FromRevision(rev, true))
	}
}

// diff compares revisions from and to (default: to = head, from = to-1);
// revision 0 is the empty state before the first publish.
func (s *Server) diff(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		fromParam, ok := s.queryIntParam(c, "from", 0, 1<<62)
		if !ok {
			return
		}
		toParam, ok := s.queryIntParam(c, "to", 0, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		state(c).askedRev = max(fromParam.value, toParam.value)
		ctx := c.Request.Context()
		to := toParam.value
		if !toParam.given {
			h, err := s.cfg.Store.Head(ctx, ref)
			if err != nil {
				s.fail(c, err)
				return
			}
			to = h.Revision
		}
		from := fromParam.value
		if !fromParam.given {
			from = max(0, to-1)
		}
		a, err := s.filesAt(ctx, ref, from)
		if err != nil {
			s.fail(c, err)
			return
		}
		b, err := s.filesAt(ctx, ref, to)
		if err != nil {
			s.fail(c, err)
			return
		}
		files, err := diffFiles(ctx, a, b, from, to)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, api.Diff{Files: files, From: from, To: to})
	}
}

// filesAt returns the files of ref at revision rev; revision 0 has none.
func (s *Server) filesAt(ctx context.Context, ref configsvc.Ref, rev int64) (map[string][]byte, error) {
	if rev == 0 {
		return map[string][]byte{}, nil
	}
	sn, err := s.cfg.Store.Snapshot(ctx, ref, rev)
	return sn.Files, err
}

// diffFiles returns the unified diff of every file that differs between a
// (revision from) and b (revision to), in file order. It stops with an
// error at ctx's deadline: a pathological diff costs a request its timeout,
// never more.
func diffFiles(ctx context.Context, a, b map[string][]byte, from, to int64) ([]api.FileDiff, error) {
	files := []api.FileDiff{}
	for _, ch := range configsvc.Diff(a, b, nil) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("diff stopped at the request deadline: %w", err)
		}
		old, had := a[ch.File]
		fd := api.FileDiff{File: ch.File, Status: api.DiffModified}
		switch {
		case ch.Delete:
			fd.Status = api.DiffRemoved
		case !had:
			fd.Status = api.DiffAdded
		}
		var err error
		fd.Diff, err = unifiedDiff(ctx, old, ch.Content, fmt.Sprintf("a/%s@%d", ch.File, from), fmt.Sprintf("b/%s@%d", ch.File, to))
		if err != nil {
			return nil, fmt.Errorf("diff %s: %w", ch.File, err)
		}
		files = append(files, fd)
	}
	return files, nil
}

func (s *Server) rollback(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req api.RollbackRequest
		if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
			s.fail(c, err)
			return
		}
		if req.ToRevision < 1 {
			s.fail(c, &configsvc.FieldError{Field: "to_revision", Value: strconv.FormatInt(req.ToRevision, 10), Msg: "must be a revision number, 1 or more"})
			return
		}
		if len(req.Message) > configsvc.MaxMessageLen {
			s.fail(c, &configsvc.LimitError{What: "message", Size: int64(len(req.Message)), Limit: configsvc.MaxMessageLen})
			return
		}
		if err := checkMessage(req.Message); err != nil {
			s.fail(c, err)
			return
		}
		for i, f := range req.Files {
			if err := configsvc.ValidateFileName(f); err != nil {
				s.fail(c, &configsvc.FieldError{Field: fmt.Sprintf("files[%d]", i), Value: f, Msg: err.(*configsvc.FieldError).Msg})
				return
			}
		}
		base, conditional := req.BaseRevision, false // base 0: Rollback reads the head
		if len(c.Request.Header.Values(headerIfMatch)) > 0 {
			b, ok := s.base(c, ref, "")
			if !ok {
				return
			}
			if base == 0 || base == b.head.Revision {
				base, conditional = b.head.Revision, b.conditional
			}
		}
		state(c).askedRev = req.ToRevision
		cs, err := configsvc.RollbackChangeset(c.Request.Context(), s.cfg.Store, ref, configsvc.RollbackRequest{
			To: req.ToRevision, Files: req.Files, Base: base, Author: state(c).principal.Name, Message: req.Message,
		})
		if err != nil {
			s.fail(c, staleIfMatch(err, conditional))
			return
		}
		s.submit(c, plan{ref: ref, op: approval.OpRollback, cs: cs, conditional: conditional, status: http.StatusCreated})
	}
}

func (s *Server) snapshot(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		rev, ok := s.queryInt(c, "revision", 1, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		state(c).askedRev = rev
		ctx := c.Request.Context()
		h, err := s.cfg.Store.Head(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		out := api.Snapshot{Revision: h.Revision, Files: map[string]string{}, Links: append([]string{}, h.Links...),
			Generation: h.Generation, PublishID: h.PublishID}
		if rev == 0 {
			rev = h.Revision
		}
		if rev > 0 {
			sn, err := s.cfg.Store.Snapshot(ctx, ref, rev)
			if err != nil {
				s.fail(c, err)
				return
			}
			out.Revision, out.Generation, out.PublishID = sn.Revision, sn.Generation, sn.PublishID
			for n, b := range sn.Files {
				out.Files[n] = string(b)
			}
		}
		if s.notModified(c, out.Revision) {
			return
		}
		c.JSON(http.StatusOK, out)
	}
}

// users lists the services linked to a shared group.
func (s *Server) users(c *gin.Context) {
	ref, ok := s.refParam(c, configsvc.KindGroup)
	if !ok || !s.authorizeRead(c, ref) {
		return
	}
	users, err := s.cfg.Store.Users(c.Request.Context(), ref.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, api.Users{Group: ref.Name, Services: append([]string{}, users...)})
}

// link links (or unlinks) a shared group to a service: ActionLink on the
// service and, to link, a direct read grant on the group.
func (s *Server) link(add bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		svc, ok := s.refParam(c, configsvc.KindService)
		if !ok {
			return
		}
		gname, err := param(c, "group")
		if err == nil {
			err = configsvc.ValidateGroupName(gname)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		group := configsvc.Group(gname)
		state(c).target = svc.String() + "/links/" + gname
		// Linking needs a direct grant on the group: reading a group through
		// a link must not be something a service editor can give themselves.
		// Unlinking only narrows access, so the service grant suffices.
		if !s.authorize(c, access.ActionLink, access.Target{Ref: svc}) || add && !s.authorize(c, access.ActionRead, access.Target{Ref: group}) {
			return
		}
		ctx := c.Request.Context()
		if add {
			err = s.cfg.Store.Link(ctx, svc.Name, gname)
		} else {
			err = s.cfg.Store.Unlink(ctx, svc.Name, gname)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		h, err := s.cfg.Store.Head(ctx, svc)
		if err != nil {
			s.fail(c, err)
			return
		}
		s.index.linked(svc.Name, h.Links)
		c.JSON(http.StatusOK, api.Links{Links: append([]string{}, h.Links...), Service: svc.Name})
	}
}

// staleIfMatch turns the conflict of a write whose If-Match held for its
// base (conditional) into a failed precondition (412): the head moved on
// between the check and the publish. Other errors pass through.
func staleIfMatch(err error, conditional bool) error {
	if conditional && errors.Is(err, configsvc.ErrConflict) {
		return userErr(fmt.Errorf("%w: %w", api.ErrPrecondition, err), "the revision If-Match named is no longer the head: another change was published meanwhile; reload and try again")
	}
	return err
}

// checkMessage refuses a revision message that is not UTF-8 text or holds
// control characters other than newline and tab.
func checkMessage(msg string) error {
	if !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return &configsvc.FieldError{Field: "message", Value: msg, Msg: "must be UTF-8 text without control characters"}
	}
	return nil
}
