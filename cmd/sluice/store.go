package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/schema"
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
	// every node, for SDKs (sdk.Config.ZKDigest); without
	// envZKServiceDigests also registration of any service's instances
	// (the weaker single-reader mode). Only used with envZKDigest.
	envZKReaderDigest = "SLUICE_ZK_READER_DIGEST"
	// envZKServiceDigests is "svc=user:password,svc2=user2:password2": each
	// service's own identity, the only one (besides the writer) that may
	// register its instances (zkstore.Config.ServiceDigests; SDKs use it as
	// sdk.Config.ZKInstanceDigest). Passwords cannot hold a comma. Only
	// used with envZKDigest.
	envZKServiceDigests = "SLUICE_ZK_SERVICE_DIGESTS"
	// envZKInstanceDigest is "user:password": a second identity the process
	// registers its instances with in per-service mode (a proxy running as
	// the reader registers in sluice-system with that service's identity).
	envZKInstanceDigest = "SLUICE_ZK_INSTANCE_DIGEST"
)

// parseServiceDigests reads envZKServiceDigests. Errors wrap
// configsvc.ErrInvalid and never hold a password.
func parseServiceDigests(raw string) (map[string]string, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for i, item := range strings.Split(raw, ",") {
		item = strings.TrimSpace(item)
		svc, digest, ok := strings.Cut(item, "=")
		if !ok || !strings.Contains(digest, ":") {
			return nil, fmt.Errorf("%s: entry %d must be service=user:password: %w", envZKServiceDigests, i+1, configsvc.ErrInvalid)
		}
		if err := configsvc.ValidateServiceName(svc); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", envZKServiceDigests, i+1, err)
		}
		if _, dup := out[svc]; dup {
			return nil, fmt.Errorf("%s: service %s named twice: %w", envZKServiceDigests, svc, configsvc.ErrInvalid)
		}
		out[svc] = digest
	}
	return out, nil
}

// storeTarget is a parsed store URL: a bbolt file or a ZooKeeper ensemble.
type storeTarget struct {
	boltPath string          // bolt://PATH
	zk       *zkstore.Config // zk://HOSTS/CHROOT
}

// parseStoreURL reads a bolt://PATH or zk://HOSTS/CHROOT URL. Errors wrap
// configsvc.ErrInvalid.
func parseStoreURL(raw string) (storeTarget, error) {
	switch {
	case strings.HasPrefix(raw, "bolt://"):
		path := strings.TrimPrefix(raw, "bolt://")
		if path == "" {
			return storeTarget{}, fmt.Errorf("store %q: bolt:// needs a file path: %w", raw, configsvc.ErrInvalid)
		}
		return storeTarget{boltPath: path}, nil
	case strings.HasPrefix(raw, "zk://"):
		cfg, err := zkstore.ParseURL(raw)
		if err != nil {
			return storeTarget{}, err
		}
		return storeTarget{zk: &cfg}, nil
	}
	return storeTarget{}, fmt.Errorf("store %q: must start with bolt:// or zk://: %w", raw, configsvc.ErrInvalid)
}

// openStore opens the store a bolt://PATH or zk://HOSTS/CHROOT URL names,
// with publishValidator(maxServiceBytes) in front of its Publish. For
// ZooKeeper it adds the digest identities from getenv. Errors wrap
// configsvc.ErrInvalid for a bad URL, configsvc.ErrLocked when another
// process holds the bbolt file, configsvc.ErrUnavailable when ZooKeeper
// cannot be reached.
func openStore(ctx context.Context, raw string, logger *slog.Logger, getenv func(string) string, maxServiceBytes int64) (*configsvc.ValidatingStore, error) {
	st, err := openBackend(ctx, raw, logger, getenv)
	if err != nil {
		return nil, err
	}
	return configsvc.Validating(st, publishValidator(maxServiceBytes)), nil
}

// publishValidator is the content validation of every publish through a
// store the sluice command opens (admin API, rollback, embedded tools):
// each written file's format, the route schema of
// sluice-system/routes.yaml, the JSON Schemas kept beside the files
// (F.schema.json, package schema), and the total size of the service
// (maxServiceBytes; ≤ 0: no limit).
func publishValidator(maxServiceBytes int64) configsvc.Validator {
	return configsvc.Validators(format.Validator{}, configsvc.EachFile(routesfile.Validate), schema.NewValidator(),
		configsvc.ServiceBytesValidator(maxServiceBytes))
}

