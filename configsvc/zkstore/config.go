package zkstore

import (
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Config configures Open. The zero value of every field but Servers is a
// documented default.
type Config struct {
	// Servers lists the ZooKeeper servers as host:port (port 2181 when
	// omitted). Required.
	Servers []string
	// Root is the znode under which Sluice keeps everything, like a chroot.
	// Default "/sluice". It is created when missing.
	Root string
	// SessionTimeout is the ZooKeeper session timeout the client asks for;
	// the server clamps it to its own min/max. Default 10 s.
	SessionTimeout time.Duration
	// OpTimeout bounds every Store call (and each Lease call), whatever the
	// caller's context says. Default 5 s.
	OpTimeout time.Duration
	// Retention is how many revisions per service or group are kept; older
	// ones are pruned after each publish. Default configsvc.DefaultRetention;
	// at most configsvc.MaxRetention.
	Retention int
	// Digest, "user:password", authenticates the store with ZooKeeper's
	// digest scheme; nodes the store creates then grant all permissions to
	// that identity only (instead of world:anyone). Optional.
	Digest string
	// ReadOnlyDigest, "user:password", is an identity (for SDKs) granted
	// read on every node the store creates. Without ServiceDigests it is
	// also granted all permissions under instances/ so that SDKs can
	// register: then any SDK credential can rewrite or delete any service's
	// instances (the single-reader mode, weaker; see docs/security.md). Only
	// used with Digest. Optional.
	ReadOnlyDigest string
	// ServiceDigests maps a service name to the "user:password" identity
	// its ZooKeeper-direct SDKs register instances with (sdk.Config.
	// ZKInstanceDigest). When set (per-service mode), instances/{svc}
	// grants create, delete and read to svc's identity only, and the
	// reader just read: one service's SDK credential cannot touch another
	// service's instances. A service without an entry has no direct SDK
	// registration (it registers through the admin API). The store uses a
	// password only to compute its ZooKeeper digest. Only used with Digest.
	// Open brings the ACLs of the existing instances/{svc} nodes in line
	// with this map (and with ReadOnlyDigest). Optional.
	ServiceDigests map[string]string
	// InstanceDigest, "user:password", is a second identity the store
	// authenticates with, for registering instances in per-service mode:
	// the service's identity from the server's ServiceDigests. The
	// instance nodes the store creates grant it all permissions (and the
	// writer all, everyone else listed on the parent read). Optional.
	InstanceDigest string
	// Limits bounds the services, links, instances and records the store
	// holds; the zero value of each field is its configsvc constant, which
	// is also the largest allowed (see configsvc.Limits).
	Limits configsvc.Limits
	// Logger receives connection and session events. Default: discard.
	Logger *slog.Logger
	// Now returns the time recorded in revisions. Default time.Now.
	Now func() time.Time
}

// Defaults applied by Open to zero Config fields.
const (
	DefaultRoot           = "/sluice"
	DefaultSessionTimeout = 10 * time.Second
	DefaultOpTimeout      = 5 * time.Second
)

// ParseURL parses a store URL "zk://host1:2181,host2:2181/chroot" into a
// Config with Servers and Root set (Root defaults to "/sluice" when the URL
// has no path). It returns an error wrapping configsvc.ErrInvalid for any
// other scheme, a missing host, or a query string.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("zkstore: parse %q: %v: %w", raw, err, configsvc.ErrInvalid)
	}
	if u.Scheme != "zk" {
		return Config{}, fmt.Errorf("zkstore: store URL %q: scheme must be zk://: %w", raw, configsvc.ErrInvalid)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Config{}, fmt.Errorf("zkstore: store URL %q: no user, query or fragment allowed: %w", raw, configsvc.ErrInvalid)
	}
	var servers []string
	for _, h := range strings.Split(u.Host, ",") {
		if h = strings.TrimSpace(h); h != "" {
			servers = append(servers, h)
		}
	}
	if len(servers) == 0 {
		return Config{}, fmt.Errorf("zkstore: store URL %q names no server: %w", raw, configsvc.ErrInvalid)
	}
	cfg := Config{Servers: servers, Root: DefaultRoot}
	if p := strings.TrimRight(u.Path, "/"); p != "" {
		cfg.Root = p
	}
	if err := validRoot(cfg.Root); err != nil {
		return Config{}, fmt.Errorf("zkstore: store URL %q: %w", raw, err)
	}
	return cfg, nil
}

func validRoot(root string) error {
	if !strings.HasPrefix(root, "/") || root == "/" || path.Clean(root) != root || strings.ContainsAny(root, "\x00") {
		return fmt.Errorf("root %q must be an absolute, clean znode path other than /: %w", root, configsvc.ErrInvalid)
	}
	return nil
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Servers) == 0 {
		return c, fmt.Errorf("zkstore: Config.Servers is empty: %w", configsvc.ErrInvalid)
	}
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if err := validRoot(c.Root); err != nil {
		return c, fmt.Errorf("zkstore: %w", err)
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.Retention <= 0 {
		c.Retention = configsvc.DefaultRetention
	}
	if c.Retention > configsvc.MaxRetention {
		return c, fmt.Errorf("zkstore: Config.Retention %d is over the limit of %d revisions: %w", c.Retention, configsvc.MaxRetention, configsvc.ErrInvalid)
	}
	limits, err := c.Limits.Resolve()
	if err != nil {
		return c, fmt.Errorf("zkstore: Config.%w", err)
	}
	c.Limits = limits
	for _, d := range []string{c.Digest, c.ReadOnlyDigest, c.InstanceDigest} {
		if d != "" && !strings.Contains(d, ":") {
			return c, fmt.Errorf("zkstore: digest identities must be user:password: %w", configsvc.ErrInvalid)
		}
	}
	if len(c.ServiceDigests) > 0 && c.Digest == "" {
		return c, fmt.Errorf("zkstore: ServiceDigests need Digest, the writer identity that grants them: %w", configsvc.ErrInvalid)
	}
	for svc, d := range c.ServiceDigests {
		if err := configsvc.ValidateServiceName(svc); err != nil {
			return c, fmt.Errorf("zkstore: ServiceDigests: %w", err)
		}
		if !strings.Contains(d, ":") {
			return c, fmt.Errorf("zkstore: ServiceDigests[%s]: digest identities must be user:password: %w", svc, configsvc.ErrInvalid)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
