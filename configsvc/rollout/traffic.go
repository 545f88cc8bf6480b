package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// The traffic gate reads the per-instance counters every proxy publishes
// in its configsvc.ProxyState (requests, and failures: connection errors,
// timeouts and 5xx answers), per proxy, route and instance. A bake
// compares them with the counters when it began: a counter first seen
// during the bake counts from then, and one that went down (a proxy
// restarted, a route's breaker settings changed) counts from zero.

// counterKey names one counter pair: an instance of a service behind a
// route of a proxy.
type counterKey struct {
	proxy, route, service, instance string
}

type counter struct {
	requests, failures uint64
}

// baseline is the counters when a bake began.
type baseline struct {
	step     int
	counters map[counterKey]counter
}

// services returns the services whose instances a gray of ref reaches.
func (d *Driver) services(ctx context.Context, ref configsvc.Ref) (map[string]bool, error) {
	if ref.Kind == configsvc.KindService {
		return map[string]bool{ref.Name: true}, nil
	}
	users, err := d.cfg.Store.Users(ctx, ref.Name)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(users))
	for _, u := range users {
		out[u] = true
	}
	return out, nil
}

// counters reads the counters of the instances of services from the
// proxies' fresh states.
func (d *Driver) counters(ctx context.Context, services map[string]bool, now time.Time) (map[counterKey]counter, error) {
	recs, err := d.cfg.Store.Records().List(ctx, configsvc.ProxyStateCollection)
	if err != nil {
		return nil, fmt.Errorf("read the proxies' state: %w", err)
	}
	out := map[counterKey]counter{}
	for _, rec := range recs {
		var st configsvc.ProxyState
		if err := json.Unmarshal(rec.Data, &st); err != nil {
			d.cfg.Logger.Warn("rollout: proxy state record not readable", "id", rec.ID, "err", err)
			continue
		}
		if now.Sub(st.Updated) > d.cfg.ProxyStateFresh {
			continue // a proxy that stopped publishing: its counters are not news
		}
		for _, rt := range st.Routes {
			if !services[rt.Upstream.Service] {
				continue
			}
			for _, in := range rt.Instances {
				k := counterKey{proxy: rec.ID, route: rt.Name, service: rt.Upstream.Service, instance: in.ID}
				c := out[k]
				c.requests += in.Requests
				c.failures += in.Failures
				out[k] = c
			}
		}
	}
	return out, nil
}

// snapshot returns the counters for g's services now, as the baseline of
// the bake of its current step.
func (d *Driver) snapshot(ctx context.Context, g *configsvc.Gray, now time.Time) (*baseline, error) {
	svcs, err := d.services(ctx, g.Ref)
	if err != nil {
		return nil, err
	}
	c, err := d.counters(ctx, svcs, now)
	if err != nil {
		return nil, err
	}
	return &baseline{step: g.Rollout.State.Step, counters: c}, nil
}

// traffic is what the proxies saw of a gray's service since its bake
// began: the cohort's requests and failures, per instance, and the rest's.
type traffic struct {
	cohort, rest counter
	instances    map[string]counter // cohort members, by memberName
}

// traffic sums the counters' growth since b for the cohort members (all)
// and the other instances of g's services.
func (d *Driver) traffic(ctx context.Context, g *configsvc.Gray, all []configsvc.CohortMember, b *baseline, now time.Time) (traffic, error) {
	svcs, err := d.services(ctx, g.Ref)
	if err != nil {
		return traffic{}, err
	}
	cur, err := d.counters(ctx, svcs, now)
	if err != nil {
		return traffic{}, err
	}
	in := make(map[string]bool, len(all))
	for _, m := range all {
		in[memberName(g.Ref, m.Service, m.ID)] = true
	}
	tr := traffic{instances: map[string]counter{}}
	for k, c := range cur {
		base, seen := b.counters[k]
		switch {
		case !seen:
			b.counters[k] = c // first seen during the bake: counts from now
			continue
		case c.requests < base.requests || c.failures < base.failures:
			base = counter{} // the counter started over
		}
		delta := counter{requests: c.requests - base.requests, failures: c.failures - base.failures}
		inst := memberName(g.Ref, k.service, k.instance)
		if in[inst] {
			tr.cohort.requests += delta.requests
			tr.cohort.failures += delta.failures
			x := tr.instances[inst]
			x.requests += delta.requests
			x.failures += delta.failures
			tr.instances[inst] = x
		} else {
			tr.rest.requests += delta.requests
			tr.rest.failures += delta.failures
		}
	}
	return tr, nil
}

func (c counter) rate() float64 {
	if c.requests == 0 {
		return 0
	}
	return float64(c.failures) / float64(c.requests)
}

// summary says what the bake saw, for the rollout's reason.
func (t traffic) summary() string {
	if t.cohort.requests == 0 {
		return "no traffic seen"
	}
	s := fmt.Sprintf("cohort %.2f%% errors over %d requests", 100*t.cohort.rate(), t.cohort.requests)
	if t.rest.requests > 0 {
		s += fmt.Sprintf(", the rest %.2f%% over %d", 100*t.rest.rate(), t.rest.requests)
	}
	return s
}

// trafficGate returns the failure of the traffic gate: the cohort's
// failure ratio over the bake is above MaxErrorRate, or above the rest's
// by more than MaxErrorRate. No traffic passes.
func trafficGate(g *configsvc.Gray, t traffic) (*configsvc.GateFailure, string) {
	r := g.Rollout
	if t.cohort.requests == 0 {
		return nil, ""
	}
	rate := t.cohort.rate()
	over := rate > r.MaxErrorRate
	worse := t.rest.requests > 0 && rate-t.rest.rate() > r.MaxErrorRate
	if !over && !worse {
		return nil, ""
	}
	var bad, failing []string
	for inst, c := range t.instances {
		if c.requests > 0 && c.rate() > r.MaxErrorRate {
			bad = append(bad, inst)
		}
		if c.failures > 0 {
			failing = append(failing, inst)
		}
	}
	if len(bad) == 0 {
		bad = failing
	}
	sort.Strings(bad)
	f := &configsvc.GateFailure{Gate: configsvc.GateTraffic, Instances: bad, Figures: map[string]float64{
		"cohort_requests": float64(t.cohort.requests), "cohort_failures": float64(t.cohort.failures),
		"cohort_error_rate": rate, "max_error_rate": r.MaxErrorRate}}
	if t.rest.requests > 0 {
		f.Figures["rest_requests"] = float64(t.rest.requests)
		f.Figures["rest_error_rate"] = t.rest.rate()
	}
	why := fmt.Sprintf("traffic gate failed at step %d (%v %%): %s; max %.2f%%", r.State.Step+1, r.State.Percent, t.summary(), 100*r.MaxErrorRate)
	return f, why
}