// openBackend opens the store a URL names, without validation; see openStore.
func openBackend(ctx context.Context, raw string, logger *slog.Logger, getenv func(string) string) (configsvc.Store, error) {
	target, err := parseStoreURL(raw)
	if err != nil {
		return nil, err
	}
	if target.zk == nil {
		if err := os.MkdirAll(filepath.Dir(target.boltPath), 0o700); err != nil {
			return nil, fmt.Errorf("store %q: %w", raw, err)
		}
		return boltstore.Open(target.boltPath, boltstore.Options{Logger: logger})
	}
	cfg := *target.zk
	if getenv != nil {
		cfg.Digest, cfg.ReadOnlyDigest = getenv(envZKDigest), getenv(envZKReaderDigest)
		cfg.InstanceDigest = getenv(envZKInstanceDigest)
		if cfg.ServiceDigests, err = parseServiceDigests(getenv(envZKServiceDigests)); err != nil {
			return nil, err
		}
	}
	if cfg.ReadOnlyDigest != "" && cfg.Digest == "" {
		return nil, fmt.Errorf("%s is set without %s: the reader identity is granted by a writer identity: %w", envZKReaderDigest, envZKDigest, configsvc.ErrInvalid)
	}
	if len(cfg.ServiceDigests) > 0 && cfg.Digest == "" {
		return nil, fmt.Errorf("%s is set without %s: service identities are granted by a writer identity: %w", envZKServiceDigests, envZKDigest, configsvc.ErrInvalid)
	}
	cfg.Logger = logger
	return zkstore.Open(ctx, cfg)
}

// versionReporter is what checkZooKeeper needs of a store: zkstore.Store
// implements it; bbolt has no ensemble to ask.
type versionReporter interface {
	ServerVersions(ctx context.Context) []zkstore.ServerVersion
}

// zkVersionTimeout bounds the version check at start: members are asked
// concurrently, so an unreachable one delays the start by at most this.
const zkVersionTimeout = time.Second

// checkZooKeeper asks every ensemble member of a ZooKeeper store for its
// release and says loudly when one has known bugs that lose acknowledged
// writes (docs/operations.md, "Which ZooKeeper"): an error log line with the
// reason and sluice_zookeeper_known_data_loss{server} = 1 (0 when safe, -1
// when the version could not be read, e.g. srvr not allowed). A store of
// another kind is left alone.
func checkZooKeeper(ctx context.Context, store configsvc.Store, logger *slog.Logger, reg prometheus.Registerer) error {
	for { // through the validation and the shared watches
		u, ok := store.(interface{ Unwrap() configsvc.Store })
		if !ok {
			break
		}
		store = u.Unwrap()
	}
	vr, ok := store.(versionReporter)
	if !ok {
		return nil
	}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_zookeeper_known_data_loss",
		Help: "1 when a ZooKeeper ensemble member runs a release with known bugs that lose acknowledged writes (before 3.8.4 / 3.9.2), 0 when not, -1 when its version could not be read.",
	}, []string{"server"})
	if err := reg.Register(gauge); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, zkVersionTimeout)
	defer cancel()
	for _, v := range vr.ServerVersions(ctx) {
		switch {
		case v.Err != nil:
			gauge.WithLabelValues(v.Server).Set(-1)
			logger.Warn("could not read the ZooKeeper version; releases before 3.8.4 and 3.9.2 lose acknowledged writes, check it by hand",
				"server", v.Server, "err", v.Err)
		case v.DataLoss != "":
			gauge.WithLabelValues(v.Server).Set(1)
			logger.Error("UNSAFE ZOOKEEPER: "+v.DataLoss, "server", v.Server, "version", v.Version.String())
		default:
			gauge.WithLabelValues(v.Server).Set(0)
			logger.Debug("ZooKeeper version", "server", v.Server, "version", v.Version.String())
		}
	}
	return nil
}
