package secrets

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sluicehq/sluice/configsvc"
)

// Store is a configsvc.Store that keeps secret files (configsvc.IsSecretFile)
// encrypted: Publish and CreateGray seal their content with a new data key
// (bound to the service, the file and the revision, or the gray), and
// every read that carries content shows it as its context asks
// (configsvc.SecretViewOf): a placeholder by default, the plaintext, or
// the envelope. A read of plaintext that the keyring cannot open fails
// with ErrKey: the file is never served otherwise. Reads without content
// (Head, Revisions, Grays) pass through; a secret file's FileMeta size and
// checksum are the envelope's.
//
// Store is safe for concurrent use when the wrapped Store and Keyring are.
// Close closes the wrapped Store.
type Store struct {
	configsvc.Store
	keys Keyring
}

var _ configsvc.Store = (*Store)(nil)

// NewStore returns st with secret files sealed by keys. A nil keys is
// allowed: publishing a secret file and reading one in plaintext then fail
// with ErrNoKeyring; placeholders and envelopes are still served.
func NewStore(st configsvc.Store, keys Keyring) *Store { return &Store{Store: st, keys: keys} }

// Unwrap returns the wrapped Store (for optional interfaces of the backend).
func (s *Store) Unwrap() configsvc.Store { return s.Store }

// Keyring returns the keyring the Store seals with.
func (s *Store) Keyring() Keyring { return s.keys }

// seal encrypts the secret files of changes in context ctxName.
func (s *Store) seal(ctx context.Context, ref configsvc.Ref, changes []configsvc.Change, ctxName string) ([]configsvc.Change, error) {
	var out []configsvc.Change
	for i, ch := range changes {
		if ch.Delete || !configsvc.IsSecretFile(ch.File) {
			continue
		}
		if IsRedacted(ch.Content) || IsEnvelope(ch.Content) {
			return nil, &configsvc.FieldError{Field: "changes.content", Value: ch.File,
				Msg: "a secret file is published as its plaintext, not as a placeholder or an envelope read back from the server"}
		}
		if s.keys == nil {
			return nil, fmt.Errorf("secret file %s: %w", ch.File, ErrNoKeyring)
		}
		env, err := Seal(ctx, s.keys, ref, ch.File, ctxName, ch.Content)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = append([]configsvc.Change(nil), changes...)
		}
		out[i].Content = env
	}
	if out == nil {
		return changes, nil
	}
	return out, nil
}

// Publish seals the secret files of cs for revision cs.Base+1, then
// publishes; see configsvc.Store.Publish.
func (s *Store) Publish(ctx context.Context, ref configsvc.Ref, cs configsvc.Changeset) (configsvc.Revision, error) {
	changes, err := s.seal(ctx, ref, cs.Changes, RevisionContext(cs.Base+1))
	if err != nil {
		return configsvc.Revision{}, fmt.Errorf("secrets: publish %s: %w", ref, err)
	}
	cs.Changes = changes
	return s.Store.Publish(ctx, ref, cs)
}

// CreateGray seals the secret files of g for the gray (drawing its id when
// g has none), then creates it; see configsvc.Store.CreateGray.
func (s *Store) CreateGray(ctx context.Context, ref configsvc.Ref, g configsvc.Gray) (configsvc.Gray, error) {
	if g.ID == "" {
		g.ID = configsvc.NewGrayID()
	}
	changes, err := s.seal(ctx, ref, g.Changes, GrayContext(g.ID))
	if err != nil {
		return configsvc.Gray{}, fmt.Errorf("secrets: create gray of %s: %w", ref, err)
	}
	g.Changes = changes
	out, err := s.Store.CreateGray(ctx, ref, g)
	if err != nil {
		return out, err
	}
	out.Changes = append([]configsvc.Change(nil), out.Changes...)
	return out, s.showChanges(ctx, ref, out.Changes, 0)
}

// show returns content of file of ref as ctx's view asks. rev, when not 0,
// is the revision the read found it at; an envelope bound to another
// revision (copied there by someone with write access to the store) is
// refused.
func (s *Store) show(ctx context.Context, ref configsvc.Ref, file string, rev int64, content []byte) ([]byte, error) {
	if !configsvc.IsSecretFile(file) {
		return content, nil
	}
	switch configsvc.SecretViewOf(ctx, ref) {
	case configsvc.SecretEnvelope:
		return content, nil
	case configsvc.SecretPlaintext:
		if rev > 0 {
			if h, _, err := Parse(content); err == nil && h.Revision() != 0 && h.Revision() != rev {
				return nil, fmt.Errorf("secrets: %s/%s at revision %d holds the envelope of revision %d: refusing to serve: %w",
					ref, file, rev, h.Revision(), ErrKey)
			}
		}
		if s.keys == nil {
			return nil, fmt.Errorf("secrets: read %s/%s: %w", ref, file, ErrNoKeyring)
		}
		pt, err := Open(ctx, s.keys, ref, file, content)
		if errors.Is(err, ErrNotEnvelope) {
			return nil, fmt.Errorf("secrets: read %s/%s: stored without encryption (%v); refusing to serve it: %w", ref, file, err, ErrKey)
		}
		if err != nil {
			return nil, fmt.Errorf("secrets: read %s/%s: %w", ref, file, err)
		}
		return pt, nil
	default:
		return Placeholder(content), nil
	}
}

