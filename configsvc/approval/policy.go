package approval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// Record collections of the package. A store bounds the records of one
// collection (configsvc.MaxRecordsPerCollection): the content chunks and
// the thread events, many per change request, are spread over 256
// collections each, ChangeDataCollection and ChangeEventCollection
// followed by "-" and the first two hex digits of the change request's id
// (DataCollection, EventCollection), so that they are bounded per change
// request rather than together.
const (
	PoliciesCollection    = "policies"
	ChangesCollection     = "changes"
	ChangeDataCollection  = "change-data"
	ChangeEventCollection = "change-events"
	NoticesCollection     = "change-notices"
	EmergencyCollection   = "emergencies"
)

// DataCollection returns the collection that holds the content chunks of
// change request id: "change-data-" and the id's first two hex digits.
func DataCollection(id string) string { return ChangeDataCollection + "-" + shard(id) }

// EventCollection returns the collection that holds the thread of change
// request id: "change-events-" and the id's first two hex digits.
func EventCollection(id string) string { return ChangeEventCollection + "-" + shard(id) }

// DataCollections returns the 256 collections of content chunks.
func DataCollections() []string {
	out := make([]string, 256)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02x", ChangeDataCollection, i)
	}
	return out
}

// shard returns the first two characters of a change request id (16 hex
// digits, ValidateID); "00" for a shorter one.
func shard(id string) string {
	if len(id) < 2 {
		return "00"
	}
	return id[:2]
}

// Limits of policies and change requests.
const (
	// MaxApprovals bounds a policy's required approvals.
	MaxApprovals = 10
	// DefaultExpiry is how long a change request stays open when its
	// policy names no expiry.
	DefaultExpiry = 7 * 24 * time.Hour
	// MaxExpiry bounds a policy's expiry.
	MaxExpiry = 90 * 24 * time.Hour
	// MaxCommentLen bounds a review comment or an emergency reason, in bytes.
	MaxCommentLen = 2048
	// MaxThread bounds the events of one change request's thread.
	MaxThread = 200
	// MaxOpenChanges bounds the open change requests of the whole store.
	MaxOpenChanges = 1000
	// ClosedRetention is how long Sweep keeps an applied or expired change
	// request (listed as such) before deleting it.
	ClosedRetention = 7 * 24 * time.Hour
	// MaxPolicies bounds how many policies exist.
	MaxPolicies = 200
)

// The roles a policy may require of approvers.
const (
	RoleEditor = string(access.RoleEditor) // editor (or admin) on the service or group
	RoleAdmin  = string(access.RoleAdmin)
)

// Policy is an approval policy: changes to the services and shared groups
// whose name matches Pattern need Approvals approvals before they apply.
type Policy struct {
	Name string `json:"name"`
	// Pattern is a name or a glob with '*' and '?' ("pay-*"), matched
	// against service and shared group names like a grant.
	Pattern string `json:"pattern"`
	// Approvals is how many distinct approvers a change needs, 1 to
	// MaxApprovals.
	Approvals int `json:"approvals"`
	// AuthorMayApprove lets the author's own approval count.
	AuthorMayApprove bool `json:"author_may_approve"`
	// ApproverRole is "editor" (editors and admins of the service or
	// group approve) or "admin" (admins only). Default "editor".
	ApproverRole string `json:"approver_role"`
	// DeclineBlocks makes any standing decline block applying.
	DeclineBlocks bool `json:"decline_blocks"`
	// Expiry is how long a change request stays open, a Go duration
	// ("72h"); empty means DefaultExpiry.
	Expiry    string    `json:"expiry,omitempty"`
	Updated   time.Time `json:"updated"`
	UpdatedBy string    `json:"updated_by"`
}

// Validate checks p (its Name is checked by the caller as a path
// parameter) and fills the defaults. Errors are *configsvc.FieldError.
func (p *Policy) Validate() error {
	if err := ValidatePolicyName(p.Name); err != nil {
		return err
	}
	g := access.Grant{Role: access.RoleViewer, Pattern: p.Pattern}
	if err := g.Validate(); err != nil {
		return &configsvc.FieldError{Field: "pattern", Value: p.Pattern, Msg: "must be 1-63 characters of a-z, 0-9, '-', '*' and '?'"}
	}
	if p.Approvals < 1 || p.Approvals > MaxApprovals {
		return &configsvc.FieldError{Field: "approvals", Value: strconv.Itoa(p.Approvals), Msg: fmt.Sprintf("must be from 1 to %d", MaxApprovals)}
	}
	switch p.ApproverRole {
	case "":
		p.ApproverRole = RoleEditor
	case RoleEditor, RoleAdmin:
	default:
		return &configsvc.FieldError{Field: "approver_role", Value: p.ApproverRole, Msg: `must be "editor" or "admin"`}
	}
	if p.Expiry != "" {
		d, err := time.ParseDuration(p.Expiry)
		if err != nil || d < time.Minute || d > MaxExpiry {
			return &configsvc.FieldError{Field: "expiry", Value: p.Expiry, Msg: "must be a Go duration from 1m to " + MaxExpiry.String()}
		}
	}
	return nil
}

// ValidatePolicyName checks a policy name: the service name rule.
func ValidatePolicyName(name string) error {
	if err := configsvc.ValidateServiceName(name); err != nil {
		return &configsvc.FieldError{Field: "policy", Value: name, Msg: err.(*configsvc.FieldError).Msg}
	}
	return nil
}

func (p Policy) expiry() time.Duration {
	if d, err := time.ParseDuration(p.Expiry); err == nil && d > 0 {
		return d
	}
	return DefaultExpiry
}

