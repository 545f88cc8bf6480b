package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Gray releases (issue 13, docs/gray.md). Reading a gray takes read access
// to its service or group; creating, changing, promoting and abandoning one
// and starting its rollout take publish access (editors of the service).
// Every change is audited (the endpoint's action). Each write handler
// decodes and checks its input, builds the change, then applies it, so
// that a dry run can stop before the last step.

// RolloutKicker is told when a rollout was started through the API, so
// that a driver running in this process picks it up at once instead of at
// its next scan. rollout.Driver implements it.
type RolloutKicker interface {
	Kick()
}

// grayUpdateAttempts bounds how often a gray change is retried when the
// gray's version moved between the read and the write (a rollout driver
// or another editor changed it).
const grayUpdateAttempts = 3

// grayParams returns the ref and the validated gray id of the path, and
// records the audit target "KIND/NAME/grays/ID".
func (s *Server) grayParams(c *gin.Context, kind configsvc.Kind) (configsvc.Ref, string, bool) {
	ref, ok := s.refParam(c, kind)
	if !ok {
		return ref, "", false
	}
	id, err := param(c, "gray")
	if err == nil {
		err = configsvc.ValidateGrayID(id)
	}
	if err != nil {
		s.fail(c, err)
		return ref, "", false
	}
	state(c).target = ref.String() + "/grays/" + id
	return ref, id, true
}

// listGrays answers GET …/grays.
func (s *Server) listGrays(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		grays, err := s.cfg.Store.Grays(c.Request.Context(), ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		for i := range grays {
			grays[i].Ref = ref
		}
		c.JSON(http.StatusOK, api.GrayList{Grays: api.FromGrays(grays)})
	}
}

// getGray answers GET …/grays/{id}: the gray with content, and its cohort
// over the live instances while it is active.
func (s *Server) getGray(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.grayParams(c, kind)
		if !ok || !s.authorizeRead(c, ref) {
			return
		}
		ctx := c.Request.Context()
		g, err := s.cfg.Store.Gray(ctx, ref, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		g.Ref = ref
		view := api.GrayView{Gray: api.FromGray(g, true), Cohort: []api.CohortMember{}}
		if g.State == configsvc.GrayActive {
			cohort, err := s.cohort(ctx, &g)
			if err != nil {
				s.fail(c, err)
				return
			}
			view.Cohort = cohort
		}
		c.JSON(http.StatusOK, view)
	}
}

// cohort returns the cohort of g over the live instances of its service,
// or of the services that link its group.
func (s *Server) cohort(ctx context.Context, g *configsvc.Gray) ([]configsvc.CohortMember, error) {
	insts, err := configsvc.LiveInstances(ctx, s.cfg.Store, g.Ref)
	if err != nil {
		return nil, err
	}
	return g.Cohort(insts), nil
}

// createGray answers POST …/grays: 201 with the gray, on base_revision or
// main's head.
func (s *Server) createGray(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req api.GrayRequest
		if err := decodeJSON(c, MaxPublishBody, &req); err != nil {
			s.fail(c, err)
			return
		}
		g, err := grayFromRequest(req)
		if err == nil {
			err = checkMessage(g.Message)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		g.Author = state(c).principal.Name
		ctx := c.Request.Context()
		if req.BaseRevision != nil {
			g.BaseRevision = *req.BaseRevision
		} else {
			h, err := s.cfg.Store.Head(ctx, ref)
			if err != nil {
				s.fail(c, err)
				return
			}
			g.BaseRevision = h.Revision
		}
		created, err := s.cfg.Store.CreateGray(ctx, ref, g)
		if err != nil {
			s.fail(c, err)
			return
		}
		created.Ref = ref
		state(c).target = ref.String() + "/grays/" + created.ID
		c.JSON(http.StatusCreated, api.FromGray(created, false))
	}
}

// grayFromRequest returns the gray a create request describes (without
// author and base).
func grayFromRequest(req api.GrayRequest) (configsvc.Gray, error) {
	g := configsvc.Gray{Name: req.Name, Message: req.Message, Selector: req.Selector, Changes: make([]configsvc.Change, len(req.Changes))}
	for i, ch := range req.Changes {
		if ch.Delete == (ch.Content != nil) {
			return g, &configsvc.FieldError{Field: fmt.Sprintf("changes[%d]", i), Value: ch.File, Msg: `must have either "content" or "delete": true`}
		}
		g.Changes[i] = configsvc.Change{File: ch.File, Delete: ch.Delete}
		if ch.Content != nil {
			g.Changes[i].Content = []byte(*ch.Content)
		}
	}
	return g, nil
}

// updateGray applies fn to the active gray id of ref at its current
// version, reading it again when the version moved meanwhile.
func (s *Server) updateGray(ctx context.Context, ref configsvc.Ref, id string, fn func(*configsvc.Gray) error) (configsvc.Gray, error) {
	for attempt := 1; ; attempt++ {
		g, err := s.cfg.Store.Gray(ctx, ref, id)
		if err != nil {
			return g, err
		}
		out, err := s.cfg.Store.UpdateGray(ctx, ref, id, g.Version, fn)
		if err == nil || !errors.Is(err, configsvc.ErrConflict) || attempt == grayUpdateAttempts || g.State != configsvc.GrayActive {
			return out, err
		}
		if cur, rerr := s.cfg.Store.Gray(ctx, ref, id); rerr != nil || cur.Version == g.Version || cur.State != configsvc.GrayActive {
			return out, err // not a version race: the refusal stands
		}
	}
}

