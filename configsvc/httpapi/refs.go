package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/pmezard/go-difflib/difflib"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// headJSON is the body of GET /v1/services/{svc} and /v1/shared/{group}.
type headJSON struct {
	Name     string                        `json:"name"`
	Kind     string                        `json:"kind"`
	Revision int64                         `json:"revision"`
	Files    map[string]configsvc.FileMeta `json:"files"`
	Links    []string                      `json:"links"`
	Updated  string                        `json:"updated"`
	Author   string                        `json:"author"`
}

func toHeadJSON(h configsvc.Head) headJSON {
	out := headJSON{Name: h.Ref.Name, Kind: h.Ref.Kind.String(), Revision: h.Revision, Files: map[string]configsvc.FileMeta{},
		Links: append([]string{}, h.Links...), Author: h.Author}
	if !h.Updated.IsZero() {
		out.Updated = h.Updated.UTC().Format(timeFormat)
	}
	for name, m := range h.Files {
		m.Name = name
		out.Files[name] = m
	}
	return out
}

const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"

// changeJSON is one change of a revision in the API: content is a JSON
// string (Sluice stores only UTF-8).
type changeJSON struct {
	File    string  `json:"file"`
	Content *string `json:"content,omitempty"`
	Delete  bool    `json:"delete,omitempty"`
}

// revisionJSON is a revision in the API.
type revisionJSON struct {
	Revision   int64        `json:"revision"`
	Author     string       `json:"author"`
	Time       string       `json:"time"`
	Message    string       `json:"message"`
	Changes    []changeJSON `json:"changes"`
	RollbackOf int64        `json:"rollback_of,omitempty"`
}

// toRevisionJSON converts r; content is included when withContent is set.
func toRevisionJSON(r configsvc.Revision, withContent bool) revisionJSON {
	out := revisionJSON{Revision: r.Number, Author: r.Author, Time: r.Time.UTC().Format(timeFormat), Message: r.Message,
		Changes: make([]changeJSON, 0, len(r.Changes)), RollbackOf: r.RollbackOf}
	for _, ch := range r.Changes {
		cj := changeJSON{File: ch.File, Delete: ch.Delete}
		if withContent && !ch.Delete {
			s := string(ch.Content)
			cj.Content = &s
		}
		out.Changes = append(out.Changes, cj)
	}
	return out
}

func (s *Server) listRefs(kind configsvc.Kind) gin.HandlerFunc {
	key := "services"
	if kind == configsvc.KindGroup {
		key = "groups"
	}
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
		c.JSON(http.StatusOK, gin.H{key: visible})
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
		setRevisionHeaders(c, h.Revision)
		c.JSON(http.StatusOK, toHeadJSON(h))
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
		}
		h, err := s.cfg.Store.Head(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		h.Ref = ref
		setRevisionHeaders(c, h.Revision)
		c.JSON(status, toHeadJSON(h))
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
// ETag "<revision of the service>" and X-Sluice-Revision.
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
		rev, _, ok := s.queryInt(c, "revision", 1, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		ctx := c.Request.Context()
		if rev == 0 {
			h, err := s.cfg.Store.Head(ctx, ref)
			if err != nil {
				s.fail(c, err)
				return
			}
			if h.Revision == 0 {
				s.fail(c, fmt.Errorf("%s has no file %q: nothing published yet: %w", ref, file, configsvc.ErrNotFound))
				return
			}
			rev = h.Revision
		}
		content, meta, err := s.cfg.Store.File(ctx, ref, file, rev)
		if err != nil {
			s.fail(c, err)
			return
		}
		setRevisionHeaders(c, rev)
		c.Header("X-Sluice-File-Revision", strconv.FormatInt(meta.Revision, 10))
		c.Data(http.StatusOK, contentTypeOf(file), content)
	}
}

// commit publishes cs. base is the If-Match revision (-1 when absent): a
// conflict is then a stale precondition (412) rather than a 409. The
// changeset is validated once, by the store's Publish (Config.Store).
func (s *Server) commit(c *gin.Context, ref configsvc.Ref, cs configsvc.Changeset, ifMatch int64, status int) {
	ctx := c.Request.Context()
	cs.Author = state(c).principal.Name
	if err := checkMessage(cs.Message); err != nil {
		s.fail(c, err)
		return
	}
	rev, err := s.cfg.Store.Publish(ctx, ref, cs)
	if err != nil {
		s.fail(c, staleIfMatch(err, ifMatch))
		return
	}
	s.published(c, ref, rev, status)
}

func (s *Server) published(c *gin.Context, ref configsvc.Ref, rev configsvc.Revision, status int) {
	state(c).revision = rev.Number
	s.metrics.publishes.WithLabelValues(ref.Kind.String()).Inc()
	setRevisionHeaders(c, rev.Number)
	c.JSON(status, toRevisionJSON(rev, false))
}

