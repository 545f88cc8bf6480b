package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Instances lists the live instances of service svc, sorted by id.
func (c *Client) Instances(ctx context.Context, svc string) ([]configsvc.Instance, error) {
	var out InstanceList
	_, err := c.get(ctx, refPath(configsvc.Service(svc), "instances"), nil, &out)
	return out.Instances, err
}

func instancePath(svc, id string) string {
	return refPath(configsvc.Service(svc), "instances", id)
}

// PutInstance registers inst (role agent or above), or refreshes the
// registration this server holds, for the server's instance lease time
// (30 s by default), and returns the record the server keeps, whose Owner
// is the registering token's id. ErrConflict while the instance is
// registered elsewhere; ErrForbidden when another token owns it;
// configsvc.ErrTooMany over the server's instance limits. Register keeps a
// registration alive.
func (c *Client) PutInstance(ctx context.Context, inst configsvc.Instance) (configsvc.Instance, error) {
	var out Instance
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: instancePath(inst.Service, inst.ID), retry: true, noKey: true}, inst, &out)
	return out, err
}

// DeleteInstance removes the registration of instance id of svc that the
// server holds. ErrNotFound if it holds none.
func (c *Client) DeleteInstance(ctx context.Context, svc, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: instancePath(svc, id), retry: true, noKey: true})
	return err
}

// Register registers inst and keeps it registered, refreshing it every
// Config.Heartbeat, until the returned Lease is closed: the HTTP form of
// configsvc.Store.Register. A failed refresh is logged and retried at the
// next heartbeat.
func (c *Client) Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	if _, err := c.PutInstance(ctx, inst); err != nil {
		return nil, err
	}
	l := &lease{c: c, inst: inst, stop: make(chan struct{}), done: make(chan struct{})}
	go l.heartbeats()
	return l, nil
}

// lease is a registration Register keeps alive.
type lease struct {
	c       *Client
	mu      sync.Mutex // guards inst and closing
	inst    configsvc.Instance
	closing bool           // Close began: Update is refused
	puts    sync.WaitGroup // Update requests in flight, which Close waits for

	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when heartbeats returns
	closeOnce sync.Once
	closeErr  error
}

var _ configsvc.Lease = (*lease)(nil)

func (l *lease) current() configsvc.Instance {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inst
}

func (l *lease) heartbeats() {
	defer close(l.done)
	t := time.NewTicker(l.c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		inst := l.current()
		if err := l.put(context.Background(), inst); err != nil {
			l.c.cfg.Logger.Warn("api: instance refresh failed", "service", inst.Service, "instance", inst.ID, "err", err)
		}
	}
}

// put sends inst on a request that nothing cancels and that is bounded by
// heartbeatTimeout: a cancelled request may still be served after Close's
// delete and bring the instance back, so Close waits for puts in flight
// instead. ctx passes its values only.
func (l *lease) put(ctx context.Context, inst configsvc.Instance) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), heartbeatTimeout(l.c.cfg.Heartbeat))
	defer cancel()
	_, err := l.c.PutInstance(pctx, inst)
	return err
}

// Update replaces the registered record (same service and id) and sends it
// at once. When ctx ends first Update returns its error, but the request
// goes on (bounded like a refresh): a request given up on may still be
// served, so Close waits for it rather than let it land after the delete
// and bring the instance back. After Close, Update fails with
// configsvc.ErrClosed.
func (l *lease) Update(ctx context.Context, inst configsvc.Instance) error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return fmt.Errorf("api: update instance %s/%s: lease closed: %w", inst.Service, inst.ID, configsvc.ErrClosed)
	}
	l.inst = inst
	l.puts.Add(1)
	l.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer l.puts.Done()
		done <- l.put(ctx, inst)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// heartbeatTimeout bounds one refresh: the heartbeat interval, at least 3 s.
func heartbeatTimeout(every time.Duration) time.Duration {
	return max(every, 3*time.Second)
}

// Close stops the refreshes, waits for a refresh or Update in flight (at
// most the larger of the heartbeat and 3 s, so it cannot land after the
// delete) and removes the registration (within 3 s more); a registration
// the server no longer holds is not an error. It is safe to call more than
// once.
func (l *lease) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		close(l.stop)
		<-l.done
		l.puts.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		inst := l.current()
		if err := l.c.DeleteInstance(ctx, inst.Service, inst.ID); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
			l.closeErr = err
		}
	})
	return l.closeErr
}