// errRolloutDrives refuses a hand change of the selector of a gray whose
// rollout is running: the driver owns its percent until it ends.
func errRolloutDrives(g *configsvc.Gray) error {
	return userErr(configsvc.ErrConflict, "a rollout drives the selector of gray %s (step %d of %d, %v %%, %s); abandon the gray or wait for the rollout to end",
		g.ID, g.Rollout.State.Step+1, len(g.Rollout.Steps), g.Rollout.State.Percent, g.Rollout.State.State)
}

// putGraySelector answers PUT …/grays/{id}/selector: 200 with the gray.
func (s *Server) putGraySelector(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.grayParams(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req api.SelectorRequest
		if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
			s.fail(c, err)
			return
		}
		if err := req.Selector.Validate(); err != nil {
			s.fail(c, err)
			return
		}
		g, err := s.updateGray(c.Request.Context(), ref, id, func(g *configsvc.Gray) error {
			if g.Rollout.Active() {
				return errRolloutDrives(g)
			}
			g.Selector = req.Selector
			return nil
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		g.Ref = ref
		c.JSON(http.StatusOK, api.FromGray(g, false))
	}
}

// promoteGray answers POST …/grays/{id}/promote: 201 with the revision,
// or 409 not_ready while cohort instances rejected the gray or have not
// applied it (unless force).
func (s *Server) promoteGray(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.grayParams(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req api.PromoteRequest
		if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
			s.fail(c, err)
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
		ctx := c.Request.Context()
		g, err := s.cfg.Store.Gray(ctx, ref, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		g.Ref = ref
		if g.State != configsvc.GrayActive {
			s.fail(c, fmt.Errorf("gray %s is %s: %w", id, g.State, configsvc.ErrConflict)) // worded by grayConflictMessage
			return
		}
		if !req.Force {
			cohort, err := s.cohort(ctx, &g)
			if err == nil {
				err = configsvc.CheckReady(g.ID, cohort)
			}
			if err != nil {
				s.fail(c, err)
				return
			}
		}
		who := state(c).principal.Name
		reason := "promoted by " + who
		if req.Force {
			reason += " (forced)"
		}
		ended, rev, err := s.cfg.Store.EndGray(ctx, ref, id, g.Version, configsvc.GrayEnd{State: configsvc.GrayPromoted, Reason: reason,
			Promote: &configsvc.Changeset{Author: who, Message: req.Message}})
		if err != nil {
			s.fail(c, err)
			return
		}
		ended.Ref = ref
		state(c).revision = rev.Number
		s.index.published(ref, *rev)
		s.metrics.publishes.WithLabelValues(ref.Kind.String()).Inc()
		setRevisionHeaders(c, rev.Number)
		c.JSON(http.StatusCreated, api.PromoteResult{Revision: rev.Number, Gray: api.FromGray(ended, false)})
	}
}

// abandonGray answers DELETE …/grays/{id}: 200 with the gray, abandoned.
func (s *Server) abandonGray(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.grayParams(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		ctx := c.Request.Context()
		var (
			ended configsvc.Gray
			err   error
		)
		for attempt := 1; attempt <= grayUpdateAttempts; attempt++ {
			var g configsvc.Gray
			if g, err = s.cfg.Store.Gray(ctx, ref, id); err != nil {
				break
			}
			ended, _, err = s.cfg.Store.EndGray(ctx, ref, id, g.Version, configsvc.GrayEnd{State: configsvc.GrayAbandoned,
				Reason: "abandoned by " + state(c).principal.Name})
			if !errors.Is(err, configsvc.ErrConflict) || g.State != configsvc.GrayActive {
				break
			}
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		ended.Ref = ref
		c.JSON(http.StatusOK, api.FromGray(ended, false))
	}
}

// startRollout answers POST …/grays/{id}/rollout: 202 with the gray, its
// percent set to the first step's; the rollout driver does the rest.
func (s *Server) startRollout(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, id, ok := s.grayParams(c, kind)
		if !ok || !s.authorize(c, access.ActionPublish, access.Target{Ref: ref}) {
			return
		}
		var req api.RolloutRequest
		if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
			s.fail(c, err)
			return
		}
		spec := req.Spec().WithDefaults()
		if err := spec.Validate(); err != nil {
			s.fail(c, err)
			return
		}
		now, who := s.cfg.Now(), state(c).principal.Name
		g, err := s.updateGray(c.Request.Context(), ref, id, func(g *configsvc.Gray) error {
			return configsvc.StartRollout(g, spec, now, "started by "+who)
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		if s.cfg.Rollouts != nil {
			s.cfg.Rollouts.Kick()
		}
		g.Ref = ref
		c.JSON(http.StatusAccepted, api.FromGray(g, false))
	}
}
