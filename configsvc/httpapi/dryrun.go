package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
	"github.com/sluicehq/sluice/configsvc/secrets"
)

// RoutesDiff returns the routes a change of sluice-system/routes.yaml from
// old to new adds, removes or modifies (old is empty when the file does
// not exist yet). The admin server never parses routes itself (it does not
// link the proxy): `sluice server` passes one built on router/routesfile.
type RoutesDiff func(old, new []byte) ([]api.RouteChange, error)

// plan is one publish a request asks for, whichever route it came
// through: every publishing route builds one and hands it to submit, which
// answers a dry run, turns it into a change request under an approval
// policy, or carries it out. An operation that is not a plain publish of
// cs on ref (a gray creation: its own line, some instances only; a gray
// promotion) sets check, targets, write, gray and params (grays.go), and
// planOf and applierFor rebuild it from a stored change request.
type plan struct {
	ref configsvc.Ref
	op  string // approval.OpPublish, OpRollback, OpGrayCreate, OpGrayPromote
	cs  configsvc.Changeset
	// conditional: cs.Base is the head an If-Match held for; a lost race
	// is then a 412, not a 409.
	conditional bool
	// status is the answer of a direct publish (200 for a file PUT, 201
	// for a new revision).
	status int
	// stored: the plan of a stored change request (planOf); its dry run
	// leaves out the checks that wait for its apply (a promote's
	// readiness).
	stored bool
	// gray is the gray a gray operation creates or promotes (DryRun.Gray).
	gray string
	// check makes the operation's own checks beyond the base and the
	// content, on head (which is at cs.Base): for a gray creation the files
	// other grays hold, the count of active grays and the files it deletes;
	// for a promote that the gray is active and, unless request (the plan
	// becomes a change request, checked again when applied) or forced, that
	// its cohort applied it. A dry run and a change request make them before
	// they answer; a direct write leaves them to write. nil: none.
	check func(ctx context.Context, head configsvc.Head, request bool) error
	// targets returns who the change reaches, as reader may see it; nil:
	// every live instance of the service, or of every service linking the
	// group.
	targets func(ctx context.Context, reader *access.Principal) ([]api.DryRunTarget, error)
	// write carries the plan out; nil: Store.Publish of cs on ref.
	write func(ctx context.Context, cs configsvc.Changeset) (written, error)
	// params are the operation's parameters beyond cs, kept with a change
	// request (approval.ChangeRequest.Params) for its applier.
	params json.RawMessage
	// reader is who reads the dry run: instances of services it may not
	// list are shown without their address, labels, owner or error.
	reader *access.Principal
}

// written is what carrying out a plan wrote, for its answer (answer).
type written struct {
	// rev is the main revision published; nil when there is none (a gray
	// creation).
	rev *configsvc.Revision
	// body is the answer's body; nil: the revision.
	body any
	// target is the audit target of the write when it is not the plan's
	// ref (the gray a creation made).
	target string
}

// revNumber returns the number of the main revision w published; 0 for
// none.
func (w written) revNumber() int64 {
	if w.rev == nil {
		return 0
	}
	return w.rev.Number
}

// publishWrite is the write of a plain publish: Store.Publish on ref.
func (s *Server) publishWrite(ref configsvc.Ref) func(ctx context.Context, cs configsvc.Changeset) (written, error) {
	return func(ctx context.Context, cs configsvc.Changeset) (written, error) {
		rev, err := s.cfg.Store.Publish(ctx, ref, cs)
		if err != nil {
			return written{}, err
		}
		return written{rev: &rev}, nil
	}
}

// planOf returns the plan a stored change request stands for, with cs
// its changeset: for its dry run against the current head, its rebase and
// its apply. A gray operation rebuilds its plan from cr.Params.
func (s *Server) planOf(cr approval.ChangeRequest, cs configsvc.Changeset) (plan, error) {
	switch cr.Operation {
	case approval.OpGrayCreate, approval.OpGrayPromote:
		return s.grayPlanOf(cr, cs)
	}
	return plan{ref: cr.Ref(), op: cr.Operation, cs: cs, params: cr.Params, stored: true}, nil
}

// applier carries out the changeset of an approved change request.
type applier func(ctx context.Context, cr approval.ChangeRequest, cs configsvc.Changeset) (written, error)

