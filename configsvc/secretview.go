package configsvc

import (
	"context"
	"strings"
)

// SecretInfix marks a secret file: a file whose name contains ".secret."
// (db.secret.yaml, api.secret.json) is stored encrypted and its value is
// shown only to callers with the secrets grant (docs/secrets.md). Marking a
// file secret is therefore a publish like any other: versioned and audited.
const SecretInfix = ".secret."

// IsSecretFile reports whether name marks a secret file (SecretInfix).
// Schema files (*.schema.json) are never secret: they describe a file, they
// hold no value.
func IsSecretFile(name string) bool {
	return strings.Contains(name, SecretInfix) && !strings.HasSuffix(name, ".schema.json")
}

// SecretView is how a read shows the content of secret files.
type SecretView int

// The views. The zero value, SecretRedacted, is what every read gets
// unless its context says otherwise (WithSecretView).
const (
	// SecretRedacted replaces a secret file's content with a short
	// placeholder naming its size and revision, never its value.
	SecretRedacted SecretView = iota
	// SecretPlaintext decrypts a secret file (the secrets grant, and the
	// server's own validation and rollbacks).
	SecretPlaintext
	// SecretEnvelope returns the stored ciphertext as it is (the SDK, which
	// decrypts with a data key it asks the admin server for).
	SecretEnvelope
)

type secretViewKey struct{}

// WithSecretView returns a context whose reads of ref's secret files show
// view(ref). A nil view means SecretRedacted for every ref.
func WithSecretView(ctx context.Context, view func(Ref) SecretView) context.Context {
	return context.WithValue(ctx, secretViewKey{}, view)
}

// WithSecretViewAll returns a context whose reads show every secret file as
// v: what the server's own validation (SecretPlaintext) uses.
func WithSecretViewAll(ctx context.Context, v SecretView) context.Context {
	return WithSecretView(ctx, func(Ref) SecretView { return v })
}

// SecretViewOf returns the view ctx gives ref's secret files; SecretRedacted
// when ctx says nothing.
func SecretViewOf(ctx context.Context, ref Ref) SecretView {
	if f, _ := ctx.Value(secretViewKey{}).(func(Ref) SecretView); f != nil {
		return f(ref)
	}
	return SecretRedacted
}
