package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/approval"
)

// DryRunParam is the query parameter that makes a publishing request a dry
// run: ?dry_run=true writes nothing and answers a DryRun.
const DryRunParam = "dry_run"

// The operations of a change request and of a dry run
// (ChangeRequest.Operation, DryRun.Operation).
const (
	OpPublish     = approval.OpPublish
	OpRollback    = approval.OpRollback
	OpGrayCreate  = approval.OpGrayCreate
	OpGrayPromote = approval.OpGrayPromote
)

// EmergencyHeader carries the reason of an admin's emergency change under
// an approval policy: the change applies at once, is audited as an
// emergency and is listed for review (GET /v1/emergencies).
const EmergencyHeader = approval.EmergencyHeader

// ChangesParam is the query parameter of GET …/watch that adds "change"
// events (EventChange) to a revision stream.
const ChangesParam = "changes"

// Policy is an approval policy (PUT/GET /v1/policies/{name}): the domain
// type.
type Policy = approval.Policy

// PolicyList is the answer of GET /v1/policies, sorted by name.
type PolicyList struct {
	Policies []Policy `json:"policies"`
}

// ChangeRule is what the policies matching a service or group require
// together: the domain type.
type ChangeRule = approval.Rule

// ChangeFile names one file a change request changes: the domain type.
type ChangeFile = approval.FileChange

// ChangeEvent is one step of a change request's thread: the domain type.
type ChangeEvent = approval.Event

// ChangeNotice is the data of a "change" event (EventChange): the newest
// event of a change request of the stream's service or group.
type ChangeNotice = approval.Notice

// Emergency is a change an admin made past an approval policy: the domain
// type.
type Emergency = approval.Emergency

// EmergencyList is the answer of GET /v1/emergencies, newest first.
type EmergencyList struct {
	Emergencies []Emergency `json:"emergencies"`
}

// ChangeRequest is a change request: the answer (202) of a publish under
// an approval policy (with the dry run of its changeset), of GET
// …/changes/{id} (with its thread and a fresh dry run) and an element of
// GET …/changes.
type ChangeRequest struct {
	ID              string       `json:"id"`
	Kind            string       `json:"kind"`
	Name            string       `json:"name"`
	Operation       string       `json:"operation"`
	State           string       `json:"state"`
	BaseRevision    int64        `json:"base_revision"`
	RollbackOf      int64        `json:"rollback_of,omitempty"`
	Author          string       `json:"author"`
	AuthorID        string       `json:"author_id"`
	Message         string       `json:"message"`
	Files           []ChangeFile `json:"files"`
	Policy          ChangeRule   `json:"policy"`
	Approvals       int          `json:"approvals"`
	Declines        int          `json:"declines"`
	Created         time.Time    `json:"created"`
	Updated         time.Time    `json:"updated"`
	Expires         time.Time    `json:"expires"`
	AppliedRevision int64        `json:"applied_revision,omitempty"`
	AppliedBy       string       `json:"applied_by,omitempty"`
	Emergency       string       `json:"emergency,omitempty"`
	// Params are the operation's own parameters beyond the changeset (a
	// gray release's selector); absent for a publish or rollback.
	Params json.RawMessage `json:"params,omitempty"`
	Thread []ChangeEvent   `json:"thread,omitempty"`
	// DryRun is the dry run of the changeset: on the 202 answer, against
	// the head it was submitted on; on GET …/changes/{id} of an open
	// change request, against the current head (absent once the head
	// moved: it needs a rebase).
	DryRun *DryRun `json:"dry_run,omitempty"`
}

// FromChange returns the wire form of cr, with its thread when given.
func FromChange(cr approval.ChangeRequest, thread []approval.Event) ChangeRequest {
	out := ChangeRequest{
		ID: cr.ID, Kind: cr.Kind, Name: cr.Name, Operation: cr.Operation, State: cr.State, BaseRevision: cr.Base,
		RollbackOf: cr.RollbackOf, Author: cr.Author, AuthorID: cr.AuthorID, Message: cr.Message,
		Files: append([]ChangeFile{}, cr.Files...), Policy: cr.Rule, Approvals: cr.Approvals, Declines: cr.Declines,
		Created: cr.Created.UTC(), Updated: cr.Updated.UTC(), Expires: cr.Expires.UTC(), AppliedRevision: cr.AppliedRevision,
		AppliedBy: cr.AppliedBy, Emergency: cr.Emergency, Params: cr.Params, Thread: thread,
	}
	if out.Policy.Policies == nil {
		out.Policy.Policies = []string{}
	}
	return out
}

