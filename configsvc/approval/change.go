package approval

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// The states of a change request.
const (
	StateWriting = "writing" // being stored; never shown
	StateOpen    = "open"    // waiting for approvals, or to be applied
	StateApplied = "applied" // published as AppliedRevision
	StateExpired = "expired" // not applied before Expires
)

// The operations a change request carries out: a publish and a rollback
// publish their changeset on the main line; a gray creation creates a gray
// of its changeset (its id, name and selector in Params); a gray promotion
// publishes the changeset a promote of the gray in Params makes.
const (
	OpPublish     = "publish"
	OpRollback    = "rollback"
	OpGrayCreate  = "gray.create"
	OpGrayPromote = "gray.promote"
)

// The kinds of Event of a change request's thread.
const (
	EventSubmitted = "submitted"
	EventApproved  = "approved"
	EventDeclined  = "declined"
	EventRebased   = "rebased"
	EventApplied   = "applied"
	EventExpired   = "expired"
)

// FileChange names one file a change request changes.
type FileChange struct {
	File   string `json:"file"`
	Delete bool   `json:"delete,omitempty"`
	Size   int64  `json:"size"`
}

// ChangeRequest is a changeset waiting for approvals (its content is loaded
// with Changeset), as stored and as the API shows it.
type ChangeRequest struct {
	ID         string       `json:"id"`
	Kind       string       `json:"kind"` // "service" or "group"
	Name       string       `json:"name"`
	Operation  string       `json:"operation"` // OpPublish, OpRollback, OpGrayCreate or OpGrayPromote
	State      string       `json:"state"`
	Base       int64        `json:"base_revision"`
	RollbackOf int64        `json:"rollback_of,omitempty"`
	Author     string       `json:"author"`
	AuthorID   string       `json:"author_id"`
	Message    string       `json:"message"`
	Files      []FileChange `json:"files"`
	Rule       Rule         `json:"policy"`
	Created    time.Time    `json:"created"`
	Updated    time.Time    `json:"updated"`
	Expires    time.Time    `json:"expires"`
	// AppliedRevision is the revision the change became; AppliedBy who
	// applied it; Emergency the reason when an admin applied it without
	// the approvals.
	AppliedRevision int64  `json:"applied_revision,omitempty"`
	AppliedBy       string `json:"applied_by,omitempty"`
	Emergency       string `json:"emergency,omitempty"`
	// Params are the operation's own parameters beyond the changeset (a
	// gray release's selector), kept for whoever applies it; at most
	// MaxParams bytes of JSON.
	Params json.RawMessage `json:"params,omitempty"`
	// Approvals and Declines count the standing verdicts since the last
	// submission or rebase (filled by Get and List from the thread).
	Approvals int `json:"approvals"`
	Declines  int `json:"declines"`

	// Where the content is: generation and chunk count, and the
	// generation being written by a rebase (0: none).
	Gen     int `json:"gen"`
	Chunks  int `json:"chunks"`
	NextGen int `json:"next_gen,omitempty"`
}

// Ref returns the service or group the change request changes.
func (cr *ChangeRequest) Ref() configsvc.Ref {
	if cr.Kind == configsvc.KindGroup.String() {
		return configsvc.Group(cr.Name)
	}
	return configsvc.Service(cr.Name)
}

// Event is one step of a change request's thread.
type Event struct {
	Kind     string    `json:"kind"` // EventSubmitted …
	Actor    string    `json:"actor"`
	ActorID  string    `json:"actor_id"`
	Comment  string    `json:"comment,omitempty"`
	Time     time.Time `json:"time"`
	Revision int64     `json:"revision,omitempty"` // the base (submitted, rebased) or the revision applied
	seq      string
}

