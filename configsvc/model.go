package configsvc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Kind tells a service from a shared group. Both have files, revisions,
// history and watches; only services link to groups and have instances.
type Kind uint8

// The two kinds of Ref.
const (
	KindService Kind = iota + 1
	KindGroup
)

// String returns "service" or "group".
func (k Kind) String() string {
	switch k {
	case KindService:
		return "service"
	case KindGroup:
		return "group"
	}
	return "kind(" + itoa(int64(k)) + ")"
}

// Ref names a service or a shared group.
type Ref struct {
	Kind Kind
	Name string
}

// Service returns the Ref of a service.
func Service(name string) Ref { return Ref{Kind: KindService, Name: name} }

// Group returns the Ref of a shared group.
func Group(name string) Ref { return Ref{Kind: KindGroup, Name: name} }

// String returns "service/NAME" or "group/NAME".
func (r Ref) String() string { return r.Kind.String() + "/" + r.Name }

// Validate checks the kind and the name.
func (r Ref) Validate() error {
	switch r.Kind {
	case KindService:
		return ValidateServiceName(r.Name)
	case KindGroup:
		return ValidateGroupName(r.Name)
	}
	return &FieldError{Field: "kind", Value: r.Kind.String(), Msg: "must be service or group"}
}

// FileMeta describes one file in a head manifest or a revision manifest.
type FileMeta struct {
	Name     string `json:"name"`
	Revision int64  `json:"revision"` // the revision that last changed the file
	SHA256   string `json:"sha256"`   // hex
	Size     int64  `json:"size"`
	Format   Format `json:"format"`
}

// Head is the current state of a service or group: its newest revision and
// the manifest of its files at that revision. Revision 0 means created but
// never published.
type Head struct {
	Ref      Ref                 `json:"-"`
	Revision int64               `json:"revision"`
	Files    map[string]FileMeta `json:"files"`
	Links    []string            `json:"links,omitempty"` // services only: linked groups, sorted
	Updated  time.Time           `json:"updated"`         // time of the newest revision, or creation
	Author   string              `json:"author,omitempty"`
	// Generation is the store's generation (see Identity); PublishID the
	// publish id of revision Revision. Either is empty when the store kept
	// none (data written before they existed; PublishID at revision 0).
	Generation string `json:"generation,omitempty"`
	PublishID  string `json:"publish_id,omitempty"`
	// Grays summarizes the active grays, sorted by id (gray.go); nil when
	// none. A change of it reaches watchers as an Event with GraysChanged.
	Grays []GraySummary `json:"grays,omitempty"`
}

// Identity returns the identity of the head revision.
func (h *Head) Identity() Identity { return Identity{Generation: h.Generation, PublishID: h.PublishID} }

// Change is one file's change inside a changeset or revision: new content, or
// a deletion.
type Change struct {
	File    string `json:"file"`
	Content []byte `json:"content,omitempty"`
	Delete  bool   `json:"delete,omitempty"`
}

// Changeset is the input of a publish.
type Changeset struct {
	// Base is the revision the author edited. The publish fails with
	// ErrConflict unless Base is still the head revision.
	Base    int64
	Author  string
	Message string
	Changes []Change
	// RollbackOf records, for a rollback, the revision whose content is restored.
	RollbackOf int64
}

// Revision is one immutable revision. Changes carries content when it comes
// from Store.Revision or a watch Event; Store.Revisions leaves Content nil.
type Revision struct {
	Number     int64     `json:"revision"`
	Author     string    `json:"author"`
	Time       time.Time `json:"time"` // UTC
	Message    string    `json:"message"`
	Changes    []Change  `json:"changes"`
	RollbackOf int64     `json:"rollback_of,omitempty"`
	// PublishID is the random id the store gave the publish that created
	// the revision; Parent is the PublishID of the revision before it (the
	// one it was published on top of; empty for revision 1). Generation is
	// the store's generation when the revision was read. Together they
	// tell a revision from another one with the same number in a rewritten
	// history (see Identity). Each is empty when the store kept none.
	PublishID  string `json:"publish_id,omitempty"`
	Parent     string `json:"parent,omitempty"`
	Generation string `json:"generation,omitempty"`
}

// Identity returns the identity of the revision.
func (r *Revision) Identity() Identity {
	return Identity{Generation: r.Generation, PublishID: r.PublishID}
}

