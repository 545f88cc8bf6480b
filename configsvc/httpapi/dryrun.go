package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
)

// RoutesDiff returns the routes a change of sluice-system/routes.yaml from
// old to new adds, removes or modifies (old is empty when the file does
// not exist yet). The admin server never parses routes itself (it does not
// link the proxy): `sluice server` passes one built on router/routesfile.
type RoutesDiff func(old, new []byte) ([]api.RouteChange, error)

// plan is one publish a request asks for, whichever route it came
// through: every publishing route builds one and hands it to submit, which
// answers a dry run, turns it into a change request under an approval
// policy, or publishes it. An operation that is not a plain publish of cs
// on ref (a gray release: its own line, some instances only) sets publish,
// params and targets, and applierFor learns how to apply its change
// requests.
type plan struct {
	ref configsvc.Ref
	op  string // approval.OpPublish, approval.OpRollback
	cs  configsvc.Changeset
	// conditional: cs.Base is the head an If-Match held for; a lost race
	// is then a 412, not a 409.
	conditional bool
	// status is the answer of a direct publish (200 for a file PUT, 201
	// for a new revision).
	status int
	// targets returns who the change reaches; nil: every live instance of
	// the service, or of every service linking the group.
	targets func(ctx context.Context) ([]api.DryRunTarget, error)
	// publish carries the plan out; nil: Store.Publish of cs on ref.
	publish func(ctx context.Context, cs configsvc.Changeset) (configsvc.Revision, error)
	// params are the operation's parameters beyond cs, kept with a change
	// request (approval.ChangeRequest.Params) for its applier.
	params json.RawMessage
	// reader is who reads the dry run: instances of services it may not
	// list are shown without their address, labels, owner or error.
	reader *access.Principal
}

// planOf returns the plan a stored change request stands for, for its
// dry run against the current head. An operation with parameters (a gray
// release's selector in cr.Params) sets its targets here.
func planOf(cr approval.ChangeRequest, cs configsvc.Changeset) plan {
	return plan{ref: cr.Ref(), op: cr.Operation, cs: cs, params: cr.Params}
}

// applier publishes the changeset of an approved change request.
type applier func(ctx context.Context, cr approval.ChangeRequest, cs configsvc.Changeset) (configsvc.Revision, error)

// applierFor returns how a change request of cr's operation is applied:
// a publish and a rollback publish their changeset on the main line. An
// operation this server does not know (a change request stored by a newer
// server) is a conflict.
func (s *Server) applierFor(cr approval.ChangeRequest) (applier, error) {
	switch cr.Operation {
	case approval.OpPublish, approval.OpRollback:
		return func(ctx context.Context, cr approval.ChangeRequest, cs configsvc.Changeset) (configsvc.Revision, error) {
			return s.cfg.Store.Publish(ctx, cr.Ref(), cs)
		}, nil
	}
	return nil, fmt.Errorf("change request %s: operation %q cannot be applied by this server: %w", cr.ID, cr.Operation, configsvc.ErrConflict)
}

// dryRunRequested reads ?dry_run=; ok is false when the request was
// answered (a malformed value).
func (s *Server) dryRunRequested(c *gin.Context) (dry, ok bool) {
	raw, given := c.GetQuery(api.DryRunParam)
	if !given {
		return false, true
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		s.fail(c, &configsvc.FieldError{Field: api.DryRunParam, Value: raw, Msg: "must be true or false"})
		return false, false
	}
	return v, true
}

// emergency reads X-Sluice-Emergency: the reason of an admin's emergency
// change. ok is false when the request was answered: a reason from someone
// who is not an admin (403), or a malformed one (400).
func (s *Server) emergency(c *gin.Context) (reason string, ok bool) {
	vals := c.Request.Header.Values(api.EmergencyHeader)
	if len(vals) == 0 {
		return "", true
	}
	reason = vals[0]
	if err := approval.CheckReason(reason); err != nil {
		s.fail(c, err)
		return "", false
	}
	if !state(c).principal.IsAdmin() {
		s.failf(c, api.ErrForbidden, "only admins may make an emergency change (%s)", api.EmergencyHeader)
		return "", false
	}
	return reason, true
}

