package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Gray releases on the wire (issue 13, docs/gray.md): the routes under
// /v1/services/{svc}/grays and /v1/shared/{group}/grays, their bodies,
// and the client methods that call them.

// Selector chooses the cohort of a gray: the domain type, which has the
// wire shape ({"instances","labels","percent"}).
type Selector = configsvc.Selector

// GraySummary is what a head and a "grays" event carry about one active
// gray: the domain type ({"id","files","selector","version"}).
type GraySummary = configsvc.GraySummary

// GrayStatus is an instance's report about one gray it is in
// (Instance.Grays): the domain type.
type GrayStatus = configsvc.GrayStatus

// CohortMember is one live instance of a gray's cohort with its status
// about the gray: the domain type.
type CohortMember = configsvc.CohortMember

// Rollout is a gray's progressive rollout, its spec and its recorded
// progress: the domain type.
type Rollout = configsvc.Rollout

// RolloutStep is one step of a rollout ({"percent","bake"}, bake a Go
// duration string such as "2m"): the domain type.
type RolloutStep = configsvc.RolloutStep

// CodeNotReady is the error code of a promote refused because cohort
// instances rejected the gray or have not applied it (HTTP 409; the
// details list them under "instances"). It matches configsvc.ErrConflict.
const CodeNotReady = "not_ready"

