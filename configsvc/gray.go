package configsvc

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Gray releases (issue 13, docs/gray.md): a changeset on top of the main
// line of a service or shared group that only the instances its Selector
// matches apply, until it is promoted (published to main) or abandoned.
// This file holds the gray itself and the state transitions both stores
// make, so that zkstore and boltstore give identical answers:
// NewGray (CreateGray), UpdatedGray (UpdateGray), EndedGray and
// PromoteChanges (EndGray), and the head's summaries.

// GrayState is the lifecycle state of a gray.
type GrayState string

// The states of a gray. A gray starts active and ends promoted or
// abandoned; an ended gray never changes again.
const (
	GrayActive    GrayState = "active"
	GrayPromoted  GrayState = "promoted"
	GrayAbandoned GrayState = "abandoned"
)

// Gray is a gray release of a service or shared group: Changes (content,
// additions and deletions) on top of main as it was at BaseRevision, which
// the instances matched by Selector apply on top of main (the gray's
// version of a file wins; a deletion removes the file) while every other
// instance stays on main. Main may move while the gray is active: the
// cohort gets main's new revisions, with the gray's files still winning.
// At most one active gray holds a file of a service; grays on different
// files coexist and an instance may be in several.
//
// The JSON form is how the stores keep a gray; the admin API's form is
// api.Gray.
type Gray struct {
	// ID is "g-" and 12 hex digits, assigned by CreateGray.
	ID string `json:"id"`
	// Ref is the service or group the gray belongs to.
	Ref Ref `json:"-"`
	// Name is a short label, at most MaxGrayNameLen bytes of one line.
	Name string `json:"name,omitempty"`
	// Message says what the gray changes and why, at most MaxMessageLen
	// bytes; it is the default message of the revision a promote creates.
	Message string `json:"message,omitempty"`
	Author  string `json:"author,omitempty"`
	// Created and Updated are in UTC; Updated moves with every change.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// BaseRevision is the main revision the changes were made on.
	BaseRevision int64 `json:"base_revision"`
	// BaseFiles records, for each file of the gray that existed at
	// BaseRevision, the revision that had last written it there, so that
	// MainChanged can tell which of the gray's files main changed since.
	BaseFiles map[string]int64 `json:"base_files,omitempty"`
	// Changes are the gray's changes, in the order given; Store.Gray
	// returns them with content, Store.Grays without.
	Changes []Change `json:"changes"`
	// Selector chooses the cohort.
	Selector Selector  `json:"selector"`
	State    GrayState `json:"state"`
	// EndedRevision is the main revision a promote created.
	EndedRevision int64 `json:"ended_revision,omitempty"`
	// Ended is when the gray was promoted or abandoned (UTC).
	Ended time.Time `json:"ended,omitzero"`
	// EndReason says why it ended (a failed gate, an operator's word).
	EndReason string `json:"end_reason,omitempty"`
	// Rollout is the gray's progressive rollout, nil when none was started.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Version is 1 at creation and bumped by every change; UpdateGray and
	// EndGray compare-and-set on it.
	Version int64 `json:"version"`
	// MainChanged lists, for an active gray read from a store, the files
	// of the gray that main changed since BaseRevision (sorted): there, the
	// gray's version hides a newer main one. Not stored.
	MainChanged []string `json:"-"`
}

// GraySummary is what the head of a service or group carries about each
// ACTIVE gray (Head.Grays): enough for an SDK to decide membership and
// which files the gray holds, without content (the head stays small).
type GraySummary struct {
	ID string `json:"id"`
	// Files are the files the gray changes (writes or deletes), sorted.
	Files    []string `json:"files"`
	Selector Selector `json:"selector"`
	// Version is the gray's Version: it changes with every change of the
	// gray, so a watcher sees each one as a GraysChanged event.
	Version int64 `json:"version"`
}

// GrayEnd says how EndGray ends a gray.
type GrayEnd struct {
	// State is GrayPromoted or GrayAbandoned.
	State GrayState
	// Reason is recorded as the gray's EndReason.
	Reason string
	// Promote, required to promote (and only then), describes the main
	// revision the promote publishes: Base must be main's head revision
	// (ErrConflict otherwise, as for a publish); Author and Message are the
	// revision's (an empty message becomes "promote gray ID"). Its Changes
	// are ignored: the store publishes PromoteChanges of the gray.
	Promote *Changeset
}