// submit carries out p: with ?dry_run=true it answers what the publish
// would do; where an approval policy applies it stores a change request
// and answers 202 with it, unless an admin gave an emergency reason; else
// it publishes. The changeset is validated once, by the store's Publish or
// Check (Config.Store is a configsvc.ValidatingStore).
func (s *Server) submit(c *gin.Context, p plan) {
	ctx := c.Request.Context()
	st := state(c)
	p.cs.Author = st.principal.Name
	p.reader = st.principal
	if err := checkMessage(p.cs.Message); err != nil {
		s.fail(c, err)
		return
	}
	dry, ok := s.dryRunRequested(c)
	if !ok {
		return
	}
	reason, ok := s.emergency(c)
	if !ok {
		return
	}
	rule, governed, err := s.gov.RuleFor(ctx, p.ref)
	if err != nil {
		s.fail(c, err)
		return
	}
	request := governed && reason == ""
	if dry {
		st.action = "" // a dry run changes nothing: no audit entry
		d, err := s.dryRun(ctx, p, rule, request)
		if err != nil {
			s.fail(c, staleIfMatch(err, p.conditional))
			return
		}
		c.JSON(http.StatusOK, d)
		return
	}
	if request {
		s.requestChange(c, p, rule)
		return
	}
	publish := p.publish
	if publish == nil {
		publish = func(ctx context.Context, cs configsvc.Changeset) (configsvc.Revision, error) {
			return s.cfg.Store.Publish(ctx, p.ref, cs)
		}
	}
	rev, err := publish(ctx, p.cs)
	if err != nil {
		s.fail(c, staleIfMatch(err, p.conditional))
		return
	}
	if governed {
		s.recordEmergency(c, p.ref, p.op, rev.Number, reason, rule, "")
	}
	s.published(c, p.ref, rev, p.status)
}

// requestChange stores p as a change request under rule, after the checks
// a publish makes (the base is the head, the content validates), and
// answers 202 with it and its dry run: the diff and who it would hit.
func (s *Server) requestChange(c *gin.Context, p plan, rule approval.Rule) {
	ctx := c.Request.Context()
	st := state(c)
	h, err := s.cfg.Store.Head(ctx, p.ref)
	if err != nil {
		s.fail(c, err)
		return
	}
	if h.Revision != p.cs.Base {
		s.fail(c, staleIfMatch(fmt.Errorf("%s: head is %d, not %d: %w", p.ref, h.Revision, p.cs.Base, configsvc.ErrConflict), p.conditional))
		return
	}
	if err := s.validating().Check(ctx, p.ref, p.cs); err != nil {
		s.fail(c, err)
		return
	}
	cr, err := s.gov.Submit(ctx, approval.Submission{Ref: p.ref, Operation: p.op, Changeset: p.cs, Rule: rule, Author: st.principal, Params: p.params})
	if err != nil {
		s.fail(c, err)
		return
	}
	st.action, st.target = "change.submit", p.ref.String()+"/changes/"+cr.ID
	out := api.FromChange(cr, nil)
	d := newDryRun(p, h.Revision, rule, true)
	if err := s.impact(ctx, p, &d); err != nil { // the change request is stored: answer it without
		s.cfg.Logger.Warn("change request submitted; its dry run failed", "request_id", st.id, "change", cr.ID, "err", err)
	} else {
		out.DryRun = &d
	}
	c.JSON(http.StatusAccepted, out)
}

// newDryRun returns the dry run of p on head base, valid until a
// validator says otherwise.
func newDryRun(p plan, base int64, rule approval.Rule, request bool) api.DryRun {
	d := api.DryRun{Kind: p.ref.Kind.String(), Name: p.ref.Name, Operation: p.op, BaseRevision: base, Valid: true,
		Violations: []api.Violation{}, Files: []api.FileDiff{}, Targets: []api.DryRunTarget{}, ChangeRequest: request}
	if request {
		d.Policy = &rule
	}
	return d
}

// recordEmergency lists an admin's change past rule for review, and marks
// the request's audit entry as an emergency.
func (s *Server) recordEmergency(c *gin.Context, ref configsvc.Ref, op string, rev int64, reason string, rule approval.Rule, changeID string) {
	st := state(c)
	st.emergency = reason
	_, err := s.gov.RecordEmergency(c.Request.Context(), approval.Emergency{
		Actor: st.principal.Name, ActorID: st.principal.TokenID, Kind: ref.Kind.String(), Name: ref.Name, Operation: op,
		Revision: rev, Reason: reason, Policies: rule.Policies, ChangeID: changeID,
	})
	if err != nil { // the change is published: say so, and keep the audit entry
		s.cfg.Logger.Error("emergency change not listed for review", "request_id", st.id, "target", ref.String(), "revision", rev, "err", err)
	}
}

// validating returns the store as the ValidatingStore withDefaults made it.
func (s *Server) validating() *configsvc.ValidatingStore {
	return s.cfg.Store.(*configsvc.ValidatingStore)
}

// dryRun answers what publishing p would do. A stale base is the
// publish's own conflict; content the validators refuse is reported in
// the answer, not as an error.
func (s *Server) dryRun(ctx context.Context, p plan, rule approval.Rule, request bool) (api.DryRun, error) {
	h, err := s.cfg.Store.Head(ctx, p.ref)
	if err != nil {
		return api.DryRun{}, err
	}
	if h.Revision != p.cs.Base {
		return api.DryRun{}, fmt.Errorf("%s: head is %d, not %d: %w", p.ref, h.Revision, p.cs.Base, configsvc.ErrConflict)
	}
	d := newDryRun(p, h.Revision, rule, request)
	if err := s.validating().Check(ctx, p.ref, p.cs); err != nil {
		var ce *configsvc.ContentError
		if !errors.As(err, &ce) {
			return api.DryRun{}, err
		}
		d.Valid = false
		d.Violations, d.ViolationsOmitted = violationsOf(ce.Err)
	}
	if err := s.impact(ctx, p, &d); err != nil {
		return api.DryRun{}, err
	}
	return d, nil
}

