package proxyserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
)

// Publishing the live route table.
const (
	// DefaultStateInterval is how often Serve publishes the proxy's state
	// when Options.StateInterval is 0.
	DefaultStateInterval = 5 * time.Second
	// MaxStateSize bounds the record a proxy publishes: 4 KiB below
	// configsvc.MaxRecordSize (64 KiB). A larger state is cut (see State).
	MaxStateSize = configsvc.MaxRecordSize - 4<<10
	// StateExpiry is how long the state record of a proxy that stopped
	// without removing it (a crash) stays: running proxies on the store
	// delete records not updated for that long when they start and every 5
	// minutes (and the admin servers at their record sweeps, for proxies
	// that publish through the API).
	StateExpiry = configsvc.ProxyStateExpiry
	// sweepPeriod is how often a proxy looks for expired state records.
	sweepPeriod = 5 * time.Minute
	// minStateGap is the least time between two publishes a change
	// triggers, so that a flapping breaker or a burst of instance changes
	// cost one write a second at most.
	minStateGap = time.Second
)

// State returns what the proxy publishes about itself: its id and address
// (set by Serve; empty for a Proxy run by other means), the time (Options.Now),
// the route file revision in force, the peer count of cluster-scoped rate
// limits, and the router's live table (router.Router.State).
func (p *Proxy) State() configsvc.ProxyState {
	p.mu.Lock()
	id, addr, rev := p.stateID, p.addr, p.revision
	p.mu.Unlock()
	return configsvc.ProxyState{
		ID: id, Addr: addr, Updated: p.now().UTC(), Revision: rev,
		Peers: p.limiters.Peers(), Routes: p.router.State().Routes,
	}
}

// changed wakes the state publisher; it never blocks.
func (p *Proxy) changed() {
	select {
	case p.changes <- struct{}{}:
	default:
	}
}

// publishState writes the proxy's state to configsvc.ProxyStateCollection under id
// every interval and after the route table, a breaker, an ejection or a
// health check changed (at once when the last write is minStateGap old,
// else when it will be), until ctx ends; it then deletes the record, so
// that a cleanly stopped proxy leaves nothing behind. A proxy that crashes
// leaves its record, which readers tell apart by its Updated time and which
// the proxies delete after StateExpiry.
func (p *Proxy) publishState(ctx context.Context, id string, interval time.Duration) {
	recs := p.src.Records()
	gap := min(minStateGap, interval)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	sweepEvery := max(1, int(sweepPeriod/interval))
	for n := 0; ; n++ {
		if n%sweepEvery == 0 {
			p.sweepStates(ctx, recs, id)
		}
		last := time.Now()
		rev := p.putState(ctx, recs, id, &failing)
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-p.changes:
			// A new route revision is published at once (sluice routes put
			// waits for it); other changes (a flapping breaker) cost a
			// write per gap at most.
			p.coalesce(ctx, gap-time.Since(last), rev)
		}
		if ctx.Err() != nil {
			break
		}
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := recs.Delete(dctx, configsvc.ProxyStateCollection, id); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
		p.log.Warn("proxy state: remove record", "id", id, "err", err)
	}
}

// coalesce waits d for more changes to publish with the last one, unless
// or until the route revision is no longer rev: a new revision is
// published at once.
func (p *Proxy) coalesce(ctx context.Context, d time.Duration, rev int64) {
	if d <= 0 || p.Revision() != rev {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-p.changes:
			if p.Revision() != rev {
				return
			}
		}
	}
}

// sweepStates deletes the state records of other proxies not updated for
// StateExpiry. Records it cannot read are left alone.
func (p *Proxy) sweepStates(ctx context.Context, recs configsvc.RecordStore, self string) {
	list, err := recs.List(ctx, configsvc.ProxyStateCollection)
	if err != nil {
		return // the next sweep tries again; putState reports store trouble
	}
	now := p.now()
	for _, rec := range list {
		var st struct {
			Updated time.Time `json:"updated"`
		}
		if rec.ID == self || json.Unmarshal(rec.Data, &st) != nil || now.Sub(st.Updated) < StateExpiry {
			continue
		}
		if err := recs.Delete(ctx, configsvc.ProxyStateCollection, rec.ID); err == nil {
			p.log.Info("proxy state: removed the record of a proxy gone since", "id", rec.ID, "updated", st.Updated)
		}
	}
}

// putState writes one state record and returns the route revision it
// holds. Failures are logged at warning level once, then at debug level
// until a write succeeds again.
func (p *Proxy) putState(ctx context.Context, recs configsvc.RecordStore, id string, failing *bool) int64 {
	st := p.State()
	data, err := encodeState(st, MaxStateSize)
	if err == nil {
		err = recs.Put(ctx, configsvc.ProxyStateCollection, id, data)
	}
	switch {
	case err == nil:
		if *failing {
			p.log.Info("proxy state published again", "id", id)
		}
		*failing = false
	case ctx.Err() != nil:
	default:
		if !*failing {
			p.log.Warn("proxy state not published", "id", id, "err", err)
		} else {
			p.log.Debug("proxy state not published", "id", id, "err", err)
		}
		*failing = true
	}
	return st.Revision
}

// encodeState marshals st in at most limit bytes. A state too large keeps
// fewer instances per route (halving the most any route lists until it
// fits, down to none), then fewer routes (from the end of the file),
// counting what it left out in InstancesOmitted and RoutesOmitted.
func encodeState(st configsvc.ProxyState, limit int) ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil || len(b) <= limit {
		return b, err
	}
	most := 0
	for _, r := range st.Routes {
		most = max(most, len(r.Instances))
	}
	routes := make([]configsvc.RouteState, len(st.Routes)) // the caller's slice stays as it was
	cut := st
	cut.Routes = routes
	for keep := most / 2; ; keep /= 2 {
		copy(routes, st.Routes)
		for i := range routes {
			if n := len(routes[i].Instances); n > keep {
				routes[i].Instances = routes[i].Instances[:keep]
				routes[i].InstancesOmitted += n - keep
			}
		}
		if b, err = json.Marshal(cut); err != nil || len(b) <= limit {
			return b, err
		}
		if keep == 0 {
			break
		}
	}
	// Even without instances the routes do not fit: keep the first ones,
	// in proportion to the size, until they do.
	n := len(routes)
	for n > 0 {
		n = min(n-1, n*limit/len(b))
		cut.Routes, cut.RoutesOmitted = routes[:n], len(routes)-n
		if b, err = json.Marshal(cut); err != nil || len(b) <= limit {
			return b, err
		}
	}
	return nil, fmt.Errorf("proxyserver: proxy state of %d bytes without routes exceeds %d: %w", len(b), limit, configsvc.ErrInvalid)
}

// notifyingBreakers makes the inner breakers and calls notify after every
// state change, so that the published state follows a breaker quickly.
type notifyingBreakers struct {
	inner  router.Breakers
	notify func()
}

func (n notifyingBreakers) NewBreaker(name string, cb router.CircuitBreaker, onChange func(from, to router.BreakerState)) router.Breaker {
	return n.inner.NewBreaker(name, cb, func(from, to router.BreakerState) {
		if onChange != nil {
			onChange(from, to)
		}
		n.notify()
	})
}