// GrayConflictError refuses a gray on a file another active gray of the
// same service or group holds. It matches ErrConflict; the admin API
// answers 409 naming the file and the gray.
type GrayConflictError struct {
	File   string
	GrayID string
}

// Error names the file and the gray that holds it.
func (e *GrayConflictError) Error() string {
	return "file " + quote(e.File) + " is held by active gray " + e.GrayID + " (at most one active gray per file)"
}

// Is reports whether target is ErrConflict.
func (e *GrayConflictError) Is(target error) bool { return target == ErrConflict }

// grayIDHex is how many hex digits follow "g-" in a gray id.
const grayIDHex = 12

// NewGrayID returns a new random gray id: "g-" and 12 hex digits.
func NewGrayID() string {
	var b [grayIDHex / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "g-" + hex.EncodeToString(b[:])
}

// ValidateGrayID checks a gray id: "g-" and 12 lowercase hex digits. It
// returns a *FieldError on "gray" (ErrInvalid).
func ValidateGrayID(id string) error {
	bad := &FieldError{Field: "gray", Value: id, Msg: "must be a gray id: g- and 12 lowercase hex digits"}
	if len(id) != 2+grayIDHex || !strings.HasPrefix(id, "g-") {
		return bad
	}
	for _, c := range id[2:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return bad
		}
	}
	return nil
}

// Files returns the files g changes, sorted.
func (g *Gray) Files() []string {
	out := make([]string, len(g.Changes))
	for i, c := range g.Changes {
		out[i] = c.File
	}
	sort.Strings(out)
	return out
}

// Summary returns the head's summary of g.
func (g *Gray) Summary() GraySummary {
	return GraySummary{ID: g.ID, Files: g.Files(), Selector: cloneSelector(g.Selector), Version: g.Version}
}

// Changeset returns g's changes as a changeset on its base, as a publish
// of them would be: what a Validator checks when the gray is created.
func (g *Gray) Changeset() Changeset {
	return Changeset{Base: g.BaseRevision, Author: g.Author, Message: g.Message, Changes: g.Changes}
}

// Validate checks what the creator of a gray gives: the name (at most
// MaxGrayNameLen bytes of UTF-8 on one line), the message (at most
// MaxMessageLen bytes of UTF-8, no control characters but newline and
// tab), the changes as a changeset (Changeset.Validate: at least one,
// names, no file twice, MaxFileSize and MaxChangesetSize), a base of 0 or
// more, and the selector. It returns a *FieldError or *LimitError.
func (g *Gray) Validate() error {
	if len(g.Name) > MaxGrayNameLen {
		return &LimitError{What: "gray name", Size: int64(len(g.Name)), Limit: MaxGrayNameLen}
	}
	if !utf8.ValidString(g.Name) || strings.ContainsFunc(g.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &FieldError{Field: "name", Value: g.Name, Msg: "must be one line of UTF-8 text"}
	}
	if !utf8.ValidString(g.Message) || strings.ContainsFunc(g.Message, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return &FieldError{Field: "message", Value: g.Message, Msg: "must be UTF-8 text without control characters"}
	}
	cs := g.Changeset()
	if err := cs.Validate(); err != nil {
		return err
	}
	return g.Selector.Validate()
}

