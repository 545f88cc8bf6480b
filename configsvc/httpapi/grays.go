package httpapi

import (
	"context"
	"encoding/json"
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
// over the live instances while it is active (unless ?cohort=false).
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
		if g.State == configsvc.GrayActive && c.Query(api.CohortParam) != "false" {
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
// main's head, through the publishing plan (submit): ?dry_run=true
// answers the validation of main + the gray, its diff against main and
// its cohort over the live instances; under an approval policy it is a
// change request (202), the gray created when it is applied. The gray's
// id is drawn here (or given), before any of that, so that a percent
// selector's cohort is the same in the dry run, the change request and
// the gray.
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
			err = g.Validate()
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		ctx := c.Request.Context()
		if g.ID == "" {
			g.ID = configsvc.NewGrayID()
		} else if err := configsvc.ValidateGrayID(g.ID); err != nil {
			s.fail(c, &configsvc.FieldError{Field: "id", Value: g.ID, Msg: err.(*configsvc.FieldError).Msg})
			return
		} else if _, err := s.cfg.Store.Gray(ctx, ref, g.ID); err == nil {
			s.failf(c, configsvc.ErrConflict, "%s has a gray %s already (gray ids are not reused); leave id out to draw a new one", refWords(ref), g.ID)
			return
		}
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
		s.submit(c, s.grayCreatePlan(ref, g))
	}
}

// grayParams are a gray operation's parameters beyond its changeset, kept
// with its change request (approval.ChangeRequest.Params): the gray's id,
// and the name and selector of a creation or the force of a promote.
type grayParams struct {
	Gray     string              `json:"gray"`
	Name     string              `json:"name,omitempty"`
	Selector *configsvc.Selector `json:"selector,omitempty"`
	Force    bool                `json:"force,omitempty"`
}

// grayPlanOf returns the plan of a stored gray change request (planOf):
// its gray from cr.Params, its changes from cs.
func (s *Server) grayPlanOf(cr approval.ChangeRequest, cs configsvc.Changeset) (plan, error) {
	var gp grayParams
	if err := json.Unmarshal(cr.Params, &gp); err != nil || configsvc.ValidateGrayID(gp.Gray) != nil ||
		cr.Operation == approval.OpGrayCreate && gp.Selector == nil {
		return plan{}, fmt.Errorf("change request %s: its %s parameters do not decode (%v): %s", cr.ID, cr.Operation, err, cr.Params)
	}
	var p plan
	if cr.Operation == approval.OpGrayCreate {
		p = s.grayCreatePlan(cr.Ref(), configsvc.Gray{ID: gp.Gray, Name: gp.Name, Message: cs.Message, Author: cs.Author,
			BaseRevision: cs.Base, Changes: cs.Changes, Selector: *gp.Selector})
	} else {
		p = s.grayPromotePlan(cr.Ref(), gp.Gray, gp.Force, true, cs)
	}
	p.stored = true
	return p, nil
}

// grayCreatePlan returns the plan that creates g (its id drawn) on ref:
// its changeset is the gray's on its base; it checks what CreateGray
// would refuse (NewGray on the head), reaches the cohort, and writes
// through Store.CreateGray (a ValidatingStore: content validated as main
// + the gray), answering 201 with the gray.
func (s *Server) grayCreatePlan(ref configsvc.Ref, g configsvc.Gray) plan {
	params, _ := json.Marshal(grayParams{Gray: g.ID, Name: g.Name, Selector: &g.Selector}) // plain data: always encodes
	return plan{
		ref: ref, op: approval.OpGrayCreate, cs: g.Changeset(), status: http.StatusCreated, gray: g.ID, params: params,
		check: func(_ context.Context, head configsvc.Head, _ bool) error {
			_, _, err := configsvc.NewGray(ref, g, head, s.cfg.Now())
			return err
		},
		targets: func(ctx context.Context, reader *access.Principal) ([]api.DryRunTarget, error) {
			return s.blastRadius(ctx, ref, reader, func(in configsvc.Instance) bool { return g.Selector.Matches(g.ID, in) })
		},
		write: func(ctx context.Context, cs configsvc.Changeset) (written, error) {
			ng := g
			ng.Author, ng.Message, ng.BaseRevision, ng.Changes = cs.Author, cs.Message, cs.Base, cs.Changes
			created, err := s.cfg.Store.CreateGray(ctx, ref, ng)
			if err != nil {
				return written{}, err
			}
			created.Ref = ref
			return written{body: api.FromGray(created, false), target: ref.String() + "/grays/" + created.ID}, nil
		},
	}
}

