package localkey

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/configsvc/secrets"
)

// Keyring holds key-encryption keys read from a key file: one key a line,
// "<id> <base64 32-byte key>", the last line the active key that Wrap uses.
// Older keys stay to unwrap what they wrapped until `sluice keys rotate`
// re-wrapped it; then they may be deleted from the file. A key id it does
// not hold makes Unwrap read the file again (a rotation by another
// process). Keyring is safe for concurrent use.
type Keyring struct {
	path string
	mu   sync.RWMutex
	ids  []string
	keys map[string]cipher.AEAD
}

var _ secrets.Keyring = (*Keyring)(nil)

// ErrNoKeyFile: the key file does not exist (and was not to be created).
var ErrNoKeyFile = errors.New("localkey: no key file")

// Open reads the key file at path. With create set, a missing file is
// created (mode 0600, one new random key); without it, a missing file is
// ErrNoKeyFile. A file readable by group or others is refused.
func Open(path string, create bool) (*Keyring, error) {
	k := &Keyring{path: path}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("%w: %s (refusing to serve secret files without their key)", ErrNoKeyFile, path)
		}
		line, err := newLine()
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("localkey: create %s: %w", path, err)
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return nil, fmt.Errorf("localkey: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		raw = []byte(line)
	} else if err != nil {
		return nil, fmt.Errorf("localkey: read %s: %w", path, err)
	} else if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("localkey: %s is mode %v; it must be readable by its owner only (chmod 600)", path, fi.Mode().Perm())
	}
	if err := k.load(raw); err != nil {
		return nil, err
	}
	return k, nil
}

func newLine() (string, error) {
	var id [6]byte
	key := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return "local-" + hex.EncodeToString(id[:]) + " " + base64.StdEncoding.EncodeToString(key) + "\n", nil
}

func (k *Keyring) load(raw []byte) error {
	ids, keys := []string(nil), map[string]cipher.AEAD{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, " ")
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if !ok || err != nil || len(key) != 32 {
			return fmt.Errorf("localkey: %s line %d: must be \"<id> <base64 of 32 bytes>\"", k.path, n)
		}
		b, _ := aes.NewCipher(key)
		aead, _ := cipher.NewGCM(b)
		if _, dup := keys[id]; !dup {
			ids = append(ids, id)
		}
		keys[id] = aead
	}
	if len(ids) == 0 {
		return fmt.Errorf("localkey: %s holds no key", k.path)
	}
	k.mu.Lock()
	k.ids, k.keys = ids, keys
	k.mu.Unlock()
	return nil
}

// ActiveID returns the id of the key Wrap uses.
func (k *Keyring) ActiveID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ids[len(k.ids)-1]
}

// IDs returns every key id, oldest first.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]string(nil), k.ids...)
}

// Rotate appends a new random key to the key file and makes it the active
// key. It returns the new key's id.
func (k *Keyring) Rotate(context.Context) (string, error) {
	line, err := newLine()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("localkey: rotate: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return "", fmt.Errorf("localkey: rotate: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	raw, err := os.ReadFile(k.path)
	if err != nil {
		return "", err
	}
	if err := k.load(raw); err != nil {
		return "", err
	}
	return k.ActiveID(), nil
}

// Wrap seals dataKey with the active key and aad. See secrets.Keyring.
func (k *Keyring) Wrap(_ context.Context, dataKey, aad []byte) (string, []byte, error) {
	k.mu.RLock()
	id := k.ids[len(k.ids)-1]
	aead := k.keys[id]
	k.mu.RUnlock()
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return id, aead.Seal(nonce, nonce, dataKey, aad), nil
}

// Unwrap opens wrapped with key keyID and aad. Errors wrap secrets.ErrKey
// for an unknown key id or a key that does not open it. See
// secrets.Keyring.
func (k *Keyring) Unwrap(_ context.Context, keyID string, wrapped, aad []byte) ([]byte, error) {
	k.mu.RLock()
	aead := k.keys[keyID]
	k.mu.RUnlock()
	if aead == nil {
		// `sluice keys rotate` may have added it to the file since.
		if raw, err := os.ReadFile(k.path); err == nil && k.load(raw) == nil {
			k.mu.RLock()
			aead = k.keys[keyID]
			k.mu.RUnlock()
		}
	}
	if aead == nil {
		return nil, fmt.Errorf("localkey: key %q is not in %s: %w", keyID, k.path, secrets.ErrKey)
	}
	if len(wrapped) < aead.NonceSize() {
		return nil, fmt.Errorf("localkey: wrapped key too short: %w", secrets.ErrKey)
	}
	dk, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("localkey: key %q does not open the data key (wrong key or moved envelope): %w", keyID, secrets.ErrKey)
	}
	return dk, nil
}