// NewGray returns g as CreateGray stores it on ref, whose head is head,
// at time now: validated (Gray.Validate; a Rollout is refused, a rollout
// is started on the created gray), on the head (ErrConflict unless
// g.BaseRevision is head.Revision), holding no file an active gray holds
// (*GrayConflictError), within MaxActiveGrays, deleting only files main
// has (ErrInvalid); with a new ID, Ref, BaseFiles, State active, Version 1
// and Created and Updated now in UTC. It also returns the head's new
// summaries. Both stores call it inside their atomic step.
func NewGray(ref Ref, g Gray, head Head, now time.Time) (Gray, []GraySummary, error) {
	if err := ref.Validate(); err != nil {
		return Gray{}, nil, err
	}
	if err := g.Validate(); err != nil {
		return Gray{}, nil, err
	}
	if g.Rollout != nil {
		return Gray{}, nil, &FieldError{Field: "rollout", Msg: "a gray is created without a rollout; start one on the created gray"}
	}
	if g.BaseRevision != head.Revision {
		return Gray{}, nil, fmt.Errorf("base revision %d is not the head %d: %w", g.BaseRevision, head.Revision, ErrConflict)
	}
	for _, f := range g.Files() {
		for _, s := range head.Grays {
			if slices.Contains(s.Files, f) {
				return Gray{}, nil, &GrayConflictError{File: f, GrayID: s.ID}
			}
		}
	}
	if len(head.Grays) >= MaxActiveGrays {
		return Gray{}, nil, &CountError{What: "active grays of " + ref.String(), Count: int64(len(head.Grays)), Limit: MaxActiveGrays}
	}
	if _, err := Apply(head.Files, &Revision{Changes: g.Changes}); err != nil {
		return Gray{}, nil, err
	}
	out := g.clone()
	out.ID, out.Ref, out.State, out.Version = NewGrayID(), ref, GrayActive, 1
	out.Created, out.Updated = now.UTC(), now.UTC()
	out.EndedRevision, out.Ended, out.EndReason, out.MainChanged = 0, time.Time{}, "", nil
	out.BaseFiles = nil
	for _, c := range g.Changes {
		if m, ok := head.Files[c.File]; ok {
			if out.BaseFiles == nil {
				out.BaseFiles = map[string]int64{}
			}
			out.BaseFiles[c.File] = m.Revision
		}
	}
	return out, WithGraySummary(head.Grays, out.Summary()), nil
}

// UpdatedGray returns g after fn changed a copy of it, as UpdateGray
// stores it at time now: g must be active (ErrConflict naming its state)
// and at version (ErrConflict); fn may change the Name, Message, Selector
// and Rollout (it may return an error, which is passed on); the selector
// and rollout must stay valid (ErrInvalid), every other field is the
// store's (changing one is ErrInvalid). Version is bumped and Updated set.
func UpdatedGray(g Gray, version int64, now time.Time, fn func(*Gray) error) (Gray, error) {
	if err := checkGrayCAS(&g, version); err != nil {
		return Gray{}, err
	}
	next := g.clone()
	if err := fn(&next); err != nil {
		return Gray{}, err
	}
	if f := changedStoreField(&g, &next); f != "" {
		return Gray{}, &FieldError{Field: f, Msg: "is set by the store; an update may change only name, message, selector and rollout"}
	}
	if len(next.Name) > MaxGrayNameLen {
		return Gray{}, &LimitError{What: "gray name", Size: int64(len(next.Name)), Limit: MaxGrayNameLen}
	}
	if len(next.Message) > MaxMessageLen {
		return Gray{}, &LimitError{What: "message", Size: int64(len(next.Message)), Limit: MaxMessageLen}
	}
	if err := next.Selector.Validate(); err != nil {
		return Gray{}, err
	}
	if next.Rollout != nil {
		if err := next.Rollout.Validate(); err != nil {
			return Gray{}, err
		}
		if err := next.Rollout.validateState(); err != nil {
			return Gray{}, err
		}
	}
	next.Version = g.Version + 1
	next.Updated = laterUTC(now, g.Updated)
	next.MainChanged = nil
	return next, nil
}

// EndedGray returns g ended by end at time now, as EndGray stores it: g
// must be active and at version (ErrConflict); end.State is GrayPromoted
// with end.Promote, or GrayAbandoned without (ErrInvalid otherwise).
// revision is the main revision a promote created (0 for an abandon). An
// active rollout ends with it: promoted, or aborted with end.Reason.
func EndedGray(g Gray, version int64, end GrayEnd, revision int64, now time.Time) (Gray, error) {
	if err := checkGrayEnd(end); err != nil {
		return Gray{}, err
	}
	if err := checkGrayCAS(&g, version); err != nil {
		return Gray{}, err
	}
	out := g.clone()
	out.State, out.EndReason, out.EndedRevision = end.State, end.Reason, revision
	out.Version = g.Version + 1
	out.Updated = laterUTC(now, g.Updated)
	out.Ended = out.Updated
	out.MainChanged = nil
	if out.Rollout.Active() {
		out.Rollout.State.State, out.Rollout.State.Since = RolloutAborted, out.Ended
		if end.State == GrayPromoted {
			out.Rollout.State.State = RolloutPromoted
		}
		if end.Reason != "" {
			out.Rollout.State.Reason = end.Reason
		} else {
			out.Rollout.State.Reason = "gray " + string(end.State) + " by hand"
		}
	}
	return out, nil
}