// ChangeList is the answer of GET …/changes and GET /v1/changes, newest
// first.
type ChangeList struct {
	Changes []ChangeRequest `json:"changes"`
}

// ReviewRequest is the body of POST …/changes/{id}/approve and
// …/decline, and of POST /v1/emergencies/{id}/review.
type ReviewRequest struct {
	Comment string `json:"comment,omitempty"`
}

// RebaseRequest is the body of POST …/changes/{id}/rebase: re-submit the
// change request on the current head, with new changes (else the same
// ones) and a new message (else the same).
type RebaseRequest struct {
	Message string   `json:"message,omitempty"`
	Changes []Change `json:"changes,omitempty"`
}

// DryRun is the answer of a publishing request with ?dry_run=true: what
// the publish would do, without doing it.
type DryRun struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Operation string `json:"operation"`
	// BaseRevision is the head the change applies to.
	BaseRevision int64 `json:"base_revision"`
	// Valid reports whether the content passes validation (formats, the
	// JSON Schemas beside the files, the route schema); Violations lists
	// why not, at most configsvc.MaxViolations, ViolationsOmitted the rest.
	Valid             bool        `json:"valid"`
	Violations        []Violation `json:"violations"`
	ViolationsOmitted int         `json:"violations_omitted,omitempty"`
	// Files is the diff against the head.
	Files []FileDiff `json:"files"`
	// Targets are who it would hit: the service (for a shared group, every
	// service linking it) with its head and its live instances, which
	// would apply it; Instances counts them.
	Targets   []DryRunTarget `json:"targets"`
	Instances int            `json:"instances"`
	// Routes are the routes that change, for sluice-system/routes.yaml.
	Routes []RouteChange `json:"routes,omitempty"`
	// ChangeRequest reports that the publish would create a change request
	// (an approval policy applies and no emergency reason was given);
	// Policy is the rule it would wait under.
	ChangeRequest bool        `json:"change_request"`
	Policy        *ChangeRule `json:"policy,omitempty"`
	// Gray is, for a gray operation (gray.create, gray.promote), the gray:
	// for a creation the id it would get, drawn by this dry run, which
	// decides which instances a percent selector takes (Targets lists
	// them); send it as GrayRequest.ID to create exactly that gray.
	Gray string `json:"gray,omitempty"`
}

// DryRunTarget is one service a change would reach.
type DryRunTarget struct {
	Service string `json:"service"`
	// Revision is the service's head revision now.
	Revision int64 `json:"revision"`
	// Instances are its live instances, with the revision each applied.
	Instances []Instance `json:"instances"`
}

// The kinds of a RouteChange.
const (
	RouteAdded    = "added"
	RouteRemoved  = "removed"
	RouteModified = "modified"
)

// RouteChange is one route a change of sluice-system/routes.yaml adds,
// removes or modifies.
type RouteChange struct {
	Route  string `json:"route"`
	Change string `json:"change"` // RouteAdded, RouteRemoved or RouteModified
}

// Pending is the answer of a write that an approval policy turned into a
// change request (HTTP 202): nothing is published yet. PutFile,
// DeleteFile, Publish and Rollback return it as their error; it matches
// ErrPending with errors.Is.
type Pending struct {
	Change ChangeRequest
}

// ErrPending matches a *Pending.
var ErrPending = errors.New("change request created: waiting for approval")

// Error says which change request was created and what it waits for.
func (p *Pending) Error() string {
	return "change request " + p.Change.ID + " created for " + p.Change.Kind + "/" + p.Change.Name +
		": waiting for " + strconv.Itoa(p.Change.Policy.Approvals) + " approval(s); nothing is published yet"
}

// Is reports whether target is ErrPending.
func (p *Pending) Is(target error) bool { return target == ErrPending }

