package access

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Outcomes of an audited request.
const (
	OutcomeAllowed = "allowed" // the caller was authorized (the request may still have failed; see Status)
	OutcomeRefused = "refused" // the caller was not authenticated or not authorized
)

// DefaultAuditKeep is how many audit entries are retained when NewAudit is
// given 0.
const DefaultAuditKeep = configsvc.DefaultAppendKeep

// RefusalsCollection is the append-only collection of sampled refusals
// (RefusalSampler), kept apart from AuditCollection with its own
// retention, RefusalKeep, so that however many requests are refused, no
// entry of an allowed request is pushed out of the audit log.
const RefusalsCollection = "audit-refusals"

// RefusalKeep is how many sampled refusals are retained.
const RefusalKeep = 10000

// MaxAuditLimit bounds one audit query; DefaultAuditLimit is its size
// when Query.Limit is 0.
const (
	MaxAuditLimit     = configsvc.MaxPageSize
	DefaultAuditLimit = 100
)

// The audit actions of console sessions: sign-in and sign-out. A query
// leaves them out unless it asks for them (Query.Sessions, or an Action
// that matches them).
const (
	ActionSessionOpen  = "session.open"
	ActionSessionClose = "session.close"
)

// Entry is one audit log entry: one mutating request, allowed or refused.
type Entry struct {
	Seq       int64     `json:"seq"` // set by the store; ignored on Record
	Time      time.Time `json:"time"`
	ActorID   string    `json:"actor_id,omitempty"` // token id; empty when unauthenticated
	Actor     string    `json:"actor"`              // token name, or "anonymous"
	Action    string    `json:"action"`             // e.g. "publish", "token.create"
	Target    string    `json:"target"`             // e.g. "service/orders", "service/orders/db.yaml", "token/ab12…"
	Service   string    `json:"service,omitempty"`  // the service or group name the target belongs to, for queries
	Revision  int64     `json:"revision,omitempty"` // the revision the request produced
	Outcome   string    `json:"outcome"`            // OutcomeAllowed or OutcomeRefused
	Status    int       `json:"status"`             // HTTP status of the response
	Reason    string    `json:"reason,omitempty"`   // why it was refused or failed
	Client    string    `json:"client"`             // client address (proxy headers only from trusted proxies)
	RequestID string    `json:"request_id"`
	// Emergency is the reason an admin gave to make a change past an
	// approval policy (X-Sluice-Emergency); empty for other requests.
	Emergency string `json:"emergency,omitempty"`
	// Sampled marks an entry of RefusalsCollection: refused requests are
	// sampled (RefusalSampler), and such an entry stands for Count of them
	// from its Client and actor, the last of which it describes.
	Sampled bool  `json:"sampled,omitempty"`
	Count   int64 `json:"count,omitempty"`
}

// Query selects audit entries. Zero fields do not filter, but for
// Sessions: console sign-ins and sign-outs are left out unless Sessions is
// set or Action is given (it then decides alone).
type Query struct {
	Service string // entries whose Service is this name
	Actor   string // entries whose ActorID or Actor equals this
	// Action keeps entries whose Action is this name ("publish") or
	// matches this glob ("token.*", matched like a grant pattern).
	Action string
	// Outcome keeps entries of this outcome: OutcomeAllowed or
	// OutcomeRefused.
	Outcome string
	// Sessions keeps the entries of console sign-ins and sign-outs
	// (ActionSessionOpen, ActionSessionClose) beside the others.
	Sessions bool
	Since    time.Time // entries at or after this time
	Before   int64     // entries of the audit log with Seq < Before (paging); 0 = from the newest
	// BeforeSampled pages the sampled refusals (their own sequence): those
	// with Seq < BeforeSampled; 0 = from the newest. A page's next cursor
	// is, for each sequence, the lowest Seq of its entries on the page (or
	// the same cursor when the page has none).
	BeforeSampled int64
	Limit         int // 1..MaxAuditLimit; 0 means DefaultAuditLimit
}

// Audit appends entries to and queries the "audit" collection of a
// RecordStore. It is safe for concurrent use; every server on one store
// appends to the same log, numbered by the store.
type Audit struct {
	records configsvc.RecordStore
	keep    int
}

// NewAudit returns an Audit on records retaining the newest keep entries
// (DefaultAuditKeep when 0).
func NewAudit(records configsvc.RecordStore, keep int) *Audit {
	if keep <= 0 {
		keep = DefaultAuditKeep
	}
	return &Audit{records: records, keep: keep}
}