// grayPromotePlan returns the plan that promotes gray id of ref with cs,
// the changeset the promote publishes on main (PromoteChangeset on cs.Base):
// it checks that the gray is active and, unless force, ready; it reaches
// every live instance (main moves); its write promotes the gray's current
// version, answering 201 {revision, gray}. A strict plan (a change
// request's) publishes exactly on cs.Base (ErrConflict once main moved:
// rebase it); a direct one follows main as EndGray through the
// ValidatingStore does.
func (s *Server) grayPromotePlan(ref configsvc.Ref, id string, force, strict bool, cs configsvc.Changeset) plan {
	params, _ := json.Marshal(grayParams{Gray: id, Force: force}) // plain data: always encodes
	active := func(ctx context.Context) (configsvc.Gray, error) {
		g, err := s.cfg.Store.Gray(ctx, ref, id)
		if err != nil {
			return g, err
		}
		g.Ref = ref
		if g.State != configsvc.GrayActive {
			return g, fmt.Errorf("gray %s is %s: %w", id, g.State, configsvc.ErrConflict) // worded by grayConflictMessage
		}
		return g, nil
	}
	return plan{
		ref: ref, op: approval.OpGrayPromote, cs: cs, status: http.StatusCreated, gray: id, params: params,
		check: func(ctx context.Context, _ configsvc.Head, request bool) error {
			g, err := active(ctx)
			if err != nil || force || request {
				return err
			}
			return s.ready(ctx, &g)
		},
		write: func(ctx context.Context, cs configsvc.Changeset) (written, error) {
			g, err := active(ctx)
			if err != nil {
				return written{}, err
			}
			if !force {
				if err := s.ready(ctx, &g); err != nil {
					return written{}, err
				}
			}
			reason := "promoted by " + cs.Author
			if force {
				reason += " (forced)"
			}
			end := configsvc.GrayEnd{State: configsvc.GrayPromoted, Reason: reason,
				Promote: &configsvc.Changeset{Base: cs.Base, Author: cs.Author, Message: cs.Message}}
			var (
				ended configsvc.Gray
				rev   *configsvc.Revision
			)
			if strict {
				v := s.validating()
				vcs, err := v.CheckPromote(ctx, ref, id, g.Version, end)
				if err != nil {
					return written{}, err
				}
				if vcs.Base != cs.Base {
					return written{}, fmt.Errorf("%s: head is %d, not %d: %w", ref, vcs.Base, cs.Base, configsvc.ErrConflict)
				}
				end.Promote = &vcs
				ended, rev, err = v.Unwrap().EndGray(ctx, ref, id, g.Version, end)
			} else {
				ended, rev, err = s.cfg.Store.EndGray(ctx, ref, id, g.Version, end)
			}
			if err != nil {
				return written{}, err
			}
			ended.Ref = ref
			return written{rev: rev, body: api.PromoteResult{Revision: rev.Number, Gray: api.FromGray(ended, false)}}, nil
		},
	}
}

// ready refuses (a *configsvc.NotReadyError) a promote of g while an
// instance of its cohort rejected it or has not applied it.
func (s *Server) ready(ctx context.Context, g *configsvc.Gray) error {
	cohort, err := s.cohort(ctx, g)
	if err != nil {
		return err
	}
	return configsvc.CheckReady(g.ID, cohort)
}

// promoteChangesetOf returns the changeset the promote change request cr
// publishes on head now, with message: a promote's changes depend on
// main (a deletion of a file main deleted meanwhile is left out).
func (s *Server) promoteChangesetOf(ctx context.Context, cr approval.ChangeRequest, head configsvc.Head, message string) (configsvc.Changeset, error) {
	var gp grayParams
	if err := json.Unmarshal(cr.Params, &gp); err != nil {
		return configsvc.Changeset{}, fmt.Errorf("change request %s: its %s parameters do not decode: %v", cr.ID, cr.Operation, err)
	}
	g, err := s.cfg.Store.Gray(ctx, cr.Ref(), gp.Gray)
	if err != nil {
		return configsvc.Changeset{}, err
	}
	return configsvc.PromoteChangeset(&g, head, configsvc.GrayEnd{Promote: &configsvc.Changeset{Author: cr.Author, Message: message}})
}

// grayFromRequest returns the gray a create request describes (without
// author and base).
func grayFromRequest(req api.GrayRequest) (configsvc.Gray, error) {
	g := configsvc.Gray{ID: req.ID, Name: req.Name, Message: req.Message, Selector: req.Selector, Changes: make([]configsvc.Change, len(req.Changes))}
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
// applied it (unless force), through the publishing plan (submit):
// ?dry_run=true answers the validation and diff of the revision main
// would get and the instances it reaches; under an approval policy it is
// a change request (202), readiness checked when it is applied.
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
		ctx := c.Request.Context()
		g, err := s.cfg.Store.Gray(ctx, ref, id)
		if err != nil {
			s.fail(c, err)
			return
		}
		if g.State != configsvc.GrayActive {
			s.fail(c, fmt.Errorf("gray %s is %s: %w", id, g.State, configsvc.ErrConflict)) // worded by grayConflictMessage
			return
		}
		h, err := s.cfg.Store.Head(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		cs, err := configsvc.PromoteChangeset(&g, h, configsvc.GrayEnd{Promote: &configsvc.Changeset{Message: req.Message}})
		if err != nil {
			s.fail(c, err)
			return
		}
		s.submit(c, s.grayPromotePlan(ref, id, req.Force, false, cs))
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
		reason, ok := s.emergency(c)
		if !ok {
			return
		}
		ctx := c.Request.Context()
		rule, governed, err := s.gov.RuleFor(ctx, ref)
		if err != nil {
			s.fail(c, err)
			return
		}
		if governed && reason == "" {
			// The last step promotes on its own: no one would approve it.
			s.fail(c, governanceErr(c, &approval.Refusal{Reason: fmt.Sprintf("approval policy %s applies to %s: a rollout promotes the gray "+
				"at its last step without an approval; promote it by hand (a change request), or an admin starts the rollout with %s",
				strings.Join(rule.Policies, ", "), refWords(ref), api.EmergencyHeader)}))
			return
		}
		now, who := s.cfg.Now(), state(c).principal.Name
		g, err := s.updateGray(ctx, ref, id, func(g *configsvc.Gray) error {
			return configsvc.StartRollout(g, spec, now, "started by "+who)
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		if governed {
			s.recordEmergency(c, ref, "gray.rollout", 0, reason, rule, "")
		}
		if s.cfg.Rollouts != nil {
			s.cfg.Rollouts.Kick()
		}
		g.Ref = ref
		c.JSON(http.StatusAccepted, api.FromGray(g, false))
	}
}
