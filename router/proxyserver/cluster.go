package proxyserver

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"

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
// until ctx ends. It retries every RetryInterval while the store is
// unreachable, sluice-system does not exist yet, or an older registration
// under the same id (a proxy restarted before its ZooKeeper session ended)
// is still live. The store re-creates the registration after a ZooKeeper
// session expiry by itself.
func (p *Proxy) register(ctx context.Context, reg Registrar, id, addr string) {
	inst := configsvc.Instance{
		Service: configsvc.SystemService, ID: id, Addr: addr,
		Labels: map[string]string{configsvc.ProxyRoleLabel: configsvc.ProxyRole}, Status: configsvc.StatusApplied,
	}
	waiting := false
	for ctx.Err() == nil {
		lease, err := reg.Register(ctx, inst)
		if err == nil {
			p.log.Info("proxy registered", "service", configsvc.SystemService, "instance", id)
			<-ctx.Done()
			if err := lease.Close(); err != nil {
				p.log.Warn("proxy registration: close", "err", err)
			}
			return
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
