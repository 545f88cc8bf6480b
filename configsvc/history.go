package configsvc

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Identity tells one revision from another that carries the same number.
// Revision numbers alone cannot: a store restored from a backup, or one
// that lost acknowledged writes, issues the numbers after its restored head
// again, for other content. Two parts tell them apart:
//
//   - Generation: a random id the store creates with itself and changes only
//     when its history is replaced on purpose (Store.BumpGeneration, run after
//     a restore or an import). Every head and revision read carries the
//     current one.
//   - PublishID: a random id every publish gives the revision it creates; a
//     revision also records the publish id of the revision before it
//     (Revision.Parent), so each revision names the history it belongs to.
//
// Within one generation a follower of the store never goes back to a lower
// revision; a head below what it holds is a store that has not caught up
// yet. When the generation differs, or a revision number it holds comes
// back with another publish id, the history was rewritten: the follower
// says so (ErrRewritten), reloads a Snapshot and takes it as a new state,
// whatever its number.
//
// An empty part is unknown (data written before identities existed, or a
// revision 0 that no publish created) and never counts as a difference.
type Identity struct {
	Generation string `json:"generation,omitempty"`
	PublishID  string `json:"publish_id,omitempty"`
}

// IsZero reports whether both parts are unknown.
func (id Identity) IsZero() bool { return id.Generation == "" && id.PublishID == "" }

// SameGeneration reports whether id and o are of one generation, or either
// generation is unknown.
func (id Identity) SameGeneration(o Identity) bool {
	return id.Generation == "" || o.Generation == "" || id.Generation == o.Generation
}

// Matches reports whether id and o may name the same revision: the same
// generation (SameGeneration) and the same publish id, each compared only
// when both are known.
func (id Identity) Matches(o Identity) bool {
	return id.SameGeneration(o) && (id.PublishID == "" || o.PublishID == "" || id.PublishID == o.PublishID)
}

// Follows reports whether r may come right after the revision identified
// by prev: of the same generation, and published on top of it (r.Parent is
// prev's publish id), each compared only when both are known.
func (r *Revision) Follows(prev Identity) bool {
	if !prev.SameGeneration(r.Identity()) {
		return false
	}
	return prev.PublishID == "" || r.Parent == "" || r.Parent == prev.PublishID
}

// StoreGeneration is a store's generation record (see Identity).
type StoreGeneration struct {
	// ID is the generation, a random hex id.
	ID string `json:"generation"`
	// Since is when the generation was created (with the store, or by a
	// bump), UTC.
	Since time.Time `json:"since"`
	// Previous is the generation it replaced; empty for the first.
	Previous string `json:"previous,omitempty"`
	// Reason is what the bump was given, e.g. "restored backup of 2027-01-03".
	Reason string `json:"reason,omitempty"`
}

// HistoryRewrite records that a follower (an SDK instance) found the
// history of a service or group rewritten and reloaded it: what it held,
// what it took instead, and when.
type HistoryRewrite struct {
	// Ref is "service/NAME" or "group/NAME".
	Ref string `json:"ref"`
	// From is the revision held before; To the revision reloaded (it may
	// be lower).
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Generation is the store generation reloaded; empty when unknown.
	Generation string    `json:"generation,omitempty"`
	At         time.Time `json:"at"`
}

// MaxGenerationReasonLen bounds StoreGeneration.Reason.
const MaxGenerationReasonLen = 500

// WatchOption modifies one Store.Watch (see Expect).
type WatchOption func(*WatchOptions)

// WatchOptions are the options of one Watch, as a store reads them with
// WatchOptionsOf.
type WatchOptions struct {
	// Expect is the identity of revision from as the caller holds it;
	// zero checks nothing.
	Expect Identity
}

// Expect makes a Watch check that revision from, as the caller holds it
// (id), is the store's: when the store's head has another generation, or
// once the store has revision from it carries another publish id, the
// watch sends one Event whose Err wraps ErrRewritten and closes. A head
// below from in the same generation is a store that has not caught up:
// the watch waits for it. Parts of id that are empty are not checked.
func Expect(id Identity) WatchOption {
	return func(o *WatchOptions) { o.Expect = id }
}

// WatchOptionsOf returns the options opts set.
func WatchOptionsOf(opts []WatchOption) WatchOptions {
	var o WatchOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// NewID returns n random bytes in hex: the stores' publish ids (8 bytes)
// and generations (8 bytes).
func NewID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
