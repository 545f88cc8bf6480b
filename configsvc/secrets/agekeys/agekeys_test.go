package agekeys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/agekeys"
)

func TestAgeWrapUnwrapAndEscrow(t *testing.T) {
	ctx := context.Background()
	escrow, _ := age.GenerateX25519Identity()
	path := filepath.Join(t.TempDir(), "age.key")
	kr, err := agekeys.Open(path, true, []string{escrow.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode %v, want 0600", fi.Mode().Perm())
	}
	dek := make([]byte, 32)
	_, _ = rand.Read(dek)
	id, wrapped, err := kr.Wrap(ctx, dek, []byte("aad"))
	if err != nil || !strings.HasPrefix(id, "age:") {
		t.Fatalf("Wrap = %q, %v", id, err)
	}
	if got, err := kr.Unwrap(ctx, id, wrapped, []byte("aad")); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap = %v", err)
	}
	if _, err := kr.Unwrap(ctx, id, wrapped, []byte("other")); !errors.Is(err, secrets.ErrKey) {
		t.Errorf("Unwrap bound elsewhere = %v, want ErrKey", err)
	}
	// The escrow identity alone recovers the key, without the server.
	r, err := age.Decrypt(bytes.NewReader(wrapped), escrow)
	if err != nil {
		t.Fatalf("escrow cannot decrypt: %v", err)
	}
	b, _ := io.ReadAll(r)
	if !bytes.Equal(b[32:], dek) {
		t.Error("escrow got another key")
	}
	if _, err := agekeys.Open(filepath.Join(t.TempDir(), "missing"), false, nil); !errors.Is(err, agekeys.ErrNoIdentityFile) {
		t.Errorf("missing identity file = %v", err)
	}
}

// TestAgeRotateKeepsHistory: a new identity, the Keychain's rotation, the
// old identity deleted from the file: what was sealed before still opens.
func TestAgeRotateKeepsHistory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "age.key")
	kr, err := agekeys.Open(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := boltstore.Open(filepath.Join(dir, "s.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ref := configsvc.Service("orders")
	env, err := secrets.Seal(ctx, secrets.NewKeychain(b.Records(), kr), ref, "a.secret.txt", secrets.RevisionContext(1), []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	newID, err := kr.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rot, err := secrets.NewKeychain(b.Records(), kr).Rotate(ctx); err != nil || rot.KEK != newID {
		t.Fatalf("Rotate = %+v, %v", rot, err)
	}
	lines := strings.Split(strings.TrimSpace(string(must(os.ReadFile(path)))), "\n")
	if err := os.WriteFile(path, []byte(lines[len(lines)-1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kr2, err := agekeys.Open(path, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := secrets.Open(ctx, secrets.NewKeychain(b.Records(), kr2), ref, "a.secret.txt", env)
	if err != nil || string(pt) != "v1" {
		t.Fatalf("Open after rotation without the old identity = %q, %v", pt, err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
