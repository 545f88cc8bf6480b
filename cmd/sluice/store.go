package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/router/routesfile"
)

// Environment variables with the ZooKeeper digest identities. They are read
// from the environment only, never from flags, so they stay out of process
// lists and shell history (deploy/systemd keeps them in a 0600 env file).
const (
	// envZKDigest is "user:password": the identity the process authenticates
	// as; the nodes it creates grant all permissions to it alone.
	envZKDigest = "SLUICE_ZK_DIGEST"
	// envZKReaderDigest is "user:password": an identity granted read on
	// every node and registration under instances/, for SDKs
	// (sdk.Config.ZKDigest). Only used with envZKDigest.
	envZKReaderDigest = "SLUICE_ZK_READER_DIGEST"
)

// openStore opens the store a bolt://PATH or zk://HOSTS/CHROOT URL names,
// with publishValidator in front of its Publish. For ZooKeeper it adds the
// digest identities from getenv. Errors wrap configsvc.ErrInvalid for a bad
// URL, configsvc.ErrLocked when another process holds the bbolt file,
// configsvc.ErrUnavailable when ZooKeeper cannot be reached.
func openStore(ctx context.Context, raw string, logger *slog.Logger, getenv func(string) string) (configsvc.Store, error) {
	st, err := openBackend(ctx, raw, logger, getenv)
	if err != nil {
		return nil, err
	}
	return configsvc.Validating(st, publishValidator()), nil
}

// publishValidator is the content validation of every publish through a
// store the sluice command opens (admin API, rollback, embedded tools):
// each written file's format, and the route schema of
// sluice-system/routes.yaml.
func publishValidator() configsvc.Validator {
	return configsvc.Validators(format.Validator{}, configsvc.EachFile(routesfile.Validate))
}

// openBackend opens the store a URL names; see openStore.
func openBackend(ctx context.Context, raw string, logger *slog.Logger, getenv func(string) string) (configsvc.Store, error) {
	switch {
	case strings.HasPrefix(raw, "bolt://"):
		path := strings.TrimPrefix(raw, "bolt://")
		if path == "" {
			return nil, fmt.Errorf("store %q: bolt:// needs a file path: %w", raw, configsvc.ErrInvalid)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store %q: %w", raw, err)
		}
		return boltstore.Open(path, boltstore.Options{Logger: logger})
	case strings.HasPrefix(raw, "zk://"):
		cfg, err := zkstore.ParseURL(raw)
		if err != nil {
			return nil, err
		}
		if getenv != nil {
			cfg.Digest, cfg.ReadOnlyDigest = getenv(envZKDigest), getenv(envZKReaderDigest)
		}
		if cfg.ReadOnlyDigest != "" && cfg.Digest == "" {
			return nil, fmt.Errorf("%s is set without %s: the reader identity is granted by a writer identity: %w", envZKReaderDigest, envZKDigest, configsvc.ErrInvalid)
		}
		cfg.Logger = logger
		return zkstore.Open(ctx, cfg)
	}
	return nil, fmt.Errorf("store %q: must start with bolt:// or zk://: %w", raw, configsvc.ErrInvalid)
}