// WithEmergency makes a write under an approval policy apply at once, by an
// admin, with reason: it is audited as an emergency and listed for review.
func WithEmergency(reason string) WriteOption {
	return func(o *writeOptions) { o.emergency = reason }
}

// DryRunPutFile answers what PutFile would do, writing nothing.
func (c *Client) DryRunPutFile(ctx context.Context, ref configsvc.Ref, name string, content []byte, opts ...WriteOption) (DryRun, error) {
	var d DryRun
	_, err := c.doJSONRaw(ctx, request{method: http.MethodPut, path: refPath(ref, "files", name), body: content,
		contentType: "application/octet-stream", header: writeHeader(opts), query: dryRunQuery()}, &d)
	return d, err
}

// DryRunDeleteFile answers what DeleteFile would do, writing nothing.
func (c *Client) DryRunDeleteFile(ctx context.Context, ref configsvc.Ref, name string, opts ...WriteOption) (DryRun, error) {
	var d DryRun
	_, err := c.doJSONRaw(ctx, request{method: http.MethodDelete, path: refPath(ref, "files", name), header: writeHeader(opts), query: dryRunQuery()}, &d)
	return d, err
}

// DryRunPublish answers what Publish would do, writing nothing.
func (c *Client) DryRunPublish(ctx context.Context, ref configsvc.Ref, req PublishRequest, opts ...WriteOption) (DryRun, error) {
	var d DryRun
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "revisions"), header: writeHeader(opts), query: dryRunQuery()}, req, &d)
	return d, err
}

// DryRunRollback answers what Rollback would do, writing nothing.
func (c *Client) DryRunRollback(ctx context.Context, ref configsvc.Ref, req RollbackRequest, opts ...WriteOption) (DryRun, error) {
	var d DryRun
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "rollback"), header: writeHeader(opts), query: dryRunQuery()}, req, &d)
	return d, err
}

func dryRunQuery() url.Values { return url.Values{DryRunParam: {"true"}} }

// doJSONRaw sends req as it is and decodes the answer into out.
func (c *Client) doJSONRaw(ctx context.Context, req request, out any) (*response, error) {
	return c.doJSON(ctx, req, nil, out)
}

// Changes lists the change requests of ref, newest first: the open ones,
// or all (applied and expired too) when all is set.
func (c *Client) Changes(ctx context.Context, ref configsvc.Ref, all bool) ([]ChangeRequest, error) {
	var out ChangeList
	_, err := c.get(ctx, refPath(ref, "changes"), allQuery(all), &out)
	return out.Changes, err
}

// AllChanges lists the change requests of every service and group the
// caller may read (GET /v1/changes): the inbox.
func (c *Client) AllChanges(ctx context.Context, all bool) ([]ChangeRequest, error) {
	var out ChangeList
	_, err := c.get(ctx, "/v1/changes", allQuery(all), &out)
	return out.Changes, err
}

func allQuery(all bool) url.Values {
	if all {
		return url.Values{"all": {"true"}}
	}
	return nil
}

// Change returns one change request with its thread and a dry run of its
// changeset against the current head.
func (c *Client) Change(ctx context.Context, ref configsvc.Ref, id string) (ChangeRequest, error) {
	var out ChangeRequest
	_, err := c.get(ctx, refPath(ref, "changes", id), nil, &out)
	return out, err
}

// Approve approves a change request with a comment. ErrForbidden when the
// caller may not (not an eligible reviewer, or its author under a policy
// that forbids self-approval).
func (c *Client) Approve(ctx context.Context, ref configsvc.Ref, id, comment string) (ChangeRequest, error) {
	return c.changeAction(ctx, ref, id, "approve", ReviewRequest{Comment: comment})
}

// Decline declines a change request with a comment.
func (c *Client) Decline(ctx context.Context, ref configsvc.Ref, id, comment string) (ChangeRequest, error) {
	return c.changeAction(ctx, ref, id, "decline", ReviewRequest{Comment: comment})
}

// Rebase re-submits a change request on the current head (its author
// only); the approvals given before count no more.
func (c *Client) Rebase(ctx context.Context, ref configsvc.Ref, id string, req RebaseRequest) (ChangeRequest, error) {
	return c.changeAction(ctx, ref, id, "rebase", req)
}