// impact fills in what p would do on the head d was made for: the diff,
// who it reaches, and for sluice-system/routes.yaml (valid content only)
// the routes that change.
func (s *Server) impact(ctx context.Context, p plan, d *api.DryRun) error {
	before, err := s.filesAt(ctx, p.ref, d.BaseRevision)
	if err != nil {
		return err
	}
	after := make(map[string][]byte, len(before)+len(p.cs.Changes))
	for k, v := range before {
		after[k] = v
	}
	for _, ch := range p.cs.Changes {
		if ch.Delete {
			delete(after, ch.File)
		} else {
			after[ch.File] = ch.Content
		}
	}
	if d.Files, err = diffFiles(ctx, before, after, d.BaseRevision, d.BaseRevision+1); err != nil {
		return err
	}
	targets := p.targets
	if targets == nil {
		targets = func(ctx context.Context) ([]api.DryRunTarget, error) { return s.blastRadius(ctx, p.ref, p.reader) }
	}
	if d.Targets, err = targets(ctx); err != nil {
		return err
	}
	d.Instances = 0
	for _, t := range d.Targets {
		d.Instances += len(t.Instances)
	}
	if p.ref == configsvc.Service(configsvc.SystemService) && s.cfg.RoutesDiff != nil {
		if _, touched := changedFile(p.cs, configsvc.RoutesFile); touched && d.Valid {
			if d.Routes, err = s.cfg.RoutesDiff(before[configsvc.RoutesFile], after[configsvc.RoutesFile]); err != nil {
				return err
			}
		}
	}
	return nil
}

func changedFile(cs configsvc.Changeset, name string) (configsvc.Change, bool) {
	for _, c := range cs.Changes {
		if c.File == name {
			return c, true
		}
	}
	return configsvc.Change{}, false
}

// violationsOf lists a validator's refusal as violations: a schema
// refusal's own list, a parse error as one violation with keyword
// "format", a field error (the route schema) as one with keyword "schema".
func violationsOf(err error) ([]api.Violation, int) {
	var se *configsvc.SchemaError
	var pe *configsvc.ParseError
	var fe *configsvc.FieldError
	switch {
	case errors.As(err, &se):
		return append([]api.Violation{}, se.Violations...), se.Omitted
	case errors.As(err, &pe):
		return []api.Violation{{File: pe.File, Line: pe.Line, Column: pe.Column, Keyword: "format", Message: pe.Msg}}, 0
	case errors.As(err, &fe):
		return []api.Violation{{File: fe.File, Line: fe.Line, Pointer: fe.Field, Keyword: "schema", Message: fe.Error()}}, 0
	}
	return []api.Violation{{Keyword: "invalid", Message: err.Error()}}, 0
}

// blastRadius returns who a change of ref reaches: a service, or every
// service linking a group, each with its head and live instances. The
// instances of a service reader may not list (a linking service, for an
// editor of the group only) keep their id, revision and status, not their
// address, labels, owner or error.
func (s *Server) blastRadius(ctx context.Context, ref configsvc.Ref, reader *access.Principal) ([]api.DryRunTarget, error) {
	services := []string{ref.Name}
	if ref.Kind == configsvc.KindGroup {
		var err error
		if services, err = s.cfg.Store.Users(ctx, ref.Name); err != nil {
			return nil, err
		}
	}
	out := []api.DryRunTarget{}
	for _, svc := range services {
		h, err := s.cfg.Store.Head(ctx, configsvc.Service(svc))
		if isNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		insts, err := s.cfg.Store.Instances(ctx, svc)
		if err != nil {
			return nil, err
		}
		if reader != nil && !s.authz.Decide(reader, access.ActionInstances, access.Target{Ref: configsvc.Service(svc)}).Allowed {
			insts = append([]configsvc.Instance(nil), insts...) // the store's slice is not ours to change
			for i := range insts {
				insts[i].Addr, insts[i].Labels, insts[i].Owner, insts[i].Error = "", nil, "", ""
			}
		}
		out = append(out, api.DryRunTarget{Service: svc, Revision: h.Revision, Instances: nonNil(insts)})
	}
	return out, nil
}

// mayApply reports whether p may apply cr: its author, or an eligible
// reviewer.
func (s *Server) mayApply(p *access.Principal, cr approval.ChangeRequest) (bool, string) {
	if p.TokenID == cr.AuthorID {
		return true, ""
	}
	return s.gov.MayApprove(p, cr.Rule, cr.Ref())
}
