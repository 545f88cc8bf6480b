package schema

import (
	"context"
	"fmt"
	"sort"

	"github.com/sluicehq/sluice/configsvc"
)

var _ configsvc.Validator = (*Validator)(nil)

// Validator is the configsvc.Validator of JSON Schemas: a publish is
// checked against the schema files of the head it would leave. A file the
// publish writes is validated against its schema (which may come from the
// same changeset); a publish that writes or deletes a schema file compiles
// every schema file of the new head and validates every file they govern.
// Its refusal is a *configsvc.SchemaError listing every violation (at most
// configsvc.MaxViolations). It is safe for concurrent use.
type Validator struct {
	checker *Checker
}

// NewValidator returns a Validator with a Checker of DefaultCacheSize.
func NewValidator() *Validator { return &Validator{checker: NewChecker(0)} }

// Validate implements configsvc.Validator. It reads ref's head manifest,
// and the content of the files it validates that cs does not write.
func (v *Validator) Validate(ctx context.Context, store configsvc.Reader, ref configsvc.Ref, cs configsvc.Changeset) error {
	schemaChanged, written := false, false
	for _, c := range cs.Changes {
		schemaChanged = schemaChanged || IsSchema(c.File)
		written = written || !c.Delete
	}
	if !schemaChanged && !written {
		return nil // deletions of governed files only
	}
	head, err := store.Head(ctx, ref)
	if err != nil {
		return err
	}
	tree := NewPublishTree(store, ref, head, cs)
	var names []string
	if schemaChanged {
		names = tree.Files()
	} else {
		for _, c := range cs.Changes {
			if !c.Delete && tree.Has(For(c.File)) {
				names = append(names, c.File)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	vs, err := v.checker.Check(ctx, tree, names)
	if err != nil {
		return fmt.Errorf("schema: %s: %w", ref, err)
	}
	return Refusal(vs)
}

// Refusal returns nil for no violations, else the *configsvc.SchemaError
// listing at most configsvc.MaxViolations of them.
func Refusal(vs []configsvc.Violation) error {
	if len(vs) == 0 {
		return nil
	}
	e := &configsvc.SchemaError{Violations: vs}
	if len(vs) > configsvc.MaxViolations {
		e.Violations, e.Omitted = vs[:configsvc.MaxViolations], len(vs)-configsvc.MaxViolations
	}
	return e
}

// PublishTree is the tree a publish would leave: a head manifest with a
// changeset applied. Unchanged files are read from the store at the head's
// revision.
type PublishTree struct {
	store   configsvc.Reader
	ref     configsvc.Ref
	head    configsvc.Head
	changes map[string]configsvc.Change
	sums    map[string]string
}

var _ Tree = (*PublishTree)(nil)

// NewPublishTree returns the tree of ref once cs is applied to head.
func NewPublishTree(store configsvc.Reader, ref configsvc.Ref, head configsvc.Head, cs configsvc.Changeset) *PublishTree {
	t := &PublishTree{store: store, ref: ref, head: head, changes: make(map[string]configsvc.Change, len(cs.Changes)), sums: map[string]string{}}
	for _, c := range cs.Changes {
		t.changes[c.File] = c
	}
	return t
}

// Files returns the file names of the new head, sorted.
func (t *PublishTree) Files() []string {
	var out []string
	for name := range t.head.Files {
		if _, changed := t.changes[name]; !changed {
			out = append(out, name)
		}
	}
	for name, c := range t.changes {
		if !c.Delete {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Has reports whether the new head holds name.
func (t *PublishTree) Has(name string) bool {
	if c, ok := t.changes[name]; ok {
		return !c.Delete
	}
	_, ok := t.head.Files[name]
	return ok
}

// Read returns name's content at the new head.
func (t *PublishTree) Read(ctx context.Context, name string) ([]byte, error) {
	if c, ok := t.changes[name]; ok {
		if c.Delete {
			return nil, fmt.Errorf("%s: file %q is deleted: %w", t.ref, name, configsvc.ErrNotFound)
		}
		return c.Content, nil
	}
	if _, ok := t.head.Files[name]; !ok || t.head.Revision == 0 {
		return nil, fmt.Errorf("%s: no file %q: %w", t.ref, name, configsvc.ErrNotFound)
	}
	b, _, err := t.store.File(ctx, t.ref, name, t.head.Revision)
	return b, err
}

// Sum returns name's checksum at the new head.
func (t *PublishTree) Sum(_ context.Context, name string) (string, bool) {
	if c, ok := t.changes[name]; ok {
		if c.Delete {
			return "", false
		}
		if s, ok := t.sums[name]; ok {
			return s, true
		}
		s := configsvc.Checksum(c.Content)
		t.sums[name] = s
		return s, true
	}
	m, ok := t.head.Files[name]
	return m.SHA256, ok
}
