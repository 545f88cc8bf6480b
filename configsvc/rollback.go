package configsvc

import (
	"context"
	"fmt"
	"sort"
)

// RollbackRequest asks for a new revision whose content equals an older one.
type RollbackRequest struct {
	To      int64    // the revision whose content to restore
	Files   []string // restore only these files; empty means the whole service
	Base    int64    // the head the caller saw; 0 means the current head
	Author  string
	Message string // default: "rollback to revision N"
}

// Rollback publishes a new revision of ref whose content equals revision
// req.To, for the whole of ref or only req.Files. History is never rewritten.
// It returns ErrInvalid when nothing would change (the content already
// equals revision To), ErrNotFound/ErrCompacted for a missing revision,
// ErrConflict when the head moved past req.Base.
func Rollback(ctx context.Context, s Store, ref Ref, req RollbackRequest) (Revision, error) {
	cs, err := RollbackChangeset(ctx, s, ref, req)
	if err != nil {
		return Revision{}, err
	}
	return s.Publish(ctx, ref, cs)
}

// RollbackChangeset returns the changeset Rollback would publish, without
// publishing it (a dry run, or a change request that publishes it later):
// its Base is the head (req.Base, checked against it), RollbackOf is
// req.To. Errors are Rollback's.
//
// Secret files (IsSecretFile) are read in plaintext: the changeset carries
// the value to publish again, sealed anew for the new revision by the
// store that publishes it.
func RollbackChangeset(ctx context.Context, s Reader, ref Ref, req RollbackRequest) (Changeset, error) {
	ctx = WithSecretViewAll(ctx, SecretPlaintext)
	head, err := s.Head(ctx, ref)
	if err != nil {
		return Changeset{}, err
	}
	base := req.Base
	if base == 0 {
		base = head.Revision
	}
	if base != head.Revision {
		return Changeset{}, fmt.Errorf("rollback %s: head is %d, not %d: %w", ref, head.Revision, base, ErrConflict)
	}
	if req.To < 0 || req.To > head.Revision {
		return Changeset{}, fmt.Errorf("rollback %s to %d: %w", ref, req.To, ErrNotFound)
	}
	old, err := s.Snapshot(ctx, ref, req.To)
	if err != nil {
		return Changeset{}, err
	}
	cur, err := s.Snapshot(ctx, ref, head.Revision)
	if err != nil {
		return Changeset{}, err
	}
	names := req.Files
	if len(names) == 0 {
		seen := map[string]bool{}
		for n := range old.Files {
			seen[n] = true
		}
		for n := range cur.Files {
			seen[n] = true
		}
		for n := range seen {
			names = append(names, n)
		}
	} else {
		for _, n := range names {
			_, inOld := old.Files[n]
			_, inCur := cur.Files[n]
			if !inOld && !inCur {
				return Changeset{}, fmt.Errorf("rollback %s: file %q exists neither at revision %d nor at head: %w", ref, n, req.To, ErrNotFound)
			}
		}
	}
	sort.Strings(names)
	changes := Diff(cur.Files, old.Files, names)
	if len(changes) == 0 {
		return Changeset{}, &FieldError{Field: "to_revision", Value: itoa(req.To), Msg: "content already equals that revision; nothing to roll back"}
	}
	msg := req.Message
	if msg == "" {
		msg = fmt.Sprintf("rollback to revision %d", req.To)
	}
	return Changeset{Base: base, Author: req.Author, Message: msg, Changes: changes, RollbackOf: req.To}, nil
}

// Diff returns the changes that turn from into to, limited to names (all
// files of both when names is nil), in name order.
func Diff(from, to map[string][]byte, names []string) []Change {
	if names == nil {
		for n := range from {
			names = append(names, n)
		}
		for n := range to {
			if _, ok := from[n]; !ok {
				names = append(names, n)
			}
		}
		sort.Strings(names)
	}
	var out []Change
	for _, n := range names {
		a, inFrom := from[n]
		b, inTo := to[n]
		switch {
		case inTo && (!inFrom || string(a) != string(b)):
			out = append(out, Change{File: n, Content: b})
		case inFrom && !inTo:
			out = append(out, Change{File: n, Delete: true})
		}
	}
	return out
}
