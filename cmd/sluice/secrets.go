package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
)

// secretKeyFile is the default key file of the local keyring, in the data
// directory.
const secretKeyFile = "secrets.key"

// openKeyring opens the local keyring of secret files at path (default
// <dataDir>/secrets.key). It is created (0600, one new key) only for the
// default bbolt store in the data directory, the single-machine `make run`
// setup; a server on ZooKeeper without its key file runs without a
// keyring: publishing or reading a secret file then fails clearly
// (docs/secrets.md), nothing is ever stored or served in plaintext.
func openKeyring(path, dataDir, storeURL string, logger *slog.Logger) (secrets.Keyring, error) {
	explicit := path != ""
	if !explicit {
		path = filepath.Join(dataDir, secretKeyFile)
	}
	create := !explicit && strings.HasPrefix(storeURL, "bolt://")
	kr, err := localkey.Open(path, create)
	if errors.Is(err, localkey.ErrNoKeyFile) && !explicit {
		logger.Warn("no key file for secret files: publishing or reading *.secret.* files will fail", "key_file", path)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	logger.Info("secret files keyring", "keyring", "local", "key_file", path, "active_key", kr.ActiveID())
	return kr, nil
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
	var keys secrets.Keyring
	if kek != nil {
		keys = secrets.NewKeychain(st.Records(), kek)
	}
	return configsvc.Validating(secrets.NewStore(st, keys), publishValidator(maxServiceBytes)), keys, nil
}