// Files returns the names of the files the revision changed.
func (r *Revision) Files() []string {
	names := make([]string, len(r.Changes))
	for i, c := range r.Changes {
		names[i] = c.File
	}
	return names
}

// Snapshot is the full content of a service or group at one revision.
type Snapshot struct {
	Ref      Ref
	Revision int64
	Files    map[string][]byte
	// Generation and PublishID identify revision Revision (see Identity);
	// empty when the store kept none.
	Generation string
	PublishID  string
}

// Identity returns the identity of the snapshot's revision.
func (s *Snapshot) Identity() Identity {
	return Identity{Generation: s.Generation, PublishID: s.PublishID}
}

// Checksum returns the hex SHA-256 of content, as stored in FileMeta.SHA256.
func Checksum(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// Validate checks a changeset's shape and limits: at least one change, at
// most MaxFilesPerChangeset, file names, no file twice, no content on a
// deletion, each file ≤ MaxFileSize, the total ≤ MaxChangesetSize, the
// message ≤ MaxMessageLen, a base of 0 or more. These cheap checks guard
// every store; content is not looked at here: a Validator checks it once,
// in the ValidatingStore every publish goes through.
func (cs *Changeset) Validate() error {
	if len(cs.Changes) == 0 {
		return &FieldError{Field: "changes", Msg: "must contain at least one change"}
	}
	if len(cs.Changes) > MaxFilesPerChangeset {
		return &LimitError{What: "changeset file count", Size: int64(len(cs.Changes)), Limit: MaxFilesPerChangeset, Unit: "files"}
	}
	if len(cs.Message) > MaxMessageLen {
		return &LimitError{What: "message", Size: int64(len(cs.Message)), Limit: MaxMessageLen}
	}
	if cs.Base < 0 {
		return &FieldError{Field: "base_revision", Value: itoa(cs.Base), Msg: "must be 0 or more"}
	}
	seen := make(map[string]bool, len(cs.Changes))
	var total int64
	for i, c := range cs.Changes {
		if err := ValidateFileName(c.File); err != nil {
			fe := err.(*FieldError)
			fe.Field = fmt.Sprintf("changes[%d].file", i)
			return fe
		}
		if seen[c.File] {
			return &FieldError{Field: fmt.Sprintf("changes[%d].file", i), Value: c.File, Msg: "appears twice in one changeset"}
		}
		seen[c.File] = true
		if c.Delete {
			if len(c.Content) > 0 {
				return &FieldError{Field: fmt.Sprintf("changes[%d]", i), Value: c.File, Msg: "a deletion carries no content"}
			}
			continue
		}
		if int64(len(c.Content)) > MaxFileSize {
			return &LimitError{What: fmt.Sprintf("file %q", c.File), Size: int64(len(c.Content)), Limit: MaxFileSize}
		}
		total += int64(len(c.Content))
	}
	if total > MaxChangesetSize {
		return &LimitError{What: "changeset", Size: total, Limit: MaxChangesetSize}
	}
	return nil
}

// ServiceBytes returns the total size of the files of a manifest once cs
// is applied to it: files cs writes count with their new content, files
// it deletes not at all.
func ServiceBytes(files map[string]FileMeta, cs Changeset) int64 {
	changed := make(map[string]bool, len(cs.Changes))
	var total int64
	for _, c := range cs.Changes {
		changed[c.File] = true
		if !c.Delete {
			total += int64(len(c.Content))
		}
	}
	for name, m := range files {
		if !changed[name] {
			total += m.Size
		}
	}
	return total
}

// CheckServiceBytes returns a *LimitError (ErrTooLarge) when publishing cs
// on top of the manifest files would leave ref holding more than limit
// bytes of content in total; limit ≤ 0 means no limit. A publish that does
// not grow the total is always allowed, so a service over a lowered limit
// can still shrink. Both stores get the same check because every publish
// path calls it before the store is asked to write.
func CheckServiceBytes(ref Ref, files map[string]FileMeta, cs Changeset, limit int64) error {
	if limit <= 0 {
		return nil
	}
	after := ServiceBytes(files, cs)
	if after <= limit {
		return nil
	}
	var before int64
	for _, m := range files {
		before += m.Size
	}
	if after <= before {
		return nil
	}
	return &LimitError{What: "total content of " + ref.String(), Size: after, Limit: limit}
}

// CheckServiceFiles returns a *LimitError (ErrTooLarge, 413 at the API)
// when a publish would leave ref holding more than MaxFilesPerService
// files: before is the count at the base, after the count once the
// changeset is applied. A publish that does not add files is always
// allowed. Both stores call it inside their publish (it is what keeps a
// ZooKeeper manifest listing under one packet), so it holds on every path.
func CheckServiceFiles(ref Ref, before, after int) error {
	if after <= MaxFilesPerService || after <= before {
		return nil
	}
	return &LimitError{What: "file count of " + ref.String(), Size: int64(after), Limit: MaxFilesPerService, Unit: "files"}
}

// Apply returns the manifest after applying rev's changes to files (which is
// not modified). Deleting a file that is not there is an ErrInvalid error
// naming it.
func Apply(files map[string]FileMeta, rev *Revision) (map[string]FileMeta, error) {
	out := make(map[string]FileMeta, len(files)+len(rev.Changes))
	for k, v := range files {
		out[k] = v
	}
	for _, c := range rev.Changes {
		if c.Delete {
			if _, ok := out[c.File]; !ok {
				return nil, &FieldError{Field: "file", Value: c.File, Msg: "cannot delete a file that does not exist"}
			}
			delete(out, c.File)
			continue
		}
		out[c.File] = FileMeta{
			Name: c.File, Revision: rev.Number, SHA256: Checksum(c.Content),
			Size: int64(len(c.Content)), Format: FormatOf(c.File),
		}
	}
	return out, nil
}

// InstanceStatus is what an instance did with the newest revision it saw.
type InstanceStatus string

// Instance statuses.
const (
	StatusStarting InstanceStatus = "starting"
	StatusApplied  InstanceStatus = "applied"
	StatusRejected InstanceStatus = "rejected"
)

// Instance is a running process of a service, registered ephemerally by the
// SDK: it disappears when the process dies or its registration is closed.
type Instance struct {
	Service string `json:"service"`
	// Owner is who registered the instance: for a registration through
	// the admin API the id of the token that made it (set by the server,
	// never taken from the request), which alone (or an admin) may refresh
	// or remove it. Empty for an SDK that registers straight in ZooKeeper
	// or bbolt. It is not a secret: token ids are listed to admins and
	// appear in the audit log.
	Owner    string            `json:"owner,omitempty"`
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Labels   map[string]string `json:"labels,omitempty"`
	Revision int64             `json:"revision"` // the revision applied
	Status   InstanceStatus    `json:"status"`
	// Rejected is the revision refused, with Error the reason, when Status is rejected.
	Rejected  int64     `json:"rejected_revision,omitempty"`
	Error     string    `json:"error,omitempty"`
	FromCache bool      `json:"from_cache,omitempty"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	// AppliedAt is when the instance applied Revision: the SDK sets it when
	// it applies a new revision of its service and keeps it across
	// refreshes, so it says since when the instance runs that revision
	// (Updated says when the record was last written). Zero, and absent
	// on the wire, until a revision is applied or for a registration that
	// does not report it.
	AppliedAt time.Time `json:"applied_at,omitzero"`
	// Generation is the store generation of the applied revision (see
	// Identity); empty when unknown.
	Generation string `json:"generation,omitempty"`
	// Rewritten, when set, records the last time the instance found the
	// store's history rewritten (a restore or import, or revision numbers
	// issued again) and reloaded its config as a new state.
	Rewritten *HistoryRewrite `json:"rewritten,omitempty"`
	// Grays is what the instance did about each gray it is in, by gray
	// id: applied, or rejected with the reason. The SDK fills it; the
	// cohort views and the rollout driver read it.
	Grays map[string]GrayStatus `json:"grays,omitempty"`
}

// Limits of an Instance, enforced by Instance.Validate.
const (
	// WeightLabel is the instance label the proxy's weighted balancer reads.
	WeightLabel = "weight"
	// MaxInstanceWeight bounds the WeightLabel value (and a route's
	// upstream weights): an integer from 0 to MaxInstanceWeight.
	MaxInstanceWeight = 1000
)

// Validate checks the service, the id, the address (see
// ValidateInstanceAddr), the label count, the "weight" label (an integer
// from 0 to MaxInstanceWeight) and the gray reports (at most
// MaxInstanceGrays, keyed by gray ids, with known statuses). Every store and the admin API call it, so an
// instance the proxy reads has passed it (unless written to ZooKeeper by
// hand: the proxy checks every connection again, see router.UpstreamPolicy).
// It returns a *FieldError or *LimitError (ErrInvalid).
func (in *Instance) Validate() error {
	if err := ValidateServiceName(in.Service); err != nil {
		return err
	}
	if err := ValidateInstanceID(in.ID); err != nil {
		return err
	}
	if err := ValidateInstanceAddr(in.Addr); err != nil {
		return err
	}
	if len(in.Labels) > MaxLabels {
		return &LimitError{What: "label count", Size: int64(len(in.Labels)), Limit: MaxLabels, Unit: "labels"}
	}
	if w, ok := in.Labels[WeightLabel]; ok {
		if _, ok := ParseWeight(w); !ok {
			return &FieldError{Field: "labels." + WeightLabel, Value: w, Msg: "must be an integer from 0 to " + itoa(MaxInstanceWeight)}
		}
	}
	return validateGrayStatuses(in.Grays)
}

// ParseWeight parses a "weight" label: decimal digits worth 0 to
// MaxInstanceWeight. ok is false for anything else.
func ParseWeight(s string) (w int, ok bool) {
	if s == "" || len(s) > 4 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		w = w*10 + int(s[i]-'0')
	}
	return w, w <= MaxInstanceWeight
}

// ValidateInstanceAddr checks an instance's address: empty (an instance the
// proxy does not route to), or HOST:PORT of at most MaxAddrLen
// bytes, where PORT is 1-65535 in decimal and HOST an IP address (IPv6 in
// brackets, without a zone) or a DNS name (labels of letters, digits, '-'
// and '_', the last not all digits). A scheme, path, user info, query or
// space is refused. It returns a *FieldError on "addr" (ErrInvalid).
func ValidateInstanceAddr(addr string) error {
	if addr == "" {
		return nil
	}
	const rule = "must be HOST:PORT: an IP address or DNS name, and a port from 1 to 65535 (no scheme, path or user info)"
	bad := &FieldError{Field: "addr", Value: addr, Msg: rule}
	if len(addr) > MaxAddrLen {
		return &FieldError{Field: "addr", Value: addr, Msg: "must be at most " + itoa(MaxAddrLen) + " bytes"}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !validPort(port) {
		return bad
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || (ip.Is6() && !strings.HasPrefix(addr, "[")) {
			return bad
		}
		return nil
	}
	if strings.HasPrefix(addr, "[") || !validDNSName(host) {
		return bad
	}
	return nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// validDNSName reports whether h is a DNS name: labels of 1-63 letters,
// digits, '-' and '_' not starting or ending with '-', at most 253 bytes, an
// optional final dot, and a last label that is not all digits (so that
// "127.1" or "2130706433", which some resolvers read as IP addresses, are
// refused rather than dialled as names).
func validDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// NormalizeInstance returns in with Started, Updated and AppliedAt in UTC,
// as every store keeps them (so they encode as RFC 3339 with "Z", whatever
// zone the client sent).
func NormalizeInstance(in Instance) Instance {
	in.Started, in.Updated, in.AppliedAt = in.Started.UTC(), in.Updated.UTC(), in.AppliedAt.UTC()
	return in
}

// Clone returns a deep copy of in: its Labels, Grays and Rewritten are its
// own, so that a store keeping it shares nothing with the caller, who may
// change its own copy after Register or Update.
func (in Instance) Clone() Instance {
	in.Labels = maps.Clone(in.Labels)
	in.Grays = maps.Clone(in.Grays)
	if in.Rewritten != nil {
		rw := *in.Rewritten
		in.Rewritten = &rw
	}
	return in
}

// RevisionTime returns the time a store records for a new revision on top
// of a head last updated at head: now in UTC, or head (in UTC) when now is
// before it — a clock stepped back, or a server whose clock is behind the
// one that published the head. So a service's revision times never
// decrease, whichever server publishes.
func RevisionTime(now, head time.Time) time.Time {
	now, head = now.UTC(), head.UTC()
	if now.Before(head) {
		return head
	}
	return now
}
