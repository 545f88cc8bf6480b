package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// EmergencyHeader is the request header with which an admin makes a change
// under an approval policy directly, without approvals: its value is the
// reason, required.
const EmergencyHeader = "X-Sluice-Emergency"

// Emergency is a change an admin made past an approval policy. It is
// listed for after-the-fact review until someone other than its actor
// marks it reviewed.
type Emergency struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	ActorID   string    `json:"actor_id"`
	Kind      string    `json:"kind"` // "service" or "group"
	Name      string    `json:"name"`
	Operation string    `json:"operation"`
	Revision  int64     `json:"revision"`
	Reason    string    `json:"reason"`
	Policies  []string  `json:"policies"`
	ChangeID  string    `json:"change_id,omitempty"` // the change request applied, if any
	Reviewed  bool      `json:"reviewed"`
	// ReviewedBy, ReviewedAt and ReviewComment say who reviewed it.
	ReviewedBy    string     `json:"reviewed_by,omitempty"`
	ReviewedByID  string     `json:"reviewed_by_id,omitempty"`
	ReviewedAt    *time.Time `json:"reviewed_at,omitempty"`
	ReviewComment string     `json:"review_comment,omitempty"`
}

// Ref returns the service or group changed.
func (e *Emergency) Ref() configsvc.Ref {
	if e.Kind == configsvc.KindGroup.String() {
		return configsvc.Group(e.Name)
	}
	return configsvc.Service(e.Name)
}

// CheckReason validates an emergency reason: 1 to MaxCommentLen bytes of
// text.
func CheckReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return &configsvc.FieldError{Field: EmergencyHeader, Msg: "must give the reason for the emergency change"}
	}
	return checkComment(EmergencyHeader, reason)
}

// RecordEmergency stores e (its ID and Time are set here) and returns it.
func (g *Governance) RecordEmergency(ctx context.Context, e Emergency) (Emergency, error) {
	e.Time = g.now().UTC()
	e.ID = fmt.Sprintf("%d-%s", e.Time.UnixNano(), newID()[:8])
	b, err := json.Marshal(e)
	if err != nil {
		return Emergency{}, err
	}
	if err := g.records.Put(ctx, EmergencyCollection, e.ID, b); err != nil {
		return Emergency{}, fmt.Errorf("approval: record emergency: %w", err)
	}
	return e, nil
}

// Emergencies returns the emergencies (only unreviewed ones unless all),
// newest first.
func (g *Governance) Emergencies(ctx context.Context, all bool) ([]Emergency, error) {
	recs, err := g.records.List(ctx, EmergencyCollection)
	if err != nil {
		return nil, fmt.Errorf("approval: list emergencies: %w", err)
	}
	out := []Emergency{}
	for _, r := range recs {
		var e Emergency
		if json.Unmarshal(r.Data, &e) == nil && (all || !e.Reviewed) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

// Emergency returns one emergency; ErrNotFound when absent.
func (g *Governance) Emergency(ctx context.Context, id string) (Emergency, error) {
	b, err := g.records.Get(ctx, EmergencyCollection, id)
	if err != nil {
		return Emergency{}, fmt.Errorf("emergency %s: %w", id, err)
	}
	var e Emergency
	err = json.Unmarshal(b, &e)
	return e, err
}

// ReviewEmergency marks an emergency reviewed by p with a comment. The
// reviewer is an admin or an editor of the service or group, and not the
// emergency's actor (a *Refusal otherwise); reviewing twice is a conflict.
func (g *Governance) ReviewEmergency(ctx context.Context, id string, p *access.Principal, comment string) (Emergency, error) {
	if err := checkComment("comment", comment); err != nil {
		return Emergency{}, err
	}
	e, err := g.Emergency(ctx, id)
	if err != nil {
		return Emergency{}, err
	}
	if e.Reviewed {
		return Emergency{}, fmt.Errorf("emergency %s was reviewed by %s: %w", id, e.ReviewedBy, configsvc.ErrConflict)
	}
	if p.TokenID == e.ActorID {
		return Emergency{}, &Refusal{Reason: "an emergency change is reviewed by someone other than who made it"}
	}
	if d := g.authz.Decide(p, access.ActionPublish, access.Target{Ref: e.Ref()}); !d.Allowed {
		return Emergency{}, &Refusal{Reason: "reviewing an emergency change needs the editor role on " + e.Ref().String() + ": " + d.Reason}
	}
	now := g.now().UTC()
	e.Reviewed, e.ReviewedBy, e.ReviewedByID, e.ReviewedAt, e.ReviewComment = true, p.Name, p.TokenID, &now, comment
	b, err := json.Marshal(e)
	if err != nil {
		return Emergency{}, err
	}
	if err := g.records.Put(ctx, EmergencyCollection, e.ID, b); err != nil {
		return Emergency{}, fmt.Errorf("approval: review emergency %s: %w", id, err)
	}
	return e, nil
}
