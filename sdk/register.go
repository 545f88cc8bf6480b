package sdk

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// registrar keeps the instance registered and its record (applied revision,
// status) current. It retries with backoff while the store is unreachable,
// registers anew when its lease ended under it (the service was deleted,
// ErrNotFound), and removes the registration when the client closes.
type registrar struct {
	c    *Client
	mu   sync.Mutex
	inst configsvc.Instance
	wake chan struct{}
}

func newRegistrar(c *Client) *registrar {
	now := c.cfg.Now().UTC()
	return &registrar{
		c: c,
		inst: configsvc.Instance{
			Service: c.cfg.Service, ID: c.cfg.Instance.ID, Addr: c.cfg.Instance.Addr,
			Labels: c.cfg.Instance.Labels, Status: configsvc.StatusStarting, Started: now, Updated: now,
		},
		wake: make(chan struct{}, 1),
	}
}

// set changes the record with f and schedules an update.
func (r *registrar) set(f func(*configsvc.Instance)) {
	r.mu.Lock()
	f(&r.inst)
	r.inst.Updated = r.c.cfg.Now().UTC()
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *registrar) current() configsvc.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst := r.inst
	return inst
}

func (r *registrar) run(ctx context.Context) {
	log := r.c.log.With("instance", r.c.cfg.Instance.ID)
	bo := api.Backoff{Min: r.c.cfg.RetryMin, Max: r.c.cfg.RetryMax}
	var lease configsvc.Lease
	defer func() {
		if lease != nil {
			if err := lease.Close(); err != nil {
				log.Warn("sdk: removing the instance registration", "err", err)
			}
		}
	}()
	dirty, failures := false, 0
	for {
		var err error
		switch {
		case lease == nil:
			lease, err = r.register(ctx)
		case dirty:
			uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = lease.Update(uctx, r.current())
			cancel()
			if errors.Is(err, configsvc.ErrNotFound) || errors.Is(err, configsvc.ErrClosed) {
				// The registration ended under us (its service was deleted,
				// perhaps created again): register anew.
				_ = lease.Close()
				lease = nil
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			if failures == 1 || errors.Is(err, configsvc.ErrConflict) && failures%10 == 1 {
				log.Warn("sdk: instance registration failed, retrying", "err", err)
			}
			if !bo.Wait(ctx) {
				return
			}
			continue
		}
		if failures > 0 {
			log.Info("sdk: instance registered")
		}
		dirty, failures = false, 0
		bo.Reset()
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			dirty = true
		}
	}
}

func (r *registrar) register(ctx context.Context) (configsvc.Lease, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	src, err := r.c.source(rctx)
	if err != nil {
		return nil, err
	}
	// Drain a pending wake: the registration carries the current record.
	select {
	case <-r.wake:
	default:
	}
	return src.store.Register(rctx, r.current())
}