// base returns the revision a single-file write builds on: If-Match when
// given (checked against the head: 412 when stale), else the current head.
func (s *Server) base(c *gin.Context, ref configsvc.Ref) (base, match int64, ok bool) {
	match, err := ifMatch(c)
	if err != nil {
		s.fail(c, err)
		return 0, 0, false
	}
	h, err := s.cfg.Store.Head(c.Request.Context(), ref)
	if err != nil {
		s.fail(c, err)
		return 0, 0, false
	}
	if match >= 0 && match != h.Revision {
		s.fail(c, fmt.Errorf("%w: If-Match %s but %s is at revision %d", errPrecondition, etag(match), ref, h.Revision))
		return 0, 0, false
	}
	return h.Revision, match, true
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
			err = fmt.Errorf("a file body must be its raw content (text/*, application/json, yaml, toml or octet-stream), not %q: %w", mt, errUnsupportedMed)
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
		base, match, ok := s.base(c, ref)
		if !ok {
			return
		}
		s.commit(c, ref, configsvc.Changeset{Base: base, Message: c.GetHeader("X-Sluice-Message"),
			Changes: []configsvc.Change{{File: file, Content: content}}}, match, http.StatusOK)
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
		base, match, ok := s.base(c, ref)
		if !ok {
			return
		}
		s.commit(c, ref, configsvc.Changeset{Base: base, Message: c.GetHeader("X-Sluice-Message"),
			Changes: []configsvc.Change{{File: file, Delete: true}}}, match, http.StatusOK)
	}
}

// publishRequest is the body of POST …/revisions.
type publishRequest struct {
	BaseRevision *int64       `json:"base_revision"`
	Message      string       `json:"message"`
	Changes      []changeJSON `json:"changes"`
}

// publish creates one revision from several changes. The base is
// base_revision, or If-Match, or (neither given) the current head; when both
// are given they must agree.
func (s *Server) publish(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req publishRequest
		if err := decodeJSON(c, MaxPublishBody, &req); err != nil {
			s.fail(c, err)
			return
		}
		match, err := ifMatch(c)
		if err != nil {
			s.fail(c, err)
			return
		}
		cs := configsvc.Changeset{Message: req.Message, Changes: make([]configsvc.Change, len(req.Changes))}
		for i, ch := range req.Changes {
			if ch.Delete == (ch.Content != nil) {
				s.fail(c, &configsvc.FieldError{Field: fmt.Sprintf("changes[%d]", i), Value: ch.File, Msg: `must have either "content" or "delete": true`})
				return
			}
			cs.Changes[i] = configsvc.Change{File: ch.File, Delete: ch.Delete}
			if ch.Content != nil {
				cs.Changes[i].Content = []byte(*ch.Content)
			}
		}
		base, given, err := baseRevision(req.BaseRevision, match)
		if err != nil {
			s.fail(c, err)
			return
		}
		if !given {
			h, err := s.cfg.Store.Head(c.Request.Context(), ref)
			if err != nil {
				s.fail(c, err)
				return
			}
			base = h.Revision
		}
		cs.Base = base
		s.commit(c, ref, cs, match, http.StatusCreated)
	}
}

func (s *Server) listRevisions(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		limit, _, ok := s.queryInt(c, "limit", 1, MaxListLimit)
		if !ok {
			return
		}
		before, _, ok := s.queryInt(c, "before", 0, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		revs, err := s.cfg.Store.Revisions(c.Request.Context(), ref, before, int(limit))
		if err != nil {
			s.fail(c, err)
			return
		}
		out := make([]revisionJSON, len(revs))
		for i, r := range revs {
			out[i] = toRevisionJSON(r, false)
		}
		c.JSON(http.StatusOK, gin.H{"revisions": out})
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
		rev, err := s.cfg.Store.Revision(c.Request.Context(), ref, n)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.Header("ETag", etag(rev.Number))
		c.JSON(http.StatusOK, toRevisionJSON(rev, true))
	}
}

// fileDiff is one file's entry in a diff.
type fileDiff struct {
	File   string `json:"file"`
	Status string `json:"status"` // added, removed, modified
	Diff   string `json:"diff"`   // unified diff
}

