package localkey_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
)

func TestLocalKeyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "secrets.key")
	if _, err := localkey.Open(path, false); !errors.Is(err, localkey.ErrNoKeyFile) {
		t.Fatalf("Open of a missing file without create = %v", err)
	}
	kr, err := localkey.Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	dek := bytes.Repeat([]byte{7}, 32)
	id, wrapped, err := kr.Wrap(ctx, dek, []byte("aad"))
	if err != nil || id != kr.ActiveID() {
		t.Fatalf("Wrap = %q, %v", id, err)
	}
	if _, err := kr.Unwrap(ctx, id, wrapped, []byte("other")); !errors.Is(err, secrets.ErrKey) {
		t.Errorf("Unwrap bound elsewhere = %v, want ErrKey", err)
	}
	// Another process rotates the file: this keyring reads it again for
	// the id it does not know.
	other, _ := localkey.Open(path, false)
	newID, err := other.Rotate(ctx)
	if err != nil || newID == id {
		t.Fatalf("Rotate = %q, %v", newID, err)
	}
	id2, w2, _ := other.Wrap(ctx, dek, []byte("aad"))
	if got, err := kr.Unwrap(ctx, id2, w2, []byte("aad")); err != nil || !bytes.Equal(got, dek) {
		t.Errorf("Unwrap of a key added since = %v", err)
	}
	if got, err := kr.Unwrap(ctx, id, wrapped, []byte("aad")); err != nil || !bytes.Equal(got, dek) {
		t.Errorf("Unwrap with the old key = %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := localkey.Open(path, false); err == nil {
		t.Error("a key file readable by others was accepted")
	}
}
