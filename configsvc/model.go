package configsvc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
}

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
		return &LimitError{What: "changeset file count", Size: int64(len(cs.Changes)), Limit: MaxFilesPerChangeset}
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
	Service  string            `json:"service"`
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
}

// Validate checks the service, id, address and label count.
func (in *Instance) Validate() error {
	if err := ValidateServiceName(in.Service); err != nil {
		return err
	}
	if err := ValidateInstanceID(in.ID); err != nil {
		return err
	}
	if len(in.Addr) > MaxAddrLen {
		return &FieldError{Field: "addr", Value: in.Addr, Msg: "must be at most " + itoa(MaxAddrLen) + " bytes"}
	}
	if len(in.Labels) > MaxLabels {
		return &LimitError{What: "label count", Size: int64(len(in.Labels)), Limit: MaxLabels}
	}
	return nil
}
