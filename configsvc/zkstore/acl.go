package zkstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"
)

// ACL modes (docs/zookeeper-layout.md, "ACLs"):
//
//   - open: no Config.Digest; every node is world:anyone, all permissions.
//   - writer: Digest alone; every node grants the writer all permissions.
//   - single reader (Digest + ReadOnlyDigest): the reader may read every
//     node and do anything under instances/, so any SDK credential can
//     rewrite or delete any service's instances. Kept for existing
//     deployments; weaker.
//   - per service (Digest + ServiceDigests): the reader (when set) may
//     read every node, instances/ included; instances/{svc} also grants
//     create, delete, read and admin to svc's own identity; an instance node
//     grants all to the identity that created it and to the writer, read to
//     everyone else the parent lists. One service's credential cannot
//     create, change or delete another service's instance nodes.
type acls struct {
	all      []zk.ACL          // every node outside instances/
	instRoot []zk.ACL          // instances/ and, before the per-service entry, instances/{svc}
	perSvc   map[string]zk.ACL // per-service mode: svc → its identity on instances/{svc}
	// self is the identity that owns the instance nodes this store creates
	// (Config.InstanceDigest, else Config.Digest); nil without a digest.
	self *zk.ACL
	// granting: this store is the server that hands out permissions, so
	// Open brings the ACLs of instances/ and instances/{svc} in line.
	granting bool
}

// perSvcPerms is what a service's own identity may do on instances/{svc}:
// create and delete children (its instance nodes), and read the node's ACL,
// which it copies onto the nodes it creates. Reading it takes admin:
// ZooKeeper masks the digests of an ACL for anyone else, and the writer's
// must be copied exactly. Admin also lets the identity change that one
// node's ACL: it can open or close its own service's registry (the writer
// restores it at its next start), never another service's.
const perSvcPerms = zk.PermCreate | zk.PermDelete | zk.PermRead | zk.PermAdmin

func digestACL(perms int32, digest string) zk.ACL {
	user, pass, _ := strings.Cut(digest, ":")
	return zk.DigestACL(perms, user, pass)[0]
}

func buildACLs(cfg Config) acls {
	if cfg.Digest == "" {
		world := zk.WorldACL(zk.PermAll)
		return acls{all: world, instRoot: world}
	}
	w := digestACL(zk.PermAll, cfg.Digest)
	a := acls{all: []zk.ACL{w}, instRoot: []zk.ACL{w}, granting: cfg.ReadOnlyDigest != "" || len(cfg.ServiceDigests) > 0}
	self := w
	if cfg.InstanceDigest != "" {
		self = digestACL(zk.PermAll, cfg.InstanceDigest)
	}
	a.self = &self
	if cfg.ReadOnlyDigest != "" {
		a.all = append(a.all, digestACL(zk.PermRead, cfg.ReadOnlyDigest))
		if len(cfg.ServiceDigests) == 0 {
			a.instRoot = append(a.instRoot, digestACL(zk.PermAll, cfg.ReadOnlyDigest)) // single reader: weaker
		} else {
			a.instRoot = append(a.instRoot, digestACL(zk.PermRead, cfg.ReadOnlyDigest))
		}
	}
	if len(cfg.ServiceDigests) > 0 {
		a.perSvc = make(map[string]zk.ACL, len(cfg.ServiceDigests))
		for svc, d := range cfg.ServiceDigests {
			a.perSvc[svc] = digestACL(perSvcPerms, d)
		}
	}
	return a
}

// instParentACL is the ACL of instances/{svc}.
func (a *acls) instParentACL(svc string) []zk.ACL {
	out := slices.Clone(a.instRoot)
	if e, ok := a.perSvc[svc]; ok {
		out = append(out, e)
	}
	return out
}

// instanceACL is the ACL of an instance node this store creates under a
// parent with ACL parent: all for its own identity and for the writers
// (the entries with all rights on the parent), read for every other entry
// (the reader; the service's identity when the server registers). In
// single-reader mode the reader has all rights on the parent and so keeps
// them on the node, as before per-service identities existed.
func (a *acls) instanceACL(parent []zk.ACL) []zk.ACL {
	if a.self == nil {
		return parent
	}
	out := make([]zk.ACL, 0, len(parent)+1)
	mine := false
	for _, e := range parent {
		switch {
		case e.Scheme == a.self.Scheme && e.ID == a.self.ID:
			e.Perms, mine = zk.PermAll, true
		case e.Perms == zk.PermAll:
		default:
			e.Perms = zk.PermRead
		}
		out = append(out, e)
	}
	if !mine {
		out = append(out, *a.self)
	}
	return out
}

// reconcileACLs sets the ACLs of instances/ and of every instances/{svc}
// to what the store's Config says, so that a change of mode (single reader
// to per service, a service's identity added or removed) reaches the
// nodes that exist already. Instance nodes keep the ACL they were created
// with: they are ephemeral and go with their SDK's session.
func (s *Store) reconcileACLs(ctx context.Context) error {
	if !s.acls.granting {
		return nil
	}
	root := s.cfg.Root + "/instances"
	if err := s.setACLIfDifferent(ctx, root, s.acls.instRoot); err != nil {
		return err
	}
	kids, err := s.children(ctx, root)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, svc := range kids {
		g.Go(func() error { return s.setACLIfDifferent(gctx, root+"/"+svc, s.acls.instParentACL(svc)) })
	}
	return g.Wait()
}

func (s *Store) setACLIfDifferent(ctx context.Context, p string, want []zk.ACL) error {
	err := s.do(ctx, func(c *zk.Conn) error {
		have, _, err := c.GetACL(p)
		if err != nil {
			return err
		}
		if sameACL(have, want) {
			return nil
		}
		_, err = c.SetACL(p, want, -1)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set the ACL of %s: %w", p, err)
	}
	return nil
}

func sameACL(a, b []zk.ACL) bool {
	key := func(l []zk.ACL) []string {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = fmt.Sprintf("%s:%s:%d", e.Scheme, e.ID, e.Perms)
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}
