package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
)

// changeParams returns the ref and the validated change request id of the
// path, and records the audit target "KIND/NAME/changes/ID".
func (s *Server) changeParams(c *gin.Context, kind configsvc.Kind) (configsvc.Ref, string, bool) {
	ref, ok := s.refParam(c, kind)
	if !ok {
		return ref, "", false
	}
	id, err := param(c, "id")
	if err == nil {
		err = approval.ValidateID(id)
	}
	if err != nil {
		s.fail(c, err)
		return ref, "", false
	}
	state(c).target = ref.String() + "/changes/" + id
	return ref, id, true
}

// allParam reads ?all=true.
func allParam(c *gin.Context) bool { return c.Query("all") == "true" }

// listChanges answers GET …/changes[?all=true].
func (s *Server) listChanges(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		crs, err := s.gov.List(c.Request.Context(), ref, allParam(c))
		if err != nil {
			s.fail(c, err)
			return
		}
		out := api.ChangeList{Changes: []api.ChangeRequest{}}
		for _, cr := range crs {
			out.Changes = append(out.Changes, api.FromChange(cr, nil))
		}
		c.JSON(http.StatusOK, out)
	}
}

// inbox answers GET /v1/changes[?all=true]: the change requests of every
// service and group the caller may read.
func (s *Server) inbox(c *gin.Context) {
	crs, err := s.gov.List(c.Request.Context(), configsvc.Ref{}, allParam(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := state(c).principal
	out := api.ChangeList{Changes: []api.ChangeRequest{}}
	for _, cr := range crs {
		if s.authz.Decide(p, access.ActionRead, access.Target{Ref: cr.Ref()}).Allowed {
			out.Changes = append(out.Changes, api.FromChange(cr, nil))
		}
	}
	c.JSON(http.StatusOK, out)
}

// getChange answers GET …/changes/{id}: the change request, its thread,
// and a dry run of its changeset against the current head (the diff, the
// validation, the blast radius) — or, once the head moved, the conflict.
func (s *Server) getChange(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.changeParams(c, kind)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		ctx := c.Request.Context()
		cr, thread, err := s.gov.Get(ctx, ref, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		out := api.FromChange(cr, thread)
		if cr.State == approval.StateOpen {
			cs, err := s.gov.Changeset(ctx, cr)
			if err != nil {
				s.fail(c, err)
				return
			}
			p, err := s.planOf(cr, cs)
			if err != nil {
				s.fail(c, err)
				return
			}
			p.reader = state(c).principal
			d, err := s.dryRun(ctx, p, cr.Rule, false)
			switch {
			case err == nil:
				out.DryRun = &d
			case !errors.Is(err, configsvc.ErrConflict):
				s.fail(c, err)
				return
			}
		}
		c.JSON(http.StatusOK, out)
	}
}

// reviewChange answers POST …/changes/{id}/approve and …/decline.
func (s *Server) reviewChange(kind configsvc.Kind, verdict string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.changeParams(c, kind)
		if !ok || !s.authorizeRead(c, ref) { // the governance decides who of the readers may review
			return
		}
		var req api.ReviewRequest
		if err := decodeOptionalJSON(c, &req); err != nil {
			s.fail(c, err)
			return
		}
		st := state(c)
		cr, err := s.gov.Review(c.Request.Context(), ref, id, st.principal, verdict, req.Comment)
		if err != nil {
			s.fail(c, s.notOpenErr(c, ref, id, governanceErr(c, err)))
			return
		}
		c.JSON(http.StatusOK, api.FromChange(cr, nil))
	}
}

// applyChange answers POST …/changes/{id}/apply: publishes an approved
// change request on its base (409 once the head moved: rebase it). The
// author or an eligible reviewer applies it; an admin may apply it without
// the approvals with X-Sluice-Emergency.
func (s *Server) applyChange(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.changeParams(c, kind)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		reason, ok := s.emergency(c)
		if !ok {
			return
		}
		ctx := c.Request.Context()
		st := state(c)
		cr, _, err := s.gov.Get(ctx, ref, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		if ok, why := s.mayApply(st.principal, cr); !ok && reason == "" {
			s.fail(c, governanceErr(c, &approval.Refusal{Reason: why}))
			return
		}
		if err := approval.Ready(cr); err != nil && (reason == "" || cr.State != approval.StateOpen) {
			s.fail(c, notReadyErr(ref, cr, err))
			return
		}
		cs, err := s.gov.Changeset(ctx, cr)
		if err != nil {
			s.fail(c, err)
			return
		}
		cs.Message = appliedMessage(cr)
		apply, err := s.applierFor(cr)
		if err != nil {
			s.fail(c, err)
			return
		}
		out, err := apply(ctx, cr, cs)
		if errors.Is(err, configsvc.ErrConflict) && !errors.As(err, new(*configsvc.GrayConflictError)) && !errors.As(err, new(*configsvc.NotReadyError)) {
			err = userErr(err, "%s changed since revision %d, the base of change request %s; its author rebases it onto the head "+
				"(sluice change rebase %s %s, or POST …/changes/%s/rebase), then it can be applied", refWords(ref), cr.Base, id, ref.Name, id, id)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		if reason != "" && approval.Ready(cr) != nil {
			s.recordEmergency(c, ref, cr.Operation, out.revNumber(), reason, cr.Rule, cr.ID)
		} else {
			reason = ""
		}
		if _, err := s.gov.MarkApplied(ctx, cr, out.revNumber(), st.principal, reason); err != nil {
			s.cfg.Logger.Error("change request applied but not marked applied", "request_id", st.id, "change", id, "revision", out.revNumber(), "err", err)
		}
		out.target = "" // the audit target stays the change request
		s.answer(c, ref, out, http.StatusCreated)
	}
}

// appliedMessage is the revision message of an applied change request: its
// message and who approved it, within configsvc.MaxMessageLen.
func appliedMessage(cr approval.ChangeRequest) string {
	trailer := fmt.Sprintf("\n\nchange request %s (%d approval(s))", cr.ID, cr.Approvals)
	if len(cr.Message)+len(trailer) > configsvc.MaxMessageLen {
		return cr.Message
	}
	return cr.Message + trailer
}

// rebaseChange answers POST …/changes/{id}/rebase: its author re-submits
// it on the current head, with the same or new changes, keeping the thread.
func (s *Server) rebaseChange(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.changeParams(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req api.RebaseRequest
		if err := decodeOptionalJSON(c, &req); err != nil {
			s.fail(c, err)
			return
		}
		ctx := c.Request.Context()
		cr, _, err := s.gov.Get(ctx, ref, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		cs, err := s.gov.Changeset(ctx, cr)
		if err != nil {
			s.fail(c, err)
			return
		}
		if len(req.Changes) > 0 {
			if cr.Operation == approval.OpGrayPromote {
				s.fail(c, &configsvc.FieldError{Field: "changes", Msg: "a promote publishes the gray's changes; rebase it without changes"})
				return
			}
			if cs.Changes, err = domainChanges(req.Changes); err != nil {
				s.fail(c, err)
				return
			}
		}
		if req.Message != "" {
			cs.Message = req.Message
		}
		if err := checkMessage(cs.Message); err != nil {
			s.fail(c, err)
			return
		}
		h, err := s.cfg.Store.Head(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		cs.Base = h.Revision
		if cr.Operation == approval.OpGrayPromote {
			// What a promote publishes depends on the head: computed again.
			if cs, err = s.promoteChangesetOf(ctx, cr, h, cs.Message); err != nil {
				s.fail(c, err)
				return
			}
		}
		if err := s.validating().Check(ctx, ref, cs); err != nil {
			s.fail(c, err)
			return
		}
		p, err := s.planOf(cr, cs)
		if err != nil {
			s.fail(c, err)
			return
		}
		if p.check != nil {
			if err := p.check(ctx, h, true); err != nil {
				s.fail(c, err)
				return
			}
		}
		rule, _, err := s.gov.RuleFor(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		cr, err = s.gov.Rebase(ctx, ref, id, state(c).principal, cs, rule)
		if err != nil {
			s.fail(c, s.notOpenErr(c, ref, id, governanceErr(c, err)))
			return
		}
		c.JSON(http.StatusOK, api.FromChange(cr, nil))
	}
}

// governanceErr turns a governance refusal into the 403 it is, answered
// with its reason and recorded as refused in the audit log.
func governanceErr(c *gin.Context, err error) error {
	var r *approval.Refusal
	if errors.As(err, &r) {
		st := state(c)
		st.authorized = false
		st.reason = r.Reason
		return userErr(fmt.Errorf("%s: %w", r.Reason, api.ErrForbidden), "%s", r.Reason)
	}
	return err
}

// notOpenErr words for users the conflict of acting on change request id
// of ref once it is no longer open (approval.ErrNotOpen), reading its
// state (one store read, on the error path only). Other errors pass
// through.
func (s *Server) notOpenErr(c *gin.Context, ref configsvc.Ref, id string, err error) error {
	if !errors.Is(err, approval.ErrNotOpen) {
		return err
	}
	ctx, cancel := messageCtx(c)
	defer cancel()
	st := "no longer open"
	if cr, _, gerr := s.gov.Get(ctx, ref, id); gerr == nil {
		st = cr.State
	}
	return userErr(err, "change request %s of %s is %s; only an open change request is reviewed, rebased or applied", id, refWords(ref), st)
}

// notReadyErr words for users why change request cr of ref cannot be
// applied yet (err from approval.Ready): it is not open, a decline blocks
// it, or it lacks approvals.
func notReadyErr(ref configsvc.Ref, cr approval.ChangeRequest, err error) error {
	policies := strings.Join(cr.Rule.Policies, ", ")
	switch {
	case cr.State != approval.StateOpen:
		return userErr(err, "change request %s of %s is %s; only an open change request is applied", cr.ID, refWords(ref), cr.State)
	case cr.Rule.DeclineBlocks && cr.Declines > 0:
		return userErr(err, "change request %s of %s is declined (%d standing decline(s)) and policy %s lets a decline block it; "+
			"it is applied once its decliners approve it, or its author rebases it", cr.ID, refWords(ref), cr.Declines, policies)
	case cr.Approvals < cr.Rule.Approvals:
		return userErr(err, "change request %s of %s has %d of the %d approvals policy %s requires; an eligible reviewer approves it "+
			"(sluice change approve %s %s)", cr.ID, refWords(ref), cr.Approvals, cr.Rule.Approvals, policies, ref.Name, cr.ID)
	}
	return err
}

// decodeOptionalJSON decodes a JSON body into v; an empty body leaves v
// as it is.
func decodeOptionalJSON(c *gin.Context, v any) error {
	if c.Request.ContentLength == 0 {
		return nil
	}
	return decodeJSON(c, MaxPublishBody, v)
}

// domainChanges converts the changes of a request body.
func domainChanges(in []api.Change) ([]configsvc.Change, error) {
	out := make([]configsvc.Change, len(in))
	for i, ch := range in {
		if ch.Delete == (ch.Content != nil) {
			return nil, &configsvc.FieldError{Field: fmt.Sprintf("changes[%d]", i), Value: ch.File, Msg: `must have either "content" or "delete": true`}
		}
		out[i] = configsvc.Change{File: ch.File, Delete: ch.Delete}
		if ch.Content != nil {
			out[i].Content = []byte(*ch.Content)
		}
	}
	return out, nil
}

// pollNotice is the "change" part of a revision stream opened with
// ?changes=true: at every credential re-check it reads the newest change
// notice of ref and sends it as a "change" event when it is new.
func (s *Server) pollNotice(ref configsvc.Ref) func(ctx context.Context, w *sseWriter) error {
	last := ""
	first := true
	return func(ctx context.Context, w *sseWriter) error {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
		n, err := s.gov.Notice(rctx, ref)
		if isNotFound(err) {
			first = false
			return nil
		}
		if err != nil {
			return nil // transient: the next tick tries again
		}
		if first { // what happened before the stream opened is not news
			first, last = false, n.Seq
			return nil
		}
		if n.Seq == last {
			return nil
		}
		last = n.Seq
		return w.event("", api.EventChange, n)
	}
}
