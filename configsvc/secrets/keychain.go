package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// KeysCollection is the record collection (configsvc.RecordStore) that
// holds the store keys, each wrapped by the key-encryption key, and the
// record CurrentKey naming the one new data keys are wrapped with.
const (
	KeysCollection = "secret-keys"
	CurrentKey     = "current"
)

// currentTTL is how long a Keychain trusts the current store key it read
// before it reads the record again (another server may have rotated).
const currentTTL = 10 * time.Second

// Keychain is the Keyring the admin server seals with. Data keys are
// wrapped (AES-256-GCM, bound to their file and revision) by a store key;
// store keys are random, kept in the store's records (KeysCollection), each
// wrapped by the key-encryption key of kek (a local key file, Vault
// transit, age). The id stored with a wrapped data key names its store
// key; the record of a store key names the key-encryption key that wraps
// it.
//
// This keeps stored revisions immutable, as every store, watch and cache
// assumes: rotating the key-encryption key (Rotate) re-wraps the store
// keys, a handful of records, and never rewrites content; and it starts a
// new store key for the data keys of new revisions, so that a retired
// key-encryption key opens nothing written after the rotation.
//
// Unwrapped store keys are kept in memory only. Keychain is safe for
// concurrent use.
type Keychain struct {
	rec configsvc.RecordStore
	kek Keyring
	now func() time.Time

	mu      sync.Mutex
	keys    map[string]cipher.AEAD // store key id → key
	current string
	readAt  time.Time
}

var _ Keyring = (*Keychain)(nil)

// storeKey is the record of one store key.
type storeKey struct {
	KEK     string    `json:"kek"`     // id of the key-encryption key that wraps it
	Wrapped []byte    `json:"wrapped"` // the store key, wrapped by it
	Created time.Time `json:"created"`
}

// NewKeychain returns the Keychain of the store whose records are rec,
// with kek's key-encryption keys.
func NewKeychain(rec configsvc.RecordStore, kek Keyring) *Keychain {
	return &Keychain{rec: rec, kek: kek, now: time.Now, keys: map[string]cipher.AEAD{}}
}

func storeKeyAAD(id string) []byte { return []byte("sluice-store-key/v1\x00" + id) }