// applierFor returns how a change request of cr's operation is applied:
// a publish and a rollback publish their changeset on the main line; a
// gray creation creates its gray, a gray promotion promotes it, each by
// its plan (planOf). An operation this server does not know (a change
// request stored by a newer server) is a conflict.
func (s *Server) applierFor(cr approval.ChangeRequest) (applier, error) {
	switch cr.Operation {
	case approval.OpPublish, approval.OpRollback:
		return func(ctx context.Context, cr approval.ChangeRequest, cs configsvc.Changeset) (written, error) {
			return s.publishWrite(cr.Ref())(ctx, cs)
		}, nil
	case approval.OpGrayCreate, approval.OpGrayPromote:
		return func(ctx context.Context, cr approval.ChangeRequest, cs configsvc.Changeset) (written, error) {
			p, err := s.planOf(cr, cs)
			if err != nil {
				return written{}, err
			}
			return p.write(ctx, cs)
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
// it publishes (p.write). The changeset is validated once, by the store's
// Publish (CreateGray, EndGray) or Check (Config.Store is a
// configsvc.ValidatingStore).
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
	write := p.write
	if write == nil {
		write = s.publishWrite(p.ref)
	}
	out, err := write(ctx, p.cs)
	if err != nil {
		s.fail(c, staleIfMatch(err, p.conditional))
		return
	}
	if governed {
		s.recordEmergency(c, p.ref, p.op, out.revNumber(), reason, rule, "")
	}
	s.answer(c, p.ref, out, p.status)
}

// answer answers what a plan or an applied change request wrote: the
// revision (with its headers, fed to the summary index) or the body the
// write chose, with status.
func (s *Server) answer(c *gin.Context, ref configsvc.Ref, w written, status int) {
	st := state(c)
	if w.target != "" {
		st.target = w.target
	}
	if w.rev != nil {
		st.revision = w.rev.Number
		s.index.published(ref, *w.rev)
		s.metrics.publishes.WithLabelValues(ref.Kind.String()).Inc()
		setRevisionHeaders(c, w.rev.Number)
	}
	if w.body != nil {
		c.JSON(status, w.body)
		return
	}
	c.JSON(status, api.FromRevision(*w.rev, false))
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
	for _, ch := range p.cs.Changes {
		if !ch.Delete && configsvc.IsSecretFile(ch.File) {
			// A change request keeps its content in the store's records until
			// it is applied, unencrypted: refuse rather than store a value.
			s.fail(c, &configsvc.FieldError{Field: "changes.file", Value: ch.File,
				Msg: "a secret file cannot go through a change request (its value would wait unencrypted); an admin publishes it as an emergency change (docs/secrets.md)"})
			return
		}
	}
	if err := s.validating().Check(ctx, p.ref, p.cs); err != nil {
		s.fail(c, err)
		return
	}
	if p.check != nil {
		if err := p.check(ctx, h, true); err != nil {
			s.fail(c, err)
			return
		}
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
		Violations: []api.Violation{}, Files: []api.FileDiff{}, Targets: []api.DryRunTarget{}, ChangeRequest: request, Gray: p.gray}
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
	if p.check != nil {
		if err := p.check(ctx, h, request || p.stored); err != nil {
			return api.DryRun{}, err
		}
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
	hide := configsvc.SecretViewOf(ctx, p.ref) != configsvc.SecretPlaintext
	for _, ch := range p.cs.Changes {
		switch {
		case ch.Delete:
			delete(after, ch.File)
		case hide && configsvc.IsSecretFile(ch.File):
			// A rollback's changeset holds an old value in plaintext: the
			// diff shows its size only to a caller without the grant.
			after[ch.File] = secrets.ProposedPlaceholder(ch.Content)
		default:
			after[ch.File] = ch.Content
		}
	}
	if d.Files, err = diffFiles(ctx, before, after, d.BaseRevision, d.BaseRevision+1); err != nil {
		return err
	}
	targets := p.targets
	if targets == nil {
		targets = func(ctx context.Context, reader *access.Principal) ([]api.DryRunTarget, error) {
			return s.blastRadius(ctx, p.ref, reader, nil)
		}
	}
	if d.Targets, err = targets(ctx, p.reader); err != nil {
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
// service linking a group, each with its head and live instances (only
// those keep accepts, when it is set: a gray's cohort). The instances of a
// service reader may not list (a linking service, for an editor of the
// group only) keep their id, revision and status, not their address,
// labels, owner or error.
func (s *Server) blastRadius(ctx context.Context, ref configsvc.Ref, reader *access.Principal, keep func(configsvc.Instance) bool) ([]api.DryRunTarget, error) {
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
		if keep != nil {
			insts = slices.DeleteFunc(slices.Clone(insts), func(in configsvc.Instance) bool { return !keep(in) })
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
