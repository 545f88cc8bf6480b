package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/fanout"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/agekeys"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
	"github.com/sluicehq/sluice/configsvc/secrets/vaulttransit"
)

// Default key files of the local and age keyrings, in the data directory.
const (
	secretKeyFile = "secrets.key"
	ageKeyFile    = "secrets.age"
)

// Environment variables of the Vault transit keyring: the token is read
// from the environment only, never from a flag.
const (
	envVaultAddr  = "VAULT_ADDR"
	envVaultToken = "VAULT_TOKEN"
)

// secretsOptions are the flags choosing the keyring of secret files
// (docs/secrets.md), shared by `sluice server` and `sluice keys`.
type secretsOptions struct {
	Keyring       string   // --secrets-keyring: local (default), vault or age
	KeyFile       string   // --secrets-key-file: local key file or age identity file
	VaultAddr     string   // --secrets-vault-addr; default $VAULT_ADDR
	VaultMount    string   // --secrets-vault-mount; default transit
	VaultKey      string   // --secrets-vault-key; default sluice
	AgeRecipients []string // --secrets-age-recipients
}

func (o *secretsOptions) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.Keyring, "secrets-keyring", "local", "keyring of the key-encryption key of secret files: local, vault or age")
	fs.StringVar(&o.KeyFile, "secrets-key-file", "", "local: key file (default <data-dir>/secrets.key, created 0600 for a bolt:// store); age: identity file (default <data-dir>/secrets.age, likewise)")
	fs.StringVar(&o.VaultAddr, "secrets-vault-addr", "", "vault: Vault address (default $VAULT_ADDR; the token is read from VAULT_TOKEN only)")
	fs.StringVar(&o.VaultMount, "secrets-vault-mount", vaulttransit.DefaultMount, "vault: mount path of the transit engine")
	fs.StringVar(&o.VaultKey, "secrets-vault-key", "sluice", "vault: name of the transit key")
	fs.StringSliceVar(&o.AgeRecipients, "secrets-age-recipients", nil, "age: further recipients (age1…, comma-separated) every key is also wrapped to, e.g. an offline escrow key")
}

// rotatingKeyring is a keyring that can make a new key-encryption key
// active (each adapter knows how: a new key line, a new transit key
// version, a new age identity).
type rotatingKeyring interface {
	secrets.Keyring
	Rotate(ctx context.Context) (string, error)
}

// open returns the keyring the options name. The local and age files are
// created (0600, one new key) only with create, which `sluice server` sets
// for the default file of the default bbolt store: the single-machine
// `make run` setup. Without its file, a server runs without a keyring
// (warned): publishing or reading a secret file then fails clearly, and
// nothing is ever stored or served in plaintext (docs/secrets.md).
func (o *secretsOptions) open(dataDir, storeURL string, getenv func(string) string, logger *slog.Logger, serving bool) (rotatingKeyring, error) {
	explicit := o.KeyFile != ""
	create := serving && !explicit && strings.HasPrefix(storeURL, "bolt://")
	if create {
		// The data directory of a first start does not exist yet (the
		// bbolt store makes it too, but the keyring opens first).
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", dataDir, err)
		}
	}
	switch o.Keyring {
	case "", "local":
		path := o.KeyFile
		if path == "" {
			path = filepath.Join(dataDir, secretKeyFile)
		}
		kr, err := localkey.Open(path, create)
		if errors.Is(err, localkey.ErrNoKeyFile) && serving && !explicit {
			logger.Warn("no key file for secret files: publishing or reading *.secret.* files will fail", "key_file", path)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		logger.Info("secret files keyring", "keyring", "local", "key_file", path, "active_key", kr.ActiveID())
		return kr, nil
	case "age":
		path := o.KeyFile
		if path == "" {
			path = filepath.Join(dataDir, ageKeyFile)
		}
		kr, err := agekeys.Open(path, create, o.AgeRecipients)
		if errors.Is(err, agekeys.ErrNoIdentityFile) && serving && !explicit {
			logger.Warn("no age identity file for secret files: publishing or reading *.secret.* files will fail", "identity_file", path)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		logger.Info("secret files keyring", "keyring", "age", "identity_file", path, "active_key", kr.ActiveID())
		return kr, nil
	case "vault":
		addr := o.VaultAddr
		if addr == "" && getenv != nil {
			addr = getenv(envVaultAddr)
		}
		token := ""
		if getenv != nil {
			token = getenv(envVaultToken)
		}
		kr, err := vaulttransit.New(vaulttransit.Config{Address: addr, Token: token, Mount: o.VaultMount, Key: o.VaultKey})
		if err != nil {
			return nil, fmt.Errorf("--secrets-keyring vault: %w (set --secrets-vault-addr or %s, and %s)", err, envVaultAddr, envVaultToken)
		}
		logger.Info("secret files keyring", "keyring", "vault", "addr", addr, "mount", o.VaultMount, "key", o.VaultKey)
		return kr, nil
	}
	return nil, fmt.Errorf("--secrets-keyring %q: must be local, vault or age: %w", o.Keyring, configsvc.ErrInvalid)
}

// openSecretStore is openStore with secret files sealed by a
// secrets.Keychain on the store's records and kek (secrets.Store between
// the validation and the backend: content is validated in plaintext, then
// encrypted). It returns the keychain too, nil when kek is nil.
func openSecretStore(ctx context.Context, raw string, logger *slog.Logger, getenv func(string) string, maxServiceBytes int64, kek secrets.Keyring) (*configsvc.ValidatingStore, secrets.Keyring, error) {
	st, err := openBackend(ctx, raw, logger, getenv)
	if err != nil {
		return nil, nil, err
	}
	// The watches are shared (configsvc/fanout) below the secrets store,
	// which shows each subscriber's events in its own view: the event
	// streams of the admin API, the console's summary index and the
	// embedded proxy hold one store watch per service or group between
	// them, whatever their number.
	vs, keys := wrapSecretStore(fanout.New(st, fanout.Options{}), kek, maxServiceBytes)
	return vs, keys, nil
}

// wrapSecretStore returns st validated and with its secret files sealed by
// a keychain on its records and kek (nil kek: none), and the keychain.
func wrapSecretStore(st configsvc.Store, kek secrets.Keyring, maxServiceBytes int64) (*configsvc.ValidatingStore, secrets.Keyring) {
	var keys secrets.Keyring
	if kek != nil {
		keys = secrets.NewKeychain(st.Records(), kek)
	}
	return configsvc.Validating(secrets.NewStore(st, keys), publishValidator(maxServiceBytes)), keys
}
