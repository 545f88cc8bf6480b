package proxyserver

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// Registrar is implemented by sources that hold instance registrations;
// configsvc.Store does. Serve registers the proxy through it.
type Registrar interface {
	Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error)
}

// DefaultInstanceID returns the id a proxy serving on addr registers under
// when Options.InstanceID is empty: "proxy-<hostname>-<port>", with
// characters an instance id does not allow replaced by "-".
func DefaultInstanceID(addr string) string {
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		port = "0"
	}
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, "proxy-"+host+"-"+port)
	if len(id) > configsvc.MaxFileNameLen {
		id = id[len(id)-configsvc.MaxFileNameLen:]
		id = "p" + id[1:]
	}
	return id
}

// register keeps this proxy registered as an instance of sluice-system
// until ctx ends, its record stamped with the proxy's clock and the route
// file revision in force (updated when another comes into force, with
// AppliedAt saying since when). It retries every RetryInterval while the
// store is unreachable, sluice-system does not exist yet, or an older
// registration under the same id (a proxy restarted before its ZooKeeper
// session ended) is still live. The store re-creates the registration
// after a ZooKeeper session expiry by itself.
func (p *Proxy) register(ctx context.Context, reg Registrar, id, addr string) {
	now := p.now().UTC()
	inst := configsvc.Instance{
		Service: configsvc.SystemService, ID: id, Addr: addr,
		Labels: map[string]string{configsvc.ProxyRoleLabel: configsvc.ProxyRole}, Status: configsvc.StatusApplied,
		Revision: p.Revision(), Started: now, Updated: now, AppliedAt: now,
	}
	waiting := false
	for ctx.Err() == nil {
		inst.Updated = p.now().UTC()
		if rev := p.Revision(); rev != inst.Revision {
			inst.Revision, inst.AppliedAt = rev, inst.Updated
		}
		lease, err := reg.Register(ctx, inst)
		if err == nil {
			p.log.Info("proxy registered", "service", configsvc.SystemService, "instance", id)
			inst = p.holdRegistration(ctx, lease, inst)
			if err := lease.Close(); err != nil {
				p.log.Warn("proxy registration: close", "err", err)
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, configsvc.ErrNotFound) {
			p.log.Log(ctx, onceLevel(&waiting), "proxy registration waits for service sluice-system", "retry", p.opts.RetryInterval)
		} else {
			p.log.Warn("proxy registration", "err", err, "retry", p.opts.RetryInterval)
		}
		if lifecycle.Sleep(ctx, p.opts.RetryInterval) != nil {
			return
		}
	}
}

// holdRegistration keeps lease's record at the route file revision in
// force until ctx ends or the registration ends under it (sluice-system
// was deleted: register again), and returns the newest record.
func (p *Proxy) holdRegistration(ctx context.Context, lease configsvc.Lease, inst configsvc.Instance) configsvc.Instance {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return inst
		case <-p.applied:
		case <-retry:
		}
		retry = nil
		rev := p.Revision()
		if rev == inst.Revision {
			continue
		}
		next := inst
		now := p.now().UTC()
		next.Revision, next.Updated, next.AppliedAt = rev, now, now
		err := lease.Update(ctx, next)
		switch {
		case err == nil:
			inst = next
		case errors.Is(err, configsvc.ErrNotFound), errors.Is(err, configsvc.ErrClosed):
			return next
		case ctx.Err() == nil:
			p.log.Warn("proxy registration: update", "revision", rev, "err", err, "retry", p.opts.RetryInterval)
			retry = time.After(p.opts.RetryInterval)
		}
	}
}

// followPeers counts the proxies registered as instances of sluice-system
// (label role=proxy) and gives the count to the cluster-scoped rate
// limiters: the other registered proxies, plus this one whether or not its
// own registration is visible yet. Until the first list arrives, and while
// the store is unreachable, the last count stays in force.
func (p *Proxy) followPeers(ctx context.Context) {
	for ctx.Err() == nil {
		for ev := range p.src.WatchInstances(ctx, configsvc.SystemService) {
			if ev.Err != nil {
				continue
			}
			n := 1
			for _, in := range ev.Instances {
				if in.Labels[configsvc.ProxyRoleLabel] == configsvc.ProxyRole && in.ID != p.selfID() {
					n++
				}
			}
			if old := p.limiters.Peers(); old != n {
				p.limiters.SetPeers(n)
				p.log.Info("cluster rate limits re-divided", "proxies", n, "was", old)
			}
		}
		if lifecycle.Sleep(ctx, p.opts.RetryInterval) != nil {
			return
		}
	}
}

func (p *Proxy) selfID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.instanceID
}