// Record appends e and returns its sequence number.
func (a *Audit) Record(ctx context.Context, e Entry) (int64, error) {
	e.Seq = 0
	e.Time = e.Time.UTC()
	data, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("access: encode audit entry: %w", err)
	}
	seq, err := a.records.Append(ctx, AuditCollection, data, a.keep)
	if err != nil {
		return 0, fmt.Errorf("access: append audit entry: %w", err)
	}
	return seq, nil
}

// Query returns matching entries newest first: those of the audit log and
// the sampled refusals (Entry.Sampled), merged by time. It reads each
// collection backwards page by page and stops at q.Limit matches, at the
// first entry older than q.Since, or after scanning the whole retained
// log. A Limit outside 0..MaxAuditLimit is a *configsvc.FieldError.
func (a *Audit) Query(ctx context.Context, q Query) ([]Entry, error) {
	if q.Limit < 0 || q.Limit > MaxAuditLimit {
		return nil, &configsvc.FieldError{Field: "limit", Value: strconv.Itoa(q.Limit), Msg: fmt.Sprintf("must be between 1 and %d", MaxAuditLimit)}
	}
	if q.Limit == 0 {
		q.Limit = DefaultAuditLimit
	}
	main, err := a.scan(ctx, AuditCollection, q.Before, a.keep, q)
	if err != nil {
		return nil, err
	}
	sampled, err := a.scan(ctx, RefusalsCollection, q.BeforeSampled, RefusalKeep, q)
	if err != nil {
		return nil, err
	}
	for i := range sampled {
		sampled[i].Sampled = true
	}
	// Merge the two newest-first lists; each keeps its own order, so the
	// page holds a prefix of each and the cursors stay exact.
	out := make([]Entry, 0, min(q.Limit, len(main)+len(sampled)))
	for len(out) < q.Limit && (len(main) > 0 || len(sampled) > 0) {
		if len(sampled) == 0 || len(main) > 0 && !main[0].Time.Before(sampled[0].Time) {
			out, main = append(out, main[0]), main[1:]
		} else {
			out, sampled = append(out, sampled[0]), sampled[1:]
		}
	}
	return out, nil
}

// scan returns up to q.Limit entries of collection matching q with Seq <
// before, newest first, reading at most keep entries.
func (a *Audit) scan(ctx context.Context, collection string, before int64, keep int, q Query) ([]Entry, error) {
	const page = 500
	out := []Entry{}
	for scanned := 0; scanned <= keep; {
		recs, err := a.records.Scan(ctx, collection, before, page)
		if err != nil {
			return nil, fmt.Errorf("access: query %s: %w", collection, err)
		}
		for _, r := range recs {
			seq, err := strconv.ParseInt(r.ID, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("access: %s entry id %q: %w", collection, r.ID, configsvc.ErrInvalid)
			}
			before = seq
			var e Entry
			if err := json.Unmarshal(r.Data, &e); err != nil {
				continue // an unreadable entry is skipped, not fatal to the query
			}
			e.Seq = seq
			if !q.Since.IsZero() && e.Time.Before(q.Since) {
				return out, nil
			}
			if q.Service != "" && e.Service != q.Service {
				continue
			}
			if q.Actor != "" && e.ActorID != q.Actor && e.Actor != q.Actor || !q.keeps(&e) {
				continue
			}
			out = append(out, e)
			if len(out) == q.Limit {
				return out, nil
			}
		}
		scanned += len(recs)
		if len(recs) < page || before <= 1 {
			break
		}
	}
	return out, nil
}

// keeps applies the Action, Outcome and Sessions filters to e.
func (q *Query) keeps(e *Entry) bool {
	switch {
	case q.Action != "" && !configsvc.MatchGlob(q.Action, e.Action):
		return false
	case q.Action == "" && !q.Sessions && (e.Action == ActionSessionOpen || e.Action == ActionSessionClose):
		return false
	case q.Outcome != "" && e.Outcome != q.Outcome:
		return false
	}
	return true
}

// NextPage returns the query of the page after page, the answer of q: the
// same filters with Before and BeforeSampled below the lowest sequence of
// each kind of entry on page (a kind the page has none of stays where it
// was). ok is false when page is the last one: it holds fewer than the
// limit.
func (q Query) NextPage(page []Entry) (next Query, ok bool) {
	limit := q.Limit
	if limit == 0 {
		limit = DefaultAuditLimit
	}
	if len(page) < limit {
		return q, false
	}
	for _, e := range page {
		if e.Sampled {
			if q.BeforeSampled == 0 || e.Seq < q.BeforeSampled {
				q.BeforeSampled = e.Seq
			}
		} else if q.Before == 0 || e.Seq < q.Before {
			q.Before = e.Seq
		}
	}
	return q, true
}