func (c *Client) changeAction(ctx context.Context, ref configsvc.Ref, id, action string, body any) (ChangeRequest, error) {
	var out ChangeRequest
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "changes", id, action)}, body, &out)
	return out, err
}

// Apply publishes an approved change request and returns the revision
// (zero for a change request that creates a gray: see ApplyChange).
// ErrConflict when it lacks approvals, is declined or expired, or the head
// moved since its base (rebase it). WithEmergency lets an admin apply it
// without the approvals.
func (c *Client) Apply(ctx context.Context, ref configsvc.Ref, id string, opts ...WriteOption) (configsvc.Revision, error) {
	a, err := c.ApplyChange(ctx, ref, id, opts...)
	return a.Revision, err
}

// Applied is what applying a change request wrote: the main revision it
// published (a publish, a rollback, a gray promotion; zero for a gray
// creation) and, for a gray operation, the gray it created or promoted.
type Applied struct {
	Revision configsvc.Revision
	Gray     *configsvc.Gray
}

// ApplyChange applies an approved change request, as Apply, and returns
// what it wrote: the server answers the revision (publish, rollback), the
// gray (gray.create), or the revision number and the gray (gray.promote).
func (c *Client) ApplyChange(ctx context.Context, ref configsvc.Ref, id string, opts ...WriteOption) (Applied, error) {
	resp, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "changes", id, "apply"), header: writeHeader(opts)}, nil, nil)
	if err != nil {
		return Applied{}, err
	}
	var probe struct {
		Gray     json.RawMessage `json:"gray"`
		Selector json.RawMessage `json:"selector"`
	}
	_ = json.Unmarshal(resp.body, &probe)
	switch {
	case probe.Gray != nil: // gray.promote: a PromoteResult
		var pr PromoteResult
		if err := json.Unmarshal(resp.body, &pr); err != nil {
			return Applied{}, fmt.Errorf("api: apply change request %s: unexpected response: %w", id, err)
		}
		g := pr.Gray.withRef(ref)
		rev := configsvc.Revision{Number: pr.Revision}
		if rev.Number == 0 {
			rev.Number = resp.revision()
		}
		return Applied{Revision: rev, Gray: &g}, nil
	case probe.Selector != nil: // gray.create: the gray
		var g Gray
		if err := json.Unmarshal(resp.body, &g); err != nil {
			return Applied{}, fmt.Errorf("api: apply change request %s: unexpected response: %w", id, err)
		}
		dg := g.withRef(ref)
		return Applied{Gray: &dg}, nil
	}
	rev, err := published(resp)
	return Applied{Revision: rev}, err
}

// Policies lists the approval policies (admins only).
func (c *Client) Policies(ctx context.Context) ([]Policy, error) {
	var out PolicyList
	_, err := c.get(ctx, "/v1/policies", nil, &out)
	return out.Policies, err
}

// Policy returns one approval policy.
func (c *Client) Policy(ctx context.Context, name string) (Policy, error) {
	var out Policy
	_, err := c.get(ctx, "/v1/policies/"+url.PathEscape(name), nil, &out)
	return out, err
}

// PutPolicy creates or replaces an approval policy (admins only).
func (c *Client) PutPolicy(ctx context.Context, p Policy) (Policy, error) {
	var out Policy
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: "/v1/policies/" + url.PathEscape(p.Name)}, p, &out)
	return out, err
}

// DeletePolicy removes an approval policy (admins only).
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/policies/" + url.PathEscape(name)})
	return err
}

// Emergencies lists the emergency changes of the services and groups the
// caller may read: those not yet reviewed, or all.
func (c *Client) Emergencies(ctx context.Context, all bool) ([]Emergency, error) {
	var out EmergencyList
	_, err := c.get(ctx, "/v1/emergencies", allQuery(all), &out)
	return out.Emergencies, err
}

// ReviewEmergency marks an emergency change reviewed, with a comment.
func (c *Client) ReviewEmergency(ctx context.Context, id, comment string) (Emergency, error) {
	var out Emergency
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: "/v1/emergencies/" + url.PathEscape(id) + "/review"}, ReviewRequest{Comment: comment}, &out)
	return out, err
}
