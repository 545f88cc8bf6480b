package configsvc

import (
	"context"
	"errors"
)

// Reader is the read side of a Store: what a Validator may consult, e.g.
// the head manifest or a file that the published content is checked
// against. Every Store is a Reader.
type Reader interface {
	// Head is Store.Head.
	Head(ctx context.Context, ref Ref) (Head, error)
	// File is Store.File.
	File(ctx context.Context, ref Ref, name string, rev int64) ([]byte, FileMeta, error)
	// Snapshot is Store.Snapshot.
	Snapshot(ctx context.Context, ref Ref, rev int64) (Snapshot, error)
}

// Validator checks the content of a publish before it is written. Content
// is validated once, by the ValidatingStore every publish goes through; the
// stores themselves check only a changeset's shape (Changeset.Validate).
type Validator interface {
	// Validate returns nil when cs may be published to ref, or why not:
	// content that does not parse is a *ParseError, a value its schema
	// refuses a *FieldError (both ErrInvalid). cs has passed
	// Changeset.Validate. store is the store being published to, for
	// validators that read the head or other files; a Validator never
	// writes. Validate must be safe for concurrent use.
	Validate(ctx context.Context, store Reader, ref Ref, cs Changeset) error
}

// ValidatorFunc adapts a function to a Validator.
type ValidatorFunc func(ctx context.Context, store Reader, ref Ref, cs Changeset) error

// Validate calls f.
func (f ValidatorFunc) Validate(ctx context.Context, store Reader, ref Ref, cs Changeset) error {
	return f(ctx, store, ref, cs)
}

// EachFile returns a Validator that calls check on every file cs writes
// (deletions are skipped), in order, and returns the first error.
func EachFile(check func(ref Ref, file string, content []byte) error) Validator {
	return ValidatorFunc(func(_ context.Context, _ Reader, ref Ref, cs Changeset) error {
		for _, c := range cs.Changes {
			if c.Delete {
				continue
			}
			if err := check(ref, c.File, c.Content); err != nil {
				return err
			}
		}
		return nil
	})
}

// Validators returns a Validator that runs vs in order and returns the
// first error. Nil entries are skipped.
func Validators(vs ...Validator) Validator {
	return ValidatorFunc(func(ctx context.Context, store Reader, ref Ref, cs Changeset) error {
		for _, v := range vs {
			if v == nil {
				continue
			}
			if err := v.Validate(ctx, store, ref, cs); err != nil {
				return err
			}
		}
		return nil
	})
}

// ContentError is content refused by a Validator: it wraps the validator's
// *ParseError or *FieldError, so it matches ErrInvalid, and its message is
// the wrapped one. The admin API answers it 422, where a malformed request
// (a bad file name, an empty changeset) is a 400.
type ContentError struct {
	Err error
}

// Error returns the wrapped error's message.
func (e *ContentError) Error() string { return e.Err.Error() }

// Unwrap returns the validator's error.
func (e *ContentError) Unwrap() error { return e.Err }

// ValidatingStore is a Store whose Publish validates the changeset once,
// then lets the store write it, and likewise CreateGray a gray's changes
// and EndGray a promote's. Every publishing path goes through one:
// the admin API, rollback (Rollback calls Publish), grays and in-process tools;
// the sluice command wraps every store it opens. The other methods are the
// wrapped Store's. It is safe for concurrent use when the Store and the
// Validator are.
type ValidatingStore struct {
	Store
	validator Validator
}

var _ Store = (*ValidatingStore)(nil)

// Validating returns st with content validation by v in front of Publish.
// A nil v checks only the changeset's shape.
func Validating(st Store, v Validator) *ValidatingStore {
	return &ValidatingStore{Store: st, validator: v}
}

// Check validates a publish of cs to ref without writing anything (a dry
// run): ref's name, cs's shape and limits (ErrInvalid, ErrTooLarge), then
// its content with the Validator, whose refusal is returned as a
// *ContentError. Other errors of the Validator (a store it could not read)
// are returned as they are.
func (s *ValidatingStore) Check(ctx context.Context, ref Ref, cs Changeset) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	if err := cs.Validate(); err != nil {
		return err
	}
	return s.validate(ctx, ref, cs)
}

// validate runs the Validator on cs, which passed Changeset.Validate,
// wrapping a refusal in a *ContentError.
func (s *ValidatingStore) validate(ctx context.Context, ref Ref, cs Changeset) error {
	if s.validator == nil {
		return nil
	}
	// The Validator sees secret files (IsSecretFile) in plaintext: formats
	// and schemas are checked on the value, before it is encrypted.
	err := hideSecretValues(s.validator.Validate(WithSecretViewAll(ctx, SecretPlaintext), s.Store, ref, cs))
	if err != nil && errors.Is(err, ErrInvalid) {
		return &ContentError{Err: err}
	}
	return err
}

// Publish runs Check, then the wrapped Store's Publish; see Store.Publish.
func (s *ValidatingStore) Publish(ctx context.Context, ref Ref, cs Changeset) (Revision, error) {
	if err := s.Check(ctx, ref, cs); err != nil {
		return Revision{}, err
	}
	return s.Store.Publish(ctx, ref, cs)
}

// CheckGray validates the creation of gray g on ref without writing
// anything (a dry run): ref, g's shape and limits (Gray.Validate), then
// the content of its changes with the Validator, as a publish of them on
// main at g.BaseRevision: the Validator sees the tree main + the gray.
// Errors as Check.
func (s *ValidatingStore) CheckGray(ctx context.Context, ref Ref, g Gray) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	if err := g.Validate(); err != nil {
		return err
	}
	return s.validate(ctx, ref, g.Changeset())
}

