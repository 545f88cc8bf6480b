package vaulttransit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sluicehq/sluice/configsvc/secrets"
)

// DefaultMount is the path the transit secrets engine is mounted at.
const DefaultMount = "transit"

// Config says which Vault and which transit key. Address and Key are
// required; Token is the Vault token (never logged; `sluice server` reads
// it from VAULT_TOKEN only). Mount defaults to DefaultMount, Timeout (one
// Vault call) to 10s.
type Config struct {
	Address string
	Token   string
	Mount   string
	Key     string
	Timeout time.Duration
}

// Keyring wraps data keys with a Vault transit key. The key id stored with
// a wrapped key is "vault:<key>:v<version>", the version of the transit key
// that wrapped it. Keyring is safe for concurrent use.
type Keyring struct {
	c     *vault.Client
	mount string
	key   string
}

var _ secrets.Keyring = (*Keyring)(nil)

// New returns the Keyring of cfg. It does not call Vault.
func New(cfg Config) (*Keyring, error) {
	if cfg.Address == "" || cfg.Key == "" {
		return nil, errors.New("vaulttransit: the Vault address and the transit key name are required")
	}
	if cfg.Mount == "" {
		cfg.Mount = DefaultMount
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	vc := vault.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vaulttransit: %w", vc.Error)
	}
	vc.Address, vc.Timeout, vc.MaxRetries = cfg.Address, cfg.Timeout, 1
	c, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vaulttransit: %w", err)
	}
	c.SetToken(cfg.Token)
	return &Keyring{c: c, mount: strings.Trim(cfg.Mount, "/"), key: cfg.Key}, nil
}

// Vault transit binds no associated data to a key that is not derived, so
// the wrapped plaintext carries a digest of aad, checked on unwrap.
func bind(dataKey, aad []byte) []byte {
	sum := sha256.Sum256(aad)
	return append(sum[:], dataKey...)
}

// Wrap encrypts dataKey (bound to aad) with the newest version of the
// transit key. See secrets.Keyring.
func (k *Keyring) Wrap(ctx context.Context, dataKey, aad []byte) (string, []byte, error) {
	s, err := k.c.Logical().WriteWithContext(ctx, k.mount+"/encrypt/"+k.key, map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(bind(dataKey, aad)),
	})
	if err != nil {
		return "", nil, fmt.Errorf("vaulttransit: encrypt with %s: %w", k.key, err)
	}
	ct, _ := s.Data["ciphertext"].(string)
	version, ok := versionOf(ct)
	if !ok {
		return "", nil, fmt.Errorf("vaulttransit: encrypt with %s: unexpected answer", k.key)
	}
	return "vault:" + k.key + ":" + version, []byte(ct), nil
}

// versionOf returns "vN" of a transit ciphertext "vault:vN:…".
func versionOf(ct string) (string, bool) {
	parts := strings.SplitN(ct, ":", 3)
	if len(parts) != 3 || parts[0] != "vault" || !strings.HasPrefix(parts[1], "v") {
		return "", false
	}
	return parts[1], true
}

// Unwrap decrypts wrapped with the transit key and checks its binding to
// aad. Errors wrap secrets.ErrKey when Vault refuses (a key version
// trimmed away, a token without decrypt) or the binding does not match.
// See secrets.Keyring.
func (k *Keyring) Unwrap(ctx context.Context, keyID string, wrapped, aad []byte) ([]byte, error) {
	if !strings.HasPrefix(keyID, "vault:"+k.key+":") {
		return nil, fmt.Errorf("vaulttransit: key %q is not a version of transit key %s: %w", keyID, k.key, secrets.ErrKey)
	}
	s, err := k.c.Logical().WriteWithContext(ctx, k.mount+"/decrypt/"+k.key, map[string]any{"ciphertext": string(wrapped)})
	if err != nil {
		var re *vault.ResponseError
		if errors.As(err, &re) && re.StatusCode < 500 {
			return nil, fmt.Errorf("vaulttransit: decrypt with %s refused (HTTP %d): %w", keyID, re.StatusCode, secrets.ErrKey)
		}
		return nil, fmt.Errorf("vaulttransit: decrypt with %s: %v: %w", keyID, err, secrets.ErrKey)
	}
	pt, _ := s.Data["plaintext"].(string)
	b, err := base64.StdEncoding.DecodeString(pt)
	sum := sha256.Sum256(aad)
	if err != nil || len(b) != len(sum)+32 || !bytes.Equal(b[:len(sum)], sum[:]) {
		return nil, fmt.Errorf("vaulttransit: %s: the wrapped key is bound to another file or revision: %w", keyID, secrets.ErrKey)
	}
	return b[len(sum):], nil
}

// Rotate asks Vault for a new version of the transit key (the token needs
// update on <mount>/keys/<key>/rotate); new wraps use it, older versions
// still unwrap until Vault's min_decryption_version is raised. It returns
// the new key id.
func (k *Keyring) Rotate(ctx context.Context) (string, error) {
	if _, err := k.c.Logical().WriteWithContext(ctx, k.mount+"/keys/"+k.key+"/rotate", nil); err != nil {
		return "", fmt.Errorf("vaulttransit: rotate %s: %w", k.key, err)
	}
	s, err := k.c.Logical().ReadWithContext(ctx, k.mount+"/keys/"+k.key)
	if err != nil || s == nil {
		return "", fmt.Errorf("vaulttransit: read %s: %v", k.key, err)
	}
	return fmt.Sprintf("vault:%s:v%v", k.key, s.Data["latest_version"]), nil
}