// Wrap wraps dataKey with the current store key (creating the first one
// on first use). See Keyring.
func (k *Keychain) Wrap(ctx context.Context, dataKey, aad []byte) (string, []byte, error) {
	id, aead, err := k.currentKey(ctx)
	if err != nil {
		return "", nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return id, aead.Seal(nonce, nonce, dataKey, aad), nil
}

// Unwrap opens a data key wrapped by store key id. Errors wrap ErrKey when
// the store key is unknown or the key-encryption key that wraps it is
// missing, and when the key does not open it. See Keyring.
func (k *Keychain) Unwrap(ctx context.Context, id string, wrapped, aad []byte) ([]byte, error) {
	aead, err := k.storeKey(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize() {
		return nil, fmt.Errorf("secrets: wrapped data key too short: %w", ErrKey)
	}
	dk, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("secrets: store key %s does not open the data key (tampered or moved envelope): %w", id, ErrKey)
	}
	return dk, nil
}

// currentKey returns the current store key, reading the record again
// after currentTTL.
func (k *Keychain) currentKey(ctx context.Context) (string, cipher.AEAD, error) {
	k.mu.Lock()
	id, fresh := k.current, k.now().Sub(k.readAt) < currentTTL
	k.mu.Unlock()
	if id == "" || !fresh {
		b, err := k.rec.Get(ctx, KeysCollection, CurrentKey)
		switch {
		case errors.Is(err, configsvc.ErrNotFound):
			if id, err = k.newStoreKey(ctx, true); err != nil {
				return "", nil, err
			}
		case err != nil:
			return "", nil, fmt.Errorf("secrets: read the current store key: %w", err)
		default:
			id = string(b)
		}
		k.mu.Lock()
		k.current, k.readAt = id, k.now()
		k.mu.Unlock()
	}
	aead, err := k.storeKey(ctx, id)
	return id, aead, err
}

// newStoreKey creates a store key wrapped by kek's active key and, with
// first set, makes it the current one unless another server did first
// (then that one is returned); without first, it replaces the current one.
func (k *Keychain) newStoreKey(ctx context.Context, first bool) (string, error) {
	var idb [6]byte
	key := make([]byte, 32)
	if _, err := rand.Read(idb[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	id := "sk-" + hex.EncodeToString(idb[:])
	kekID, wrapped, err := k.kek.Wrap(ctx, key, storeKeyAAD(id))
	if err != nil {
		return "", fmt.Errorf("secrets: wrap a new store key: %w", err)
	}
	rec, _ := json.Marshal(storeKey{KEK: kekID, Wrapped: wrapped, Created: k.now().UTC()})
	if err := k.rec.Create(ctx, KeysCollection, id, rec); err != nil {
		return "", fmt.Errorf("secrets: record a new store key: %w", err)
	}
	if first {
		err = k.rec.Create(ctx, KeysCollection, CurrentKey, []byte(id))
		if errors.Is(err, configsvc.ErrConflict) {
			// Another server created the first key meanwhile: use its.
			_ = k.rec.Delete(ctx, KeysCollection, id)
			b, err := k.rec.Get(ctx, KeysCollection, CurrentKey)
			return string(b), err
		}
	} else {
		err = k.rec.Put(ctx, KeysCollection, CurrentKey, []byte(id))
	}
	if err != nil {
		return "", fmt.Errorf("secrets: make store key %s current: %w", id, err)
	}
	return id, nil
}

// storeKey returns store key id, unwrapping its record on first use.
func (k *Keychain) storeKey(ctx context.Context, id string) (cipher.AEAD, error) {
	k.mu.Lock()
	aead := k.keys[id]
	k.mu.Unlock()
	if aead != nil {
		return aead, nil
	}
	if configsvc.ValidateFileName(id) != nil || id == CurrentKey {
		return nil, fmt.Errorf("secrets: %q is not a store key id: %w", id, ErrKey)
	}
	b, err := k.rec.Get(ctx, KeysCollection, id)
	if errors.Is(err, configsvc.ErrNotFound) {
		return nil, fmt.Errorf("secrets: store key %s is not in the store: %w", id, ErrKey)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: read store key %s: %w", id, err)
	}
	var sk storeKey
	if err := json.Unmarshal(b, &sk); err != nil {
		return nil, fmt.Errorf("secrets: store key %s: %v: %w", id, err, ErrKey)
	}
	key, err := k.kek.Unwrap(ctx, sk.KEK, sk.Wrapped, storeKeyAAD(id))
	if err != nil {
		return nil, fmt.Errorf("secrets: store key %s (wrapped by %s): %w", id, sk.KEK, err)
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: store key %s: %v: %w", id, err, ErrKey)
	}
	aead, _ = cipher.NewGCM(blk)
	k.mu.Lock()
	k.keys[id] = aead
	k.mu.Unlock()
	return aead, nil
}

// Rotation is what Rotate did.
type Rotation struct {
	// Current is the new store key that wraps the data keys of new
	// revisions; KEK the key-encryption key that now wraps every store key.
	Current string `json:"current"`
	KEK     string `json:"kek"`
	// Rewrapped lists the store keys re-wrapped under KEK.
	Rewrapped []string `json:"rewrapped"`
}

// Rotate re-wraps every store key under kek's active key-encryption key
// (after a new one was made active: localkey.Keyring.Rotate, a Vault
// transit key rotation, a new age recipient), without touching any
// content, and starts a new current store key. Every historical revision
// stays readable with the new key-encryption key alone; the old one can
// then be retired. It fails, changing nothing further, on the first store
// key it cannot unwrap.
func (k *Keychain) Rotate(ctx context.Context) (Rotation, error) {
	var out Rotation
	recs, err := k.rec.List(ctx, KeysCollection)
	if err != nil {
		return out, fmt.Errorf("secrets: list store keys: %w", err)
	}
	for _, r := range recs {
		if r.ID == CurrentKey {
			continue
		}
		var sk storeKey
		if err := json.Unmarshal(r.Data, &sk); err != nil {
			return out, fmt.Errorf("secrets: store key %s: %v: %w", r.ID, err, ErrKey)
		}
		key, err := k.kek.Unwrap(ctx, sk.KEK, sk.Wrapped, storeKeyAAD(r.ID))
		if err != nil {
			return out, fmt.Errorf("secrets: rotate: store key %s: %w", r.ID, err)
		}
		if sk.KEK, sk.Wrapped, err = k.kek.Wrap(ctx, key, storeKeyAAD(r.ID)); err != nil {
			return out, fmt.Errorf("secrets: rotate: re-wrap store key %s: %w", r.ID, err)
		}
		b, _ := json.Marshal(sk)
		if err := k.rec.Put(ctx, KeysCollection, r.ID, b); err != nil {
			return out, fmt.Errorf("secrets: rotate: write store key %s: %w", r.ID, err)
		}
		out.KEK = sk.KEK
		out.Rewrapped = append(out.Rewrapped, r.ID)
	}
	if out.Current, err = k.newStoreKey(ctx, false); err != nil {
		return out, err
	}
	k.mu.Lock()
	k.current, k.readAt = out.Current, k.now()
	k.mu.Unlock()
	if out.KEK == "" {
		out.KEK, _ = k.kekOf(ctx, out.Current)
	}
	return out, nil
}

func (k *Keychain) kekOf(ctx context.Context, id string) (string, error) {
	b, err := k.rec.Get(ctx, KeysCollection, id)
	if err != nil {
		return "", err
	}
	var sk storeKey
	err = json.Unmarshal(b, &sk)
	return sk.KEK, err
}