// checkGrayEnd checks the shape of end.
func checkGrayEnd(end GrayEnd) error {
	switch {
	case end.State == GrayPromoted && end.Promote == nil:
		return &FieldError{Field: "promote", Msg: "promoting a gray needs the revision to publish (GrayEnd.Promote)"}
	case end.State == GrayAbandoned && end.Promote != nil:
		return &FieldError{Field: "promote", Msg: "an abandoned gray publishes nothing"}
	case end.State != GrayPromoted && end.State != GrayAbandoned:
		return &FieldError{Field: "state", Value: string(end.State), Msg: "a gray ends promoted or abandoned"}
	}
	if len(end.Reason) > MaxMessageLen {
		return &LimitError{What: "end reason", Size: int64(len(end.Reason)), Limit: MaxMessageLen}
	}
	return nil
}

// checkGrayCAS refuses a change of g unless it is active and at version.
func checkGrayCAS(g *Gray, version int64) error {
	if g.State != GrayActive {
		return fmt.Errorf("gray %s is %s: %w", g.ID, g.State, ErrConflict)
	}
	if g.Version != version {
		return fmt.Errorf("gray %s is at version %d, not %d: %w", g.ID, g.Version, version, ErrConflict)
	}
	return nil
}

// PromoteChangeset returns the changeset a promote of g publishes on main
// at head, with end's author and message (default "promote gray ID:
// name"): PromoteChanges on head's manifest. ErrConflict when nothing is
// left to publish (main deleted every file the gray deletes, and it
// writes none).
func PromoteChangeset(g *Gray, head Head, end GrayEnd) (Changeset, error) {
	cs := Changeset{Base: head.Revision}
	if end.Promote != nil {
		cs.Author, cs.Message = end.Promote.Author, end.Promote.Message
	}
	if cs.Message == "" {
		cs.Message = "promote gray " + g.ID
		if g.Name != "" {
			cs.Message += ": " + g.Name
		}
	}
	cs.Changes = PromoteChanges(g, head.Files)
	if len(cs.Changes) == 0 {
		return Changeset{}, fmt.Errorf("gray %s: nothing to promote: main already deleted every file it deletes; abandon it: %w", g.ID, ErrConflict)
	}
	return cs, nil
}

// PromoteChanges returns the changes a promote of g publishes on top of
// main's manifest files: the gray's changes, in order, without the
// deletions of files main no longer has.
func PromoteChanges(g *Gray, files map[string]FileMeta) []Change {
	out := make([]Change, 0, len(g.Changes))
	for _, c := range g.Changes {
		if _, ok := files[c.File]; c.Delete && !ok {
			continue
		}
		out = append(out, c)
	}
	return out
}

// MainChangedIn returns the files of g that main's manifest files changed
// since g's base (written, added or deleted by a later revision), sorted;
// nil when none.
func (g *Gray) MainChangedIn(files map[string]FileMeta) []string {
	var out []string
	for _, f := range g.Files() {
		now := int64(0)
		if m, ok := files[f]; ok {
			now = m.Revision
		}
		if now != g.BaseFiles[f] {
			out = append(out, f)
		}
	}
	return out
}