func (s *Store) showChanges(ctx context.Context, ref configsvc.Ref, changes []configsvc.Change, rev int64) error {
	for i := range changes {
		ch := &changes[i]
		if ch.Delete || ch.Content == nil {
			continue
		}
		c, err := s.show(ctx, ref, ch.File, rev, ch.Content)
		if err != nil {
			return err
		}
		ch.Content = c
	}
	return nil
}

// File reads one file; a secret file as ctx's view asks. See
// configsvc.Store.File.
func (s *Store) File(ctx context.Context, ref configsvc.Ref, name string, rev int64) ([]byte, configsvc.FileMeta, error) {
	content, meta, err := s.Store.File(ctx, ref, name, rev)
	if err != nil {
		return content, meta, err
	}
	content, err = s.show(ctx, ref, name, meta.Revision, content)
	return content, meta, err
}

// Snapshot reads every file; secret files as ctx's view asks. See
// configsvc.Store.Snapshot.
func (s *Store) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	snap, err := s.Store.Snapshot(ctx, ref, rev)
	if err != nil {
		return snap, err
	}
	files := make(map[string][]byte, len(snap.Files)) // the store may share the map
	for name, content := range snap.Files {
		c, err := s.show(ctx, ref, name, 0, content)
		if err != nil {
			return configsvc.Snapshot{}, err
		}
		files[name] = c
	}
	snap.Files = files
	return snap, nil
}

// Revision reads one revision with content; secret files as ctx's view
// asks. See configsvc.Store.Revision.
func (s *Store) Revision(ctx context.Context, ref configsvc.Ref, n int64) (configsvc.Revision, error) {
	r, err := s.Store.Revision(ctx, ref, n)
	if err != nil {
		return r, err
	}
	r.Changes = append([]configsvc.Change(nil), r.Changes...) // the store may share them
	return r, s.showChanges(ctx, ref, r.Changes, 0)
}

// Gray reads one gray with content; secret files as ctx's view asks. See
// configsvc.Store.Gray.
func (s *Store) Gray(ctx context.Context, ref configsvc.Ref, id string) (configsvc.Gray, error) {
	g, err := s.Store.Gray(ctx, ref, id)
	if err != nil {
		return g, err
	}
	g.Changes = append([]configsvc.Change(nil), g.Changes...) // the store may share them
	return g, s.showChanges(ctx, ref, g.Changes, 0)
}

// ViewEvent returns ev of a watch of ref with the secret files of its
// revision shown as ctx's view asks: ev itself when it carries none. When
// a revision cannot be shown it returns an event whose Err wraps ErrKey
// and fatal: the watch must end there (a later revision would leave a
// gap). Watch applies it to every event; a caller that reads a shared
// watch below this Store (configsvc/fanout) applies it itself.
func (s *Store) ViewEvent(ctx context.Context, ref configsvc.Ref, ev configsvc.Event) (out configsvc.Event, fatal bool) {
	if ev.Revision == nil || ev.Err != nil || !slices.ContainsFunc(ev.Revision.Changes, func(c configsvc.Change) bool { return configsvc.IsSecretFile(c.File) }) {
		return ev, false
	}
	r := *ev.Revision
	r.Changes = append([]configsvc.Change(nil), r.Changes...)
	if err := s.showChanges(ctx, ref, r.Changes, 0); err != nil {
		return configsvc.Event{Err: err}, true
	}
	ev.Revision = &r
	return ev, false
}

// Watch relays the wrapped Store's watch with the secret files of each
// revision shown as ctx's view asks; a revision that cannot be shown ends
// the watch with an event whose Err wraps ErrKey. See configsvc.Store.Watch.
func (s *Store) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	ctx, cancel := context.WithCancel(ctx)
	in := s.Store.Watch(ctx, ref, from, opts...)
	out := make(chan configsvc.Event)
	go func() {
		defer close(out)
		defer cancel()
		for ev := range in {
			ev, fatal := s.ViewEvent(ctx, ref, ev)
			select {
			case out <- ev:
			case <-ctx.Done():
				for range in {
				}
				return
			}
			if fatal {
				cancel()
				for range in {
				}
				return
			}
		}
	}()
	return out
}