// Notice is the newest event of any change request of one service or
// group: what its event streams announce as "change" events.
type Notice struct {
	Seq    string `json:"seq"`
	ID     string `json:"id"`
	Event  string `json:"event"`
	State  string `json:"state"`
	Actor  string `json:"actor"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Policy string `json:"policy,omitempty"`
}

// chunkSize is the content each chunk record holds, under
// configsvc.MaxRecordSize.
const chunkSize = configsvc.MaxRecordSize - 1024

// wireChangeset is the stored form of a change request's content.
type wireChangeset struct {
	Changes []configsvc.Change `json:"changes"`
}

// newID returns a random change request id: 16 hex digits.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidateID checks a change request id as it appears in a path.
func ValidateID(id string) error {
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		return &configsvc.FieldError{Field: "change", Value: id, Msg: "must be a change request id: 16 hex digits"}
	}
	return nil
}

// Submission is what Submit stores.
type Submission struct {
	Ref       configsvc.Ref
	Operation string
	Changeset configsvc.Changeset // its Base is the head it applies to
	Rule      Rule
	Author    *access.Principal
	// Params are the operation's parameters beyond the changeset, stored
	// as ChangeRequest.Params (nil for a publish or rollback).
	Params json.RawMessage
}

// MaxParams bounds a change request's Params, in bytes: room for a gray's
// id, name and selector (at most configsvc.MaxSelectorSize encoded).
const MaxParams = 9 << 10

// Submit stores a new open change request and returns it. The changeset
// must have passed validation (configsvc.ValidatingStore.Check). It
// refuses more than MaxOpenChanges open requests (*configsvc.CountError).
func (g *Governance) Submit(ctx context.Context, s Submission) (ChangeRequest, error) {
	if len(s.Params) > MaxParams {
		return ChangeRequest{}, &configsvc.LimitError{What: "change request parameters", Size: int64(len(s.Params)), Limit: MaxParams}
	}
	all, err := g.all(ctx)
	if err != nil {
		return ChangeRequest{}, err
	}
	open := 0
	for _, cr := range all {
		if cr.State == StateOpen {
			open++
		}
	}
	if open >= MaxOpenChanges {
		return ChangeRequest{}, &configsvc.CountError{What: "open change requests", Count: int64(open), Limit: MaxOpenChanges}
	}
	now := g.now().UTC()
	cr := ChangeRequest{
		ID: newID(), Kind: s.Ref.Kind.String(), Name: s.Ref.Name, Operation: s.Operation, State: StateWriting,
		Base: s.Changeset.Base, RollbackOf: s.Changeset.RollbackOf, Author: s.Author.Name, AuthorID: s.Author.TokenID,
		Message: s.Changeset.Message, Files: summary(s.Changeset), Rule: s.Rule, Created: now, Updated: now,
		Expires: now.Add(s.Rule.Expiry), Gen: 1, Params: s.Params,
	}
	if s.Rule.Expiry <= 0 {
		cr.Expires = now.Add(DefaultExpiry)
	}
	chunks, err := encode(s.Changeset)
	if err != nil {
		return ChangeRequest{}, err
	}
	cr.Chunks = len(chunks)
	if err := g.put(ctx, cr); err != nil { // state writing: invisible, but Sweep finds it
		return ChangeRequest{}, err
	}
	if err := g.writeChunks(ctx, cr.ID, cr.Gen, chunks); err != nil {
		return ChangeRequest{}, err
	}
	cr.State = StateOpen
	if err := g.put(ctx, cr); err != nil {
		return ChangeRequest{}, err
	}
	if err := g.event(ctx, &cr, Event{Kind: EventSubmitted, Actor: cr.Author, ActorID: cr.AuthorID, Comment: cr.Message, Revision: cr.Base}); err != nil {
		return ChangeRequest{}, err
	}
	return cr, nil
}

func summary(cs configsvc.Changeset) []FileChange {
	out := make([]FileChange, len(cs.Changes))
	for i, c := range cs.Changes {
		out[i] = FileChange{File: c.File, Delete: c.Delete, Size: int64(len(c.Content))}
	}
	return out
}

// encode splits cs's changes into chunks of at most chunkSize bytes.
func encode(cs configsvc.Changeset) ([][]byte, error) {
	b, err := json.Marshal(wireChangeset{Changes: cs.Changes})
	if err != nil {
		return nil, fmt.Errorf("approval: encode changeset: %w", err)
	}
	var out [][]byte
	for len(b) > 0 {
		n := min(len(b), chunkSize)
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

func chunkID(id string, gen, n int) string {
	return id + "." + strconv.Itoa(gen) + "." + strconv.Itoa(n)
}

func (g *Governance) writeChunks(ctx context.Context, id string, gen int, chunks [][]byte) error {
	for n, c := range chunks {
		if err := g.records.Put(ctx, DataCollection(id), chunkID(id, gen, n), c); err != nil {
			return fmt.Errorf("approval: store change request %s: %w", id, err)
		}
	}
	return nil
}

// deleteChunks deletes the chunks of one generation: n = 0, 1 … until one
// is missing (chunks are written in order).
func (g *Governance) deleteChunks(ctx context.Context, id string, gen int) error {
	for n := 0; ; n++ {
		err := g.records.Delete(ctx, DataCollection(id), chunkID(id, gen, n))
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("approval: delete change request %s content: %w", id, err)
		}
	}
}

// Changeset returns the content of cr as the changeset that applies it:
// base, author, message and rollback origin from cr.
func (g *Governance) Changeset(ctx context.Context, cr ChangeRequest) (configsvc.Changeset, error) {
	var buf bytes.Buffer
	for n := 0; n < cr.Chunks; n++ {
		b, err := g.records.Get(ctx, DataCollection(cr.ID), chunkID(cr.ID, cr.Gen, n))
		if err != nil {
			return configsvc.Changeset{}, fmt.Errorf("approval: change request %s content, chunk %d: %w", cr.ID, n, err)
		}
		buf.Write(b)
	}
	var w wireChangeset
	if err := json.Unmarshal(buf.Bytes(), &w); err != nil {
		return configsvc.Changeset{}, fmt.Errorf("approval: change request %s content: %w", cr.ID, err)
	}
	return configsvc.Changeset{Base: cr.Base, Author: cr.Author, Message: cr.Message, Changes: w.Changes, RollbackOf: cr.RollbackOf}, nil
}

func (g *Governance) put(ctx context.Context, cr ChangeRequest) error {
	b, err := json.Marshal(cr)
	if err != nil {
		return err
	}
	if err := g.records.Put(ctx, ChangesCollection, cr.ID, b); err != nil {
		return fmt.Errorf("approval: store change request %s: %w", cr.ID, err)
	}
	return nil
}

// load reads a change request's record, whatever its state.
func (g *Governance) load(ctx context.Context, id string) (ChangeRequest, error) {
	b, err := g.records.Get(ctx, ChangesCollection, id)
	if err != nil {
		return ChangeRequest{}, fmt.Errorf("change request %s: %w", id, err)
	}
	var cr ChangeRequest
	if err := json.Unmarshal(b, &cr); err != nil {
		return ChangeRequest{}, fmt.Errorf("change request %s: %w", id, err)
	}
	return cr, nil
}

// Get returns an open, applied or expired change request of ref with its
// standing verdicts counted, and its thread. ErrNotFound when there is
// none (or it belongs to another service or group).
func (g *Governance) Get(ctx context.Context, ref configsvc.Ref, id string) (ChangeRequest, []Event, error) {
	cr, err := g.load(ctx, id)
	if err != nil {
		return ChangeRequest{}, nil, err
	}
	if cr.State == StateWriting || cr.Ref() != ref {
		return ChangeRequest{}, nil, fmt.Errorf("change request %s of %s: %w", id, ref, configsvc.ErrNotFound)
	}
	thread, err := g.Thread(ctx, id)
	if err != nil {
		return ChangeRequest{}, nil, err
	}
	g.tally(&cr, thread)
	return cr, thread, nil
}

// List returns the change requests of ref (all refs when ref.Name is ""),
// newest first; only open ones unless all is set.
func (g *Governance) List(ctx context.Context, ref configsvc.Ref, all bool) ([]ChangeRequest, error) {
	crs, err := g.all(ctx)
	if err != nil {
		return nil, err
	}
	out := []ChangeRequest{}
	for _, cr := range crs {
		if cr.State == StateWriting || ref.Name != "" && cr.Ref() != ref || !all && cr.State != StateOpen {
			continue
		}
		thread, err := g.Thread(ctx, cr.ID)
		if err != nil {
			return nil, err
		}
		g.tally(&cr, thread)
		out = append(out, cr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// all returns every stored change request, with open ones past their
// expiry shown expired.
func (g *Governance) all(ctx context.Context) ([]ChangeRequest, error) {
	recs, err := g.records.List(ctx, ChangesCollection)
	if err != nil {
		return nil, fmt.Errorf("approval: list change requests: %w", err)
	}
	out := make([]ChangeRequest, 0, len(recs))
	for _, r := range recs {
		var cr ChangeRequest
		if json.Unmarshal(r.Data, &cr) != nil {
			continue
		}
		g.expire(&cr)
		out = append(out, cr)
	}
	return out, nil
}

// expire shows an open change request past its expiry as expired.
func (g *Governance) expire(cr *ChangeRequest) {
	if cr.State == StateOpen && !g.now().Before(cr.Expires) {
		cr.State = StateExpired
	}
}

// tally counts the standing verdicts of cr since its last submission or
// rebase: each reviewer's newest approval or decline; the author's
// approval only when the rule lets it count.
func (g *Governance) tally(cr *ChangeRequest, thread []Event) {
	g.expire(cr)
	verdict := map[string]string{}
	for _, e := range thread {
		switch e.Kind {
		case EventSubmitted, EventRebased:
			verdict = map[string]string{}
		case EventApproved, EventDeclined:
			verdict[e.ActorID] = e.Kind
		}
	}
	cr.Approvals, cr.Declines = 0, 0
	for who, v := range verdict {
		switch {
		case v == EventDeclined:
			cr.Declines++
		case who != cr.AuthorID || cr.Rule.AuthorMayApprove:
			cr.Approvals++
		}
	}
}

// Thread returns the events of a change request, oldest first.
func (g *Governance) Thread(ctx context.Context, id string) ([]Event, error) {
	recs, err := g.records.List(ctx, EventCollection(id))
	if err != nil {
		return nil, fmt.Errorf("approval: change request %s thread: %w", id, err)
	}
	out := []Event{}
	for _, r := range recs {
		if !strings.HasPrefix(r.ID, id+".") {
			continue
		}
		var e Event
		if json.Unmarshal(r.Data, &e) == nil {
			e.seq = r.ID
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out, nil
}

// event appends e to cr's thread (at most MaxThread events) and
// publishes the notice of cr's service or group.
func (g *Governance) event(ctx context.Context, cr *ChangeRequest, e Event) error {
	e.Time = g.now().UTC()
	var r [2]byte
	_, _ = rand.Read(r[:])
	// Time orders events across servers; the counter orders the events
	// of this server that share a clock reading.
	seq := fmt.Sprintf("%020d%010d%s", e.Time.UnixNano(), g.seq.Add(1), hex.EncodeToString(r[:]))
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := g.records.Put(ctx, EventCollection(cr.ID), cr.ID+"."+seq, b); err != nil {
		return fmt.Errorf("approval: change request %s: %w", cr.ID, err)
	}
	n := Notice{Seq: seq, ID: cr.ID, Event: e.Kind, State: cr.State, Actor: e.Actor, Kind: cr.Kind, Name: cr.Name, Policy: strings.Join(cr.Rule.Policies, ",")}
	nb, _ := json.Marshal(n)
	if err := g.records.Put(ctx, NoticesCollection, noticeID(cr.Ref()), nb); err != nil {
		return fmt.Errorf("approval: change notice of %s: %w", cr.Ref(), err)
	}
	return nil
}

func noticeID(ref configsvc.Ref) string { return ref.Kind.String() + "." + ref.Name }

// Notice returns the newest change notice of ref; ErrNotFound when no
// change request of it ever had an event.
func (g *Governance) Notice(ctx context.Context, ref configsvc.Ref) (Notice, error) {
	b, err := g.records.Get(ctx, NoticesCollection, noticeID(ref))
	if err != nil {
		return Notice{}, err
	}
	var n Notice
	err = json.Unmarshal(b, &n)
	return n, err
}

// Review records p's verdict (EventApproved or EventDeclined) with a
// comment on an open change request of ref, after checking p may: an
// eligible approver under its rule, and not its author when the rule does
// not let the author approve (api.ErrForbidden-like refusals are returned
// as *Refusal). It returns the change request with the verdicts counted.
func (g *Governance) Review(ctx context.Context, ref configsvc.Ref, id string, p *access.Principal, verdict, comment string) (ChangeRequest, error) {
	if err := checkComment("comment", comment); err != nil {
		return ChangeRequest{}, err
	}
	cr, thread, err := g.Get(ctx, ref, id)
	if err != nil {
		return ChangeRequest{}, err
	}
	if cr.State != StateOpen {
		return ChangeRequest{}, fmt.Errorf("change request %s is %s: %w", id, cr.State, ErrNotOpen)
	}
	if ok, why := g.MayApprove(p, cr.Rule, ref); !ok {
		return ChangeRequest{}, &Refusal{Reason: why}
	}
	if verdict == EventApproved && p.TokenID == cr.AuthorID && !cr.Rule.AuthorMayApprove {
		return ChangeRequest{}, &Refusal{Reason: fmt.Sprintf("policy %s does not let the author approve their own change", strings.Join(cr.Rule.Policies, ", "))}
	}
	if len(thread) >= MaxThread {
		return ChangeRequest{}, &configsvc.CountError{What: "events of change request " + id, Count: int64(len(thread)), Limit: MaxThread}
	}
	e := Event{Kind: verdict, Actor: p.Name, ActorID: p.TokenID, Comment: comment}
	if err := g.event(ctx, &cr, e); err != nil {
		return ChangeRequest{}, err
	}
	e.seq = "~" // sorts after every stored event
	g.tally(&cr, append(thread, e))
	return cr, nil
}

// Refusal is a governance decision against the caller (HTTP 403): an
// ineligible reviewer, a self-approval a policy forbids, a rebase by
// someone other than the author.
type Refusal struct{ Reason string }

// Error returns the reason.
func (r *Refusal) Error() string { return r.Reason }

func checkComment(field, s string) error {
	if len(s) > MaxCommentLen {
		return &configsvc.LimitError{What: field, Size: int64(len(s)), Limit: MaxCommentLen}
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return &configsvc.FieldError{Field: field, Value: s, Msg: "must be text without control characters"}
	}
	return nil
}

// Ready returns why cr cannot be applied yet (a *Refusal-free reason as a
// conflict), or nil: it is open, has the approvals its rule needs, and no
// standing decline blocks it.
func Ready(cr ChangeRequest) error {
	switch {
	case cr.State != StateOpen:
		return fmt.Errorf("change request %s is %s: %w", cr.ID, cr.State, ErrNotOpen)
	case cr.Rule.DeclineBlocks && cr.Declines > 0:
		return fmt.Errorf("change request %s is declined (%d standing decline(s); policy %s lets a decline block): %w", cr.ID, cr.Declines, strings.Join(cr.Rule.Policies, ", "), configsvc.ErrConflict)
	case cr.Approvals < cr.Rule.Approvals:
		return fmt.Errorf("change request %s has %d of the %d approvals policy %s requires: %w", cr.ID, cr.Approvals, cr.Rule.Approvals, strings.Join(cr.Rule.Policies, ", "), configsvc.ErrConflict)
	}
	return nil
}

// MarkApplied records that cr was published as revision rev by p
// (emergency: the reason an admin gave to apply without the approvals).
func (g *Governance) MarkApplied(ctx context.Context, cr ChangeRequest, rev int64, p *access.Principal, emergency string) (ChangeRequest, error) {
	cr.State, cr.AppliedRevision, cr.AppliedBy, cr.Emergency, cr.Updated = StateApplied, rev, p.Name, emergency, g.now().UTC()
	if err := g.put(ctx, cr); err != nil {
		return ChangeRequest{}, err
	}
	return cr, g.event(ctx, &cr, Event{Kind: EventApplied, Actor: p.Name, ActorID: p.TokenID, Comment: emergency, Revision: rev})
}

// Rebase re-submits an open change request of ref on a new base with cs
// (the same changes, or new ones), keeping its thread; the verdicts given
// before count no more. Only its author may (a *Refusal otherwise). cs
// must have passed validation.
func (g *Governance) Rebase(ctx context.Context, ref configsvc.Ref, id string, p *access.Principal, cs configsvc.Changeset, rule Rule) (ChangeRequest, error) {
	cr, _, err := g.Get(ctx, ref, id)
	if err != nil {
		return ChangeRequest{}, err
	}
	if cr.State != StateOpen {
		return ChangeRequest{}, fmt.Errorf("change request %s is %s: %w", id, cr.State, ErrNotOpen)
	}
	if p.TokenID != cr.AuthorID {
		return ChangeRequest{}, &Refusal{Reason: "only the author of change request " + id + " may rebase it"}
	}
	chunks, err := encode(cs)
	if err != nil {
		return ChangeRequest{}, err
	}
	old := cr.Gen
	cr.NextGen = max(cr.Gen, cr.NextGen) + 1
	if err := g.put(ctx, cr); err != nil { // the new generation is known before it is written
		return ChangeRequest{}, err
	}
	if err := g.writeChunks(ctx, cr.ID, cr.NextGen, chunks); err != nil {
		return ChangeRequest{}, err
	}
	cr.Gen, cr.Chunks, cr.NextGen = cr.NextGen, len(chunks), 0
	cr.Base, cr.Files, cr.Updated = cs.Base, summary(cs), g.now().UTC()
	if len(rule.Policies) > 0 {
		cr.Rule = rule
	}
	if cs.Message != "" {
		cr.Message = cs.Message
	}
	if err := g.put(ctx, cr); err != nil {
		return ChangeRequest{}, err
	}
	_ = g.deleteChunks(ctx, cr.ID, old) // best effort: Sweep deletes what is left
	if err := g.event(ctx, &cr, Event{Kind: EventRebased, Actor: p.Name, ActorID: p.TokenID, Revision: cs.Base}); err != nil {
		return ChangeRequest{}, err
	}
	cr.Approvals, cr.Declines = 0, 0
	return cr, nil
}

// Sweep marks open change requests past their expiry expired (with an
// event), deletes those closed for longer than ClosedRetention with their
// content and thread, and deletes what an interrupted Submit left (state
// writing for over a minute). It returns how many it deleted.
func (g *Governance) Sweep(ctx context.Context) (int, error) {
	recs, err := g.records.List(ctx, ChangesCollection)
	if err != nil {
		return 0, err
	}
	now := g.now()
	deleted := 0
	for _, r := range recs {
		var cr ChangeRequest
		if json.Unmarshal(r.Data, &cr) != nil {
			continue
		}
		switch {
		case cr.State == StateOpen && !now.Before(cr.Expires):
			cr.State, cr.Updated = StateExpired, now.UTC()
			if err := g.put(ctx, cr); err != nil {
				return deleted, err
			}
			if err := g.event(ctx, &cr, Event{Kind: EventExpired, Actor: "sluice"}); err != nil {
				return deleted, err
			}
		case cr.State == StateWriting && now.Sub(cr.Updated) > time.Minute,
			(cr.State == StateApplied || cr.State == StateExpired) && now.Sub(cr.Updated) > ClosedRetention:
			if err := g.remove(ctx, cr); err != nil {
				return deleted, err
			}
			deleted++
		}
	}
	return deleted, nil
}

// remove deletes a change request: content of every generation, thread,
// then the record itself (so an interrupted remove is found again).
func (g *Governance) remove(ctx context.Context, cr ChangeRequest) error {
	for gen := 1; gen <= max(cr.Gen, cr.NextGen); gen++ {
		if err := g.deleteChunks(ctx, cr.ID, gen); err != nil {
			return err
		}
	}
	thread, err := g.Thread(ctx, cr.ID)
	if err != nil {
		return err
	}
	for _, e := range thread {
		if err := g.records.Delete(ctx, EventCollection(cr.ID), e.seq); err != nil && !isNotFound(err) {
			return err
		}
	}
	if err := g.records.Delete(ctx, ChangesCollection, cr.ID); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}