// WithGraySummary returns list (not modified) with s added, or replacing
// the summary of the same id, sorted by id.
func WithGraySummary(list []GraySummary, s GraySummary) []GraySummary {
	out := WithoutGraySummary(list, s.ID)
	out = append(out, s)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// WithoutGraySummary returns list (not modified) without the summary of
// id; nil when none is left.
func WithoutGraySummary(list []GraySummary, id string) []GraySummary {
	var out []GraySummary
	for _, s := range list {
		if s.ID != id {
			out = append(out, s)
		}
	}
	return out
}

// SameGrays reports whether two summary lists name the same grays at the
// same versions: a watch sends GraysChanged when they differ.
func SameGrays(a, b []GraySummary) bool {
	return slices.EqualFunc(a, b, func(x, y GraySummary) bool { return x.ID == y.ID && x.Version == y.Version })
}

// SortGrays orders grays as Store.Grays lists them: active ones first,
// oldest first, then ended ones, newest first (ties by id).
func SortGrays(grays []Gray) {
	sort.Slice(grays, func(i, j int) bool {
		a, b := &grays[i], &grays[j]
		if (a.State == GrayActive) != (b.State == GrayActive) {
			return a.State == GrayActive
		}
		if a.State == GrayActive && !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		if a.State != GrayActive && !a.Ended.Equal(b.Ended) {
			return a.Ended.After(b.Ended)
		}
		return a.ID < b.ID
	})
}

// EndedBeyond returns the ids of the ended grays among grays that history
// drops: all but the newest MaxEndedGrays ended ones.
func EndedBeyond(grays []Gray) []string {
	sorted := slices.Clone(grays)
	SortGrays(sorted)
	var drop []string
	kept := 0
	for _, g := range sorted {
		if g.State == GrayActive {
			continue
		}
		if kept < MaxEndedGrays {
			kept++
			continue
		}
		drop = append(drop, g.ID)
	}
	return drop
}

// WithoutContent returns g with the content of its changes left out, as
// Store.Grays lists it.
func (g Gray) WithoutContent() Gray {
	out := g
	out.Changes = make([]Change, len(g.Changes))
	for i, c := range g.Changes {
		out.Changes[i] = Change{File: c.File, Delete: c.Delete}
	}
	return out
}

// clone returns a deep copy of g.
func (g Gray) clone() Gray {
	out := g
	out.Changes = make([]Change, len(g.Changes))
	for i, c := range g.Changes {
		out.Changes[i] = Change{File: c.File, Delete: c.Delete, Content: bytes.Clone(c.Content)}
	}
	out.BaseFiles = maps.Clone(g.BaseFiles)
	out.Selector = cloneSelector(g.Selector)
	out.MainChanged = slices.Clone(g.MainChanged)
	if g.Rollout != nil {
		r := *g.Rollout
		r.Steps = slices.Clone(r.Steps)
		if r.State.Failed != nil {
			f := *r.State.Failed
			f.Instances = slices.Clone(f.Instances)
			f.Figures = maps.Clone(f.Figures)
			r.State.Failed = &f
		}
		out.Rollout = &r
	}
	return out
}

func cloneSelector(s Selector) Selector {
	out := Selector{Instances: slices.Clone(s.Instances), Percent: s.Percent}
	if s.Labels != nil {
		out.Labels = make([]map[string]string, len(s.Labels))
		for i, m := range s.Labels {
			out.Labels[i] = maps.Clone(m)
		}
	}
	return out
}

// changedStoreField returns the JSON name of a field the store owns that
// differs between a and b ("" when none): everything but name, message,
// selector, rollout, version and the times the store sets.
func changedStoreField(a, b *Gray) string {
	switch {
	case a.ID != b.ID:
		return "id"
	case a.Ref != b.Ref:
		return "ref"
	case a.Author != b.Author:
		return "author"
	case !a.Created.Equal(b.Created):
		return "created"
	case a.BaseRevision != b.BaseRevision:
		return "base_revision"
	case !maps.Equal(a.BaseFiles, b.BaseFiles):
		return "base_files"
	case !slices.EqualFunc(a.Changes, b.Changes, func(x, y Change) bool {
		return x.File == y.File && x.Delete == y.Delete && bytes.Equal(x.Content, y.Content)
	}):
		return "changes"
	case a.State != b.State:
		return "state"
	case a.EndedRevision != b.EndedRevision, !a.Ended.Equal(b.Ended), a.EndReason != b.EndReason:
		return "ended"
	}
	return ""
}

// laterUTC returns now in UTC, or prev when now is before it: a gray's
// times never go backwards, whichever server's clock writes them.
func laterUTC(now, prev time.Time) time.Time {
	return RevisionTime(now, prev)
}