// diff compares revisions from and to (default: to = head, from = to-1);
// revision 0 is the empty state before the first publish.
func (s *Server) diff(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		from, hasFrom, ok := s.queryInt(c, "from", 0, 1<<62)
		if !ok {
			return
		}
		to, hasTo, ok := s.queryInt(c, "to", 0, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		ctx := c.Request.Context()
		if !hasTo {
			h, err := s.cfg.Store.Head(ctx, ref)
			if err != nil {
				s.fail(c, err)
				return
			}
			to = h.Revision
		}
		if !hasFrom {
			from = max(0, to-1)
		}
		snap := func(rev int64) (map[string][]byte, error) {
			if rev == 0 {
				return map[string][]byte{}, nil
			}
			sn, err := s.cfg.Store.Snapshot(ctx, ref, rev)
			return sn.Files, err
		}
		a, err := snap(from)
		if err != nil {
			s.fail(c, err)
			return
		}
		b, err := snap(to)
		if err != nil {
			s.fail(c, err)
			return
		}
		files := []fileDiff{}
		for _, ch := range configsvc.Diff(a, b, nil) {
			old, had := a[ch.File]
			fd := fileDiff{File: ch.File, Status: "modified"}
			switch {
			case ch.Delete:
				fd.Status = "removed"
			case !had:
				fd.Status = "added"
			}
			fd.Diff, err = unifiedDiff(old, ch.Content, fmt.Sprintf("a/%s@%d", ch.File, from), fmt.Sprintf("b/%s@%d", ch.File, to))
			if err != nil {
				s.fail(c, fmt.Errorf("diff %s: %w", ch.File, err))
				return
			}
			files = append(files, fd)
		}
		c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "files": files})
	}
}

// rollbackRequest is the body of POST …/rollback.
type rollbackRequest struct {
	ToRevision   int64    `json:"to_revision"`
	Files        []string `json:"files"`
	Message      string   `json:"message"`
	BaseRevision int64    `json:"base_revision"`
}

func (s *Server) rollback(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req rollbackRequest
		if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
			s.fail(c, err)
			return
		}
		match, err := ifMatch(c)
		if err != nil {
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
		var bodyBase *int64
		if req.BaseRevision != 0 {
			bodyBase = &req.BaseRevision
		}
		base, _, err := baseRevision(bodyBase, match) // 0 when neither is given: Rollback reads the head
		if err != nil {
			s.fail(c, err)
			return
		}
		rev, err := configsvc.Rollback(c.Request.Context(), s.cfg.Store, ref, configsvc.RollbackRequest{
			To: req.ToRevision, Files: req.Files, Base: base, Author: state(c).principal.Name, Message: req.Message,
		})
		if err != nil {
			s.fail(c, staleIfMatch(err, match))
			return
		}
		s.published(c, ref, rev, http.StatusCreated)
	}
}

// snapshotJSON is the body of …/snapshot (docs/architecture.md, "Server ↔ SDK").
type snapshotJSON struct {
	Revision int64             `json:"revision"`
	Files    map[string]string `json:"files"`
	Links    []string          `json:"links"`
}

func (s *Server) snapshot(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		rev, _, ok := s.queryInt(c, "revision", 1, 1<<62)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		ctx := c.Request.Context()
		h, err := s.cfg.Store.Head(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		out := snapshotJSON{Revision: h.Revision, Files: map[string]string{}, Links: append([]string{}, h.Links...)}
		if rev == 0 {
			rev = h.Revision
		}
		if rev > 0 {
			sn, err := s.cfg.Store.Snapshot(ctx, ref, rev)
			if err != nil {
				s.fail(c, err)
				return
			}
			out.Revision = sn.Revision
			for n, b := range sn.Files {
				out.Files[n] = string(b)
			}
		}
		setRevisionHeaders(c, out.Revision)
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
	c.JSON(http.StatusOK, gin.H{"group": ref.Name, "services": append([]string{}, users...)})
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
		c.JSON(http.StatusOK, gin.H{"service": svc.Name, "links": append([]string{}, h.Links...)})
	}
}

// unifiedDiff renders a unified diff with three lines of context.
func unifiedDiff(a, b []byte, fromFile, toFile string) (string, error) {
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: diffLines(string(a)), B: diffLines(string(b)),
		FromFile: fromFile, ToFile: toFile, Context: 3,
	})
}

// diffLines splits s into lines that keep their "\n". Unlike
// difflib.SplitLines it adds no empty last line for content that ends in a
// newline; a last line without one gets the marker diff(1) prints.
func diffLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		return lines[:len(lines)-1]
	}
	lines[len(lines)-1] += "\n\\ No newline at end of file\n"
	return lines
}

// baseRevision reconciles the two ways a write names the head it edited: a
// base_revision in the body and an If-Match header (match, -1 when absent).
// given is false when neither is set; both set must agree.
func baseRevision(body *int64, match int64) (base int64, given bool, err error) {
	switch {
	case body != nil && match >= 0 && *body != match:
		return 0, false, &configsvc.FieldError{Field: "base_revision", Value: strconv.FormatInt(*body, 10), Msg: "differs from If-Match " + etag(match)}
	case body != nil:
		return *body, true, nil
	case match >= 0:
		return match, true, nil
	}
	return 0, false, nil
}

// staleIfMatch turns the conflict of a write made with If-Match (match ≥ 0)
// into a failed precondition (412); other errors pass through.
func staleIfMatch(err error, match int64) error {
	if match >= 0 && errors.Is(err, configsvc.ErrConflict) {
		return fmt.Errorf("%w: If-Match %s is no longer the head: %w", errPrecondition, etag(match), err)
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