// Rule is what the policies matching a service or group require together:
// the strictest of each field (most approvals, the author's approval
// counting only if every policy lets it, admin approvers if any policy
// says so, declines blocking if any policy says so, the shortest expiry).
type Rule struct {
	Policies         []string      `json:"policies"`
	Approvals        int           `json:"approvals"`
	AuthorMayApprove bool          `json:"author_may_approve"`
	ApproverRole     string        `json:"approver_role"`
	DeclineBlocks    bool          `json:"decline_blocks"`
	Expiry           time.Duration `json:"-"`
}

// Governance keeps policies, change requests and emergencies in a
// RecordStore. It is safe for concurrent use; every server on one store
// sees the same state.
type Governance struct {
	records configsvc.RecordStore
	now     func() time.Time
	authz   access.Authorizer
	seq     atomic.Int64
}

// New returns the Governance of records; now is the clock (nil: time.Now).
func New(records configsvc.RecordStore, now func() time.Time) *Governance {
	if now == nil {
		now = time.Now
	}
	return &Governance{records: records, now: now}
}

// PutPolicy creates or replaces a policy, stamped with by and the time. It
// returns the stored policy and whether it was created. MaxPolicies bounds
// how many exist (*configsvc.CountError).
func (g *Governance) PutPolicy(ctx context.Context, p Policy, by string) (Policy, bool, error) {
	if err := p.Validate(); err != nil {
		return Policy{}, false, err
	}
	all, err := g.Policies(ctx)
	if err != nil {
		return Policy{}, false, err
	}
	created := true
	for _, q := range all {
		created = created && q.Name != p.Name
	}
	if created && len(all) >= MaxPolicies {
		return Policy{}, false, &configsvc.CountError{What: "approval policies", Count: int64(len(all)), Limit: MaxPolicies}
	}
	p.Updated, p.UpdatedBy = g.now().UTC(), by
	b, err := json.Marshal(p)
	if err != nil {
		return Policy{}, false, err
	}
	if err := g.records.Put(ctx, PoliciesCollection, p.Name, b); err != nil {
		return Policy{}, false, fmt.Errorf("approval: put policy %s: %w", p.Name, err)
	}
	return p, created, nil
}

// Policy returns one policy; ErrNotFound when absent.
func (g *Governance) Policy(ctx context.Context, name string) (Policy, error) {
	b, err := g.records.Get(ctx, PoliciesCollection, name)
	if err != nil {
		return Policy{}, fmt.Errorf("approval: policy %s: %w", name, err)
	}
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return Policy{}, fmt.Errorf("approval: policy %s: %w", name, err)
	}
	return p, nil
}

// DeletePolicy removes a policy; ErrNotFound when absent. Open change
// requests keep the rule they were submitted under.
func (g *Governance) DeletePolicy(ctx context.Context, name string) error {
	if err := g.records.Delete(ctx, PoliciesCollection, name); err != nil {
		return fmt.Errorf("approval: delete policy %s: %w", name, err)
	}
	return nil
}

// Policies returns every policy, sorted by name.
func (g *Governance) Policies(ctx context.Context) ([]Policy, error) {
	recs, err := g.records.List(ctx, PoliciesCollection)
	if err != nil {
		return nil, fmt.Errorf("approval: list policies: %w", err)
	}
	out := []Policy{}
	for _, r := range recs {
		var p Policy
		if json.Unmarshal(r.Data, &p) == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RuleFor returns the rule of the policies matching ref's name, and false
// when none does.
func (g *Governance) RuleFor(ctx context.Context, ref configsvc.Ref) (Rule, bool, error) {
	all, err := g.Policies(ctx)
	if err != nil {
		return Rule{}, false, err
	}
	r := Rule{AuthorMayApprove: true, ApproverRole: RoleEditor}
	for _, p := range all {
		if !configsvc.MatchGlob(p.Pattern, ref.Name) {
			continue
		}
		r.Policies = append(r.Policies, p.Name)
		r.Approvals = max(r.Approvals, p.Approvals)
		r.AuthorMayApprove = r.AuthorMayApprove && p.AuthorMayApprove
		if p.ApproverRole == RoleAdmin {
			r.ApproverRole = RoleAdmin
		}
		r.DeclineBlocks = r.DeclineBlocks || p.DeclineBlocks
		if d := p.expiry(); r.Expiry == 0 || d < r.Expiry {
			r.Expiry = d
		}
	}
	return r, len(r.Policies) > 0, nil
}

// MayApprove reports whether p may approve or decline changes to ref under
// r (an editor or admin grant on ref, or admin only), and why not.
func (g *Governance) MayApprove(p *access.Principal, r Rule, ref configsvc.Ref) (bool, string) {
	if r.ApproverRole == RoleAdmin {
		if p.IsAdmin() {
			return true, ""
		}
		return false, fmt.Sprintf("policy %s: only admins approve changes to %s", strings.Join(r.Policies, ", "), ref)
	}
	if d := g.authz.Decide(p, access.ActionPublish, access.Target{Ref: ref}); !d.Allowed {
		return false, fmt.Sprintf("policy %s: reviewers need the editor role on %s: %s", strings.Join(r.Policies, ", "), ref, d.Reason)
	}
	return true, ""
}

// ErrNotOpen is the conflict of acting on a change request that is no
// longer open (applied, expired); it matches configsvc.ErrConflict.
var ErrNotOpen = fmt.Errorf("change request is not open: %w", configsvc.ErrConflict)

func isNotFound(err error) bool { return errors.Is(err, configsvc.ErrNotFound) }
