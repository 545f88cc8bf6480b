package agekeys

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"filippo.io/age"

	"github.com/sluicehq/sluice/configsvc/secrets"
)

// ErrNoIdentityFile: the identity file does not exist (and was not to be
// created).
var ErrNoIdentityFile = errors.New("agekeys: no identity file")

// Keyring wraps data keys to the recipient of the newest X25519 identity
// of its identity file (one "AGE-SECRET-KEY-1…" a line, '#' comments) and
// to its extra recipients; it unwraps with any identity of the file. The
// key id stored with a wrapped key is "age:" and 16 hex digits of the
// active recipient's digest. Keyring is safe for concurrent use.
type Keyring struct {
	path  string
	extra []age.Recipient

	mu     sync.RWMutex
	ids    []age.Identity
	active *age.X25519Identity
}

var _ secrets.Keyring = (*Keyring)(nil)

// Open reads the identity file at path; with create set a missing file is
// created (0600, one new identity). recipients are further age recipients
// ("age1…") every data key is also wrapped to. A file readable by group or
// others is refused.
func Open(path string, create bool, recipients []string) (*Keyring, error) {
	k := &Keyring{path: path}
	if len(recipients) > 0 {
		rs, err := age.ParseRecipients(strings.NewReader(strings.Join(recipients, "\n")))
		if err != nil {
			return nil, fmt.Errorf("agekeys: recipients: %w", err)
		}
		k.extra = rs
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("%w: %s (refusing to serve secret files without their key)", ErrNoIdentityFile, path)
		}
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("agekeys: create %s: %w", path, err)
		}
	} else if err != nil {
		return nil, err
	}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Keyring) load() error {
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("agekeys: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("agekeys: %s is mode %v; it must be readable by its owner only (chmod 600)", k.path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("agekeys: %w", err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("agekeys: %s: %w", k.path, err)
	}
	var active *age.X25519Identity
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			active = x
		}
	}
	if active == nil {
		return fmt.Errorf("agekeys: %s holds no X25519 identity", k.path)
	}
	k.mu.Lock()
	k.ids, k.active = ids, active
	k.mu.Unlock()
	return nil
}

func keyID(r *age.X25519Recipient) string {
	sum := sha256.Sum256([]byte(r.String()))
	return "age:" + hex.EncodeToString(sum[:8])
}

// ActiveID returns the key id of the active identity.
func (k *Keyring) ActiveID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return keyID(k.active.Recipient())
}

// Wrap encrypts dataKey, bound to aad, to the active recipient and the
// extra ones. See secrets.Keyring.
func (k *Keyring) Wrap(_ context.Context, dataKey, aad []byte) (string, []byte, error) {
	k.mu.RLock()
	r := k.active.Recipient()
	k.mu.RUnlock()
	var out bytes.Buffer
	w, err := age.Encrypt(&out, append([]age.Recipient{r}, k.extra...)...)
	if err != nil {
		return "", nil, fmt.Errorf("agekeys: %w", err)
	}
	sum := sha256.Sum256(aad)
	if _, err := w.Write(append(sum[:], dataKey...)); err != nil {
		return "", nil, err
	}
	if err := w.Close(); err != nil {
		return "", nil, err
	}
	return keyID(r), out.Bytes(), nil
}

// Unwrap decrypts wrapped with any identity of the file and checks its
// binding to aad; errors wrap secrets.ErrKey. See secrets.Keyring.
func (k *Keyring) Unwrap(_ context.Context, keyID string, wrapped, aad []byte) ([]byte, error) {
	k.mu.RLock()
	ids := k.ids
	k.mu.RUnlock()
	r, err := age.Decrypt(bytes.NewReader(wrapped), ids...)
	if err != nil {
		if k.load() == nil { // `sluice keys rotate` may have added an identity
			k.mu.RLock()
			ids = k.ids
			k.mu.RUnlock()
			r, err = age.Decrypt(bytes.NewReader(wrapped), ids...)
		}
		if err != nil {
			return nil, fmt.Errorf("agekeys: no identity in %s opens key %s: %w", k.path, keyID, secrets.ErrKey)
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, 1024))
	sum := sha256.Sum256(aad)
	if err != nil || len(b) != len(sum)+32 || !bytes.Equal(b[:len(sum)], sum[:]) {
		return nil, fmt.Errorf("agekeys: %s: the wrapped key is bound to another file or revision: %w", keyID, secrets.ErrKey)
	}
	return b[len(sum):], nil
}

// Rotate appends a new X25519 identity to the identity file and makes it
// the active one. It returns its key id.
func (k *Keyring) Rotate(context.Context) (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("agekeys: rotate: %w", err)
	}
	if _, err := f.WriteString(id.String() + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("agekeys: rotate: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := k.load(); err != nil {
		return "", err
	}
	return k.ActiveID(), nil
}