// CreateGray runs CheckGray, then the wrapped Store's CreateGray; see
// Store.CreateGray.
func (s *ValidatingStore) CreateGray(ctx context.Context, ref Ref, g Gray) (Gray, error) {
	if err := s.CheckGray(ctx, ref, g); err != nil {
		return Gray{}, err
	}
	return s.Store.CreateGray(ctx, ref, g)
}

// CheckPromote returns the changeset a promote of the active gray id of
// ref at version would publish now (PromoteChangeset on the current head,
// with end.Promote's author and message), validated as a publish of it
// would be; nothing is written (a dry run). ErrConflict when the gray
// ended, is at another version or has nothing left to promote; the
// Validator's refusal as a *ContentError.
func (s *ValidatingStore) CheckPromote(ctx context.Context, ref Ref, id string, version int64, end GrayEnd) (Changeset, error) {
	// One head for both changesets: what is returned must be what was
	// validated, on the same base, though main may move meanwhile (the
	// write then conflicts and EndGray validates again).
	head, err := s.Store.Head(ctx, ref)
	if err != nil {
		return Changeset{}, err
	}
	cs, err := s.promoteChangeset(WithSecretViewAll(ctx, SecretPlaintext), ref, id, version, end, head)
	if err != nil {
		return Changeset{}, err
	}
	if err := s.validate(ctx, ref, cs); err != nil {
		return Changeset{}, err
	}
	// What is returned shows secret files as ctx asks, never the plaintext
	// the validation read.
	return s.promoteChangeset(ctx, ref, id, version, end, head)
}

// promoteChangeset returns the changeset a promote on head would publish,
// its secret files read as ctx's view asks.
func (s *ValidatingStore) promoteChangeset(ctx context.Context, ref Ref, id string, version int64, end GrayEnd, head Head) (Changeset, error) {
	g, err := s.Store.Gray(ctx, ref, id)
	if err != nil {
		return Changeset{}, err
	}
	if err := checkGrayCAS(&g, version); err != nil {
		return Changeset{}, err
	}
	cs, err := PromoteChangeset(&g, head, end)
	if err != nil {
		return Changeset{}, err
	}
	if err := cs.Validate(); err != nil {
		return Changeset{}, err
	}
	return cs, nil
}

// maxPromoteAttempts bounds how often EndGray validates a promote again
// because main moved between the validation and the write.
const maxPromoteAttempts = 4

// EndGray ends a gray; see Store.EndGray. A promote is validated first,
// exactly as a publish of its changeset (CheckPromote), and published on
// the head it was validated against; when main moved in between, it is
// validated again on the new head. An abandon is passed on as it is.
func (s *ValidatingStore) EndGray(ctx context.Context, ref Ref, id string, version int64, end GrayEnd) (Gray, *Revision, error) {
	if end.State != GrayPromoted || end.Promote == nil {
		return s.Store.EndGray(ctx, ref, id, version, end)
	}
	for attempt := 1; ; attempt++ {
		cs, err := s.CheckPromote(ctx, ref, id, version, end)
		if err != nil {
			return Gray{}, nil, err
		}
		e := end
		e.Promote = &cs
		g, rev, err := s.Store.EndGray(ctx, ref, id, version, e)
		if errors.Is(err, ErrConflict) && attempt < maxPromoteAttempts {
			if h, herr := s.Store.Head(ctx, ref); herr == nil && h.Revision != cs.Base {
				continue // main moved on: validate on the new head
			}
		}
		return g, rev, err
	}
}

// hideSecretValues rewrites a refusal of a secret file (IsSecretFile) so
// that it keeps the file, the position and the rule but not the words of
// the parser or the schema, which may quote the value: the refusal reaches
// the API answer, the request log and the audit entry.
func hideSecretValues(err error) error {
	var pe *ParseError
	if errors.As(err, &pe) && IsSecretFile(pe.File) {
		cp := *pe
		cp.Msg = "does not parse (details hidden: secret file)"
		return &cp
	}
	var se *SchemaError
	if errors.As(err, &se) {
		cp := *se
		cp.Violations = append([]Violation(nil), se.Violations...)
		hidden := false
		for i := range cp.Violations {
			if IsSecretFile(cp.Violations[i].File) {
				cp.Violations[i].Message = "refused by the schema (details hidden: secret file)"
				hidden = true
			}
		}
		if hidden {
			return &cp
		}
	}
	return err
}

// Unwrap returns the Store without validation, for callers that need what
// only the backend offers (a type assertion on an optional interface).
func (s *ValidatingStore) Unwrap() Store { return s.Store }

// ServiceBytesValidator returns a Validator that refuses, with a
// *LimitError (ErrTooLarge, 413 at the API), a publish that would leave
// ref holding more than limit bytes of content (CheckServiceBytes: a
// publish that does not grow an oversized service passes). It reads ref's
// head through the store view. limit ≤ 0 checks nothing.
func ServiceBytesValidator(limit int64) Validator {
	return ValidatorFunc(func(ctx context.Context, store Reader, ref Ref, cs Changeset) error {
		if limit <= 0 {
			return nil
		}
		h, err := store.Head(ctx, ref)
		if err != nil {
			return err
		}
		return CheckServiceBytes(ref, h.Files, cs, limit)
	})
}