// Gray is a gray release as the API shows it: the answer of POST
// …/grays, PUT …/selector, DELETE …/grays/{id} and POST …/rollout, and an
// element of GET …/grays. Changes carry content only in GET
// …/grays/{id} (GrayView).
type Gray struct {
	ID string `json:"id"`
	// Ref is the service or group the gray belongs to: "service/NAME" or
	// "group/NAME".
	Ref     string    `json:"ref"`
	Name    string    `json:"name"`
	Message string    `json:"message"`
	Author  string    `json:"author"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// BaseRevision is the main revision the changes were made on.
	BaseRevision int64 `json:"base_revision"`
	// Files are the files the gray writes or deletes, sorted.
	Files []string `json:"files"`
	// Changes are the gray's changes in order: content only in GET
	// …/grays/{id}; deletions carry "delete": true.
	Changes  []Change `json:"changes"`
	Selector Selector `json:"selector"`
	// State is "active", "promoted" or "abandoned".
	State string `json:"state"`
	// Version is bumped by every change of the gray.
	Version int64 `json:"version"`
	// MainChanged lists, for an active gray, the files of the gray that
	// main changed since BaseRevision (the gray's version hides them).
	MainChanged []string `json:"main_changed"`
	// EndedRevision is the main revision a promote created.
	EndedRevision int64 `json:"ended_revision,omitempty"`
	// Ended is when the gray was promoted or abandoned.
	Ended *time.Time `json:"ended,omitempty"`
	// EndReason says why it ended.
	EndReason string `json:"end_reason,omitempty"`
	// Rollout is the gray's progressive rollout; absent when none was
	// started.
	Rollout *Rollout `json:"rollout,omitempty"`
}

// GrayView is the answer of GET …/grays/{id}: the gray with the content of
// its changes, and its cohort over the live instances (of the service; for
// a shared group, of the services that link it), each with what it
// reported about the gray. The cohort of an ended gray is empty.
type GrayView struct {
	Gray
	Cohort []CohortMember `json:"cohort"`
}

// GrayList is the answer of GET …/grays: active grays first (oldest
// first), then ended ones (newest first), without content.
type GrayList struct {
	Grays []Gray `json:"grays"`
}

// GrayRequest is the body of POST …/grays. BaseRevision, when set,
// refuses the gray (409) unless it is still main's head; absent, the
// server creates it on its head. Changes are as in a publish (content, or
// "delete": true).
type GrayRequest struct {
	Name         string   `json:"name,omitempty"`
	Message      string   `json:"message,omitempty"`
	BaseRevision *int64   `json:"base_revision,omitempty"`
	Changes      []Change `json:"changes"`
	Selector     Selector `json:"selector"`
}

// SelectorRequest is the body of PUT …/grays/{id}/selector: the new
// selector, replacing the old one (widen or narrow the cohort).
type SelectorRequest struct {
	Selector Selector `json:"selector"`
}

// PromoteRequest is the body of POST …/grays/{id}/promote. Message is the
// revision's (default "promote gray ID: NAME"); Force promotes even while
// cohort instances rejected the gray or have not applied it.
type PromoteRequest struct {
	Message string `json:"message,omitempty"`
	Force   bool   `json:"force,omitempty"`
}

// PromoteResult is the answer of POST …/grays/{id}/promote: the main
// revision the promote created and the gray, now promoted.
type PromoteResult struct {
	Revision int64 `json:"revision"`
	Gray     Gray  `json:"gray"`
}

// RolloutRequest is the body of POST …/grays/{id}/rollout: the steps
// (ascending percents, each with its bake time) and the gates.
// ApplyTimeout is a Go duration ("1m"); empty or "0s" means the default
// (configsvc.DefaultRolloutApplyTimeout).
type RolloutRequest struct {
	Steps        []RolloutStep      `json:"steps"`
	MaxRejected  int                `json:"max_rejected"`
	MaxErrorRate float64            `json:"max_error_rate"`
	ApplyTimeout configsvc.Duration `json:"apply_timeout,omitempty"`
}

// Spec returns the rollout r asks for, its progress not started.
func (r RolloutRequest) Spec() configsvc.Rollout {
	return configsvc.Rollout{Steps: append([]RolloutStep(nil), r.Steps...), MaxRejected: r.MaxRejected,
		MaxErrorRate: r.MaxErrorRate, ApplyTimeout: r.ApplyTimeout}
}

// GraysData is the data of a "grays" event: the active grays of the
// service or group (its head's summaries), sorted by id. A stream sends
// one when it opens (once the revisions up to the head it read are sent)
// and after every change.
type GraysData struct {
	Grays []GraySummary `json:"grays"`
}

// FromGray returns the wire form of g, with the content of its changes
// when withContent is set.
func FromGray(g configsvc.Gray, withContent bool) Gray {
	out := Gray{ID: g.ID, Ref: g.Ref.String(), Name: g.Name, Message: g.Message, Author: g.Author,
		Created: g.Created.UTC(), Updated: g.Updated.UTC(), BaseRevision: g.BaseRevision, Files: g.Files(),
		Changes: make([]Change, 0, len(g.Changes)), Selector: g.Selector, State: string(g.State), Version: g.Version,
		MainChanged: append([]string{}, g.MainChanged...), EndedRevision: g.EndedRevision, EndReason: g.EndReason,
		Rollout: g.Rollout}
	for _, ch := range g.Changes {
		c := Change{File: ch.File, Delete: ch.Delete}
		if withContent && !ch.Delete {
			c = PutChange(ch.File, ch.Content)
		}
		out.Changes = append(out.Changes, c)
	}
	if !g.Ended.IsZero() {
		t := g.Ended.UTC()
		out.Ended = &t
	}
	return out
}

// FromGrays returns the wire form of grays, without content.
func FromGrays(grays []configsvc.Gray) []Gray {
	out := make([]Gray, len(grays))
	for i, g := range grays {
		out[i] = FromGray(g, false)
	}
	return out
}

// Domain returns g as a configsvc.Gray; a change whose content is absent
// has nil Content, and a Ref that does not parse is left zero.
func (g Gray) Domain() configsvc.Gray {
	out := configsvc.Gray{ID: g.ID, Ref: parseRef(g.Ref), Name: g.Name, Message: g.Message, Author: g.Author,
		Created: g.Created.UTC(), Updated: g.Updated.UTC(), BaseRevision: g.BaseRevision,
		Changes: make([]configsvc.Change, len(g.Changes)), Selector: g.Selector, State: configsvc.GrayState(g.State),
		Version: g.Version, EndedRevision: g.EndedRevision, EndReason: g.EndReason, Rollout: g.Rollout}
	for i, c := range g.Changes {
		out.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
		if c.Content != nil && !c.Delete {
			out.Changes[i].Content = []byte(*c.Content)
		}
	}
	if len(g.MainChanged) > 0 {
		out.MainChanged = append([]string(nil), g.MainChanged...)
	}
	if g.Ended != nil {
		out.Ended = g.Ended.UTC()
	}
	return out
}

// parseRef reads "service/NAME" or "group/NAME".
func parseRef(s string) configsvc.Ref {
	kind, name, ok := strings.Cut(s, "/")
	if !ok {
		return configsvc.Ref{}
	}
	return configsvc.Ref{Kind: kindOf(kind), Name: name}
}

func grayPath(ref configsvc.Ref, id string, segs ...string) string {
	return refPath(ref, append([]string{"grays", id}, segs...)...)
}

// CreateGray creates a gray of ref (editors of ref) and returns it
// (changes without content). ErrConflict when req.BaseRevision is no
// longer the head, or when another active gray holds one of its files
// (the *Error's details name the file and the gray); ErrInvalid for bad
// content (details as for a publish) or a bad selector.
func (c *Client) CreateGray(ctx context.Context, ref configsvc.Ref, req GrayRequest) (configsvc.Gray, error) {
	var out Gray
	if _, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "grays")}, req, &out); err != nil {
		return configsvc.Gray{}, err
	}
	return out.withRef(ref), nil
}

// withRef returns g as a configsvc.Gray of ref.
func (g Gray) withRef(ref configsvc.Ref) configsvc.Gray {
	out := g.Domain()
	out.Ref = ref
	return out
}

// Grays lists the grays of ref, active and ended, without content: active
// ones first (oldest first), then ended ones (newest first), as
// configsvc.Store.Grays.
func (c *Client) Grays(ctx context.Context, ref configsvc.Ref) ([]configsvc.Gray, error) {
	var out GrayList
	if _, err := c.get(ctx, refPath(ref, "grays"), nil, &out); err != nil {
		return nil, err
	}
	grays := make([]configsvc.Gray, len(out.Grays))
	for i, g := range out.Grays {
		grays[i] = g.withRef(ref)
	}
	return grays, nil
}

// Gray returns gray id of ref with the content of its changes, as
// configsvc.Store.Gray. ErrNotFound if it does not exist.
func (c *Client) Gray(ctx context.Context, ref configsvc.Ref, id string) (configsvc.Gray, error) {
	v, err := c.GrayView(ctx, ref, id)
	if err != nil {
		return configsvc.Gray{}, err
	}
	return v.withRef(ref), nil
}

// GrayView returns gray id of ref as GET …/grays/{id} shows it: with
// content and the cohort's live statuses.
func (c *Client) GrayView(ctx context.Context, ref configsvc.Ref, id string) (GrayView, error) {
	var out GrayView
	_, err := c.get(ctx, grayPath(ref, id), nil, &out)
	return out, err
}

// SetGraySelector replaces the selector of the active gray id of ref and
// returns the gray. ErrConflict when it ended or a rollout drives it.
func (c *Client) SetGraySelector(ctx context.Context, ref configsvc.Ref, id string, sel Selector) (configsvc.Gray, error) {
	var out Gray
	if _, err := c.doJSON(ctx, request{method: http.MethodPut, path: grayPath(ref, id, "selector")}, SelectorRequest{Selector: sel}, &out); err != nil {
		return configsvc.Gray{}, err
	}
	return out.withRef(ref), nil
}

// PromoteGray publishes main + the gray's changes as main's next revision
// and ends the gray promoted. Without req.Force it is refused with an
// *Error of code CodeNotReady (matching configsvc.ErrConflict; the details
// list the instances) while cohort instances rejected the gray or have not
// applied it.
func (c *Client) PromoteGray(ctx context.Context, ref configsvc.Ref, id string, req PromoteRequest) (PromoteResult, error) {
	var out PromoteResult
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: grayPath(ref, id, "promote")}, req, &out)
	return out, err
}

// AbandonGray ends the active gray id of ref abandoned (its cohort
// returns to main) and returns it. ErrConflict when it ended already.
func (c *Client) AbandonGray(ctx context.Context, ref configsvc.Ref, id string) (configsvc.Gray, error) {
	var out Gray
	if _, err := c.doJSON(ctx, request{method: http.MethodDelete, path: grayPath(ref, id)}, nil, &out); err != nil {
		return configsvc.Gray{}, err
	}
	return out.withRef(ref), nil
}

// StartRollout starts a progressive rollout of the active gray id of ref
// (the server's rollout driver then moves its percent through the steps)
// and returns the gray. ErrConflict when a rollout already drives it or it
// ended; ErrInvalid for bad steps or gates.
func (c *Client) StartRollout(ctx context.Context, ref configsvc.Ref, id string, req RolloutRequest) (configsvc.Gray, error) {
	var out Gray
	if _, err := c.doJSON(ctx, request{method: http.MethodPost, path: grayPath(ref, id, "rollout")}, req, &out); err != nil {
		return configsvc.Gray{}, err
	}
	return out.withRef(ref), nil
}

// NotReadyInstances returns the instances a CodeNotReady error lists in
// its details, sorted by service and id; nil for any other error.
func NotReadyInstances(err error) []CohortMember {
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeNotReady {
		return nil
	}
	raw, _ := e.Details["instances"].([]any)
	out := make([]CohortMember, 0, len(raw))
	for _, r := range raw {
		m, _ := r.(map[string]any)
		s := func(k string) string { v, _ := m[k].(string); return v }
		out = append(out, CohortMember{Service: s("service"), ID: s("id"), Status: configsvc.GrayApplyStatus(s("status")), Reason: s("reason")})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].ID < out[j].ID
	})
	return out
}
