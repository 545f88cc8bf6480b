package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// leaseTable holds the instance registrations this server keeps alive on
// behalf of SDKs using the HTTP transport. Each expires InstanceTTL after its
// last refresh. A registration lives in the server that took it: a refresh
// that reaches another server is answered 409 until the first lease expires.
type leaseTable struct {
	mu      sync.Mutex
	entries map[string]*heldLease
	closed  bool
}

type heldLease struct {
	mu      sync.Mutex // serializes store I/O on this lease
	lease   configsvc.Lease
	expires time.Time
	gone    bool // closed and removed from the table
}

func newLeaseTable() *leaseTable { return &leaseTable{entries: map[string]*heldLease{}} }

func leaseKey(svc, id string) string { return svc + "/" + id }

// entry returns the entry for key, creating it when create is set. It
// returns nil after closeAll.
func (t *leaseTable) entry(key string, create bool) *heldLease {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	e := t.entries[key]
	if e == nil && create {
		e = &heldLease{}
		t.entries[key] = e
	}
	return e
}

func (t *leaseTable) remove(key string, e *heldLease) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries[key] == e {
		delete(t.entries, key)
	}
	e.gone = true
}

// all returns a copy of the table.
func (t *leaseTable) all() map[string]*heldLease {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]*heldLease{}
	for k, e := range t.entries {
		out[k] = e
	}
	return out
}

func (t *leaseTable) closeAll() {
	t.mu.Lock()
	t.closed = true
	entries := t.entries
	t.entries = map[string]*heldLease{}
	t.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		if e.lease != nil {
			_ = e.lease.Close()
		}
		e.gone = true
		e.mu.Unlock()
	}
}

// sweepLeases closes every lease whose expiry has passed.
func (s *Server) sweepLeases() {
	now := s.cfg.Now()
	for key, e := range s.leases.all() {
		e.mu.Lock()
		if !e.gone && e.lease != nil && !now.Before(e.expires) {
			if err := e.lease.Close(); err != nil {
				s.cfg.Logger.Warn("closing expired instance lease", "instance", key, "err", err)
			}
			s.leases.remove(key, e)
		}
		e.mu.Unlock()
	}
}

func (s *Server) listInstances(c *gin.Context) {
	ref, ok := s.refParam(c, configsvc.KindService)
	if !ok || !s.authorizeRead(c, ref) {
		return
	}
	ctx := c.Request.Context()
	if _, err := s.cfg.Store.Head(ctx, ref); err != nil {
		s.fail(c, err)
		return
	}
	list, err := s.cfg.Store.Instances(ctx, ref.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, api.InstanceList{Instances: nonNil(list), Service: ref.Name})
}

func (s *Server) instanceParams(c *gin.Context) (configsvc.Ref, string, bool) {
	ref, ok := s.refParam(c, configsvc.KindService)
	if !ok {
		return ref, "", false
	}
	id, err := param(c, "id")
	if err == nil {
		err = configsvc.ValidateInstanceID(id)
	}
	if err != nil {
		s.fail(c, err)
		return ref, "", false
	}
	state(c).target = ref.String() + "/instances/" + id
	return ref, id, s.authorize(c, access.ActionRegister, access.Target{Ref: ref})
}

// registerInstance registers or refreshes an instance held by this server
// for InstanceTTL.
func (s *Server) registerInstance(c *gin.Context) {
	ref, id, ok := s.instanceParams(c)
	if !ok {
		return
	}
	var inst configsvc.Instance
	if err := decodeJSON(c, MaxJSONBody, &inst); err != nil {
		s.fail(c, err)
		return
	}
	if inst.Service == "" {
		inst.Service = ref.Name
	}
	if inst.ID == "" {
		inst.ID = id
	}
	if inst.Service != ref.Name || inst.ID != id {
		s.fail(c, &configsvc.FieldError{Field: "body", Value: inst.Service + "/" + inst.ID, Msg: "service and id must match the path"})
		return
	}
	switch inst.Status {
	case "":
		inst.Status = configsvc.StatusStarting
	case configsvc.StatusStarting, configsvc.StatusApplied, configsvc.StatusRejected:
	default:
		s.fail(c, &configsvc.FieldError{Field: "status", Value: string(inst.Status), Msg: "must be starting, applied or rejected"})
		return
	}
	if err := inst.Validate(); err != nil {
		s.fail(c, err)
		return
	}
	now := s.cfg.Now().UTC()
	inst.Updated = now
	if inst.Started.IsZero() {
		inst.Started = now
	}
	ctx := c.Request.Context()
	if _, err := s.cfg.Store.Head(ctx, ref); err != nil {
		s.fail(c, err)
		return
	}
	key := leaseKey(ref.Name, id)
	var e *heldLease
	for {
		if e = s.leases.entry(key, true); e == nil {
			s.fail(c, fmt.Errorf("server shutting down: %w", configsvc.ErrClosed))
			return
		}
		e.mu.Lock()
		if !e.gone {
			break
		}
		e.mu.Unlock() // removed while we waited: take the table's new entry
	}
	defer e.mu.Unlock()
	status := http.StatusOK
	var err error
	if e.lease != nil {
		err = e.lease.Update(ctx, inst)
	} else {
		status = http.StatusCreated
		e.lease, err = s.cfg.Store.Register(ctx, inst)
		if err != nil {
			e.lease = nil
			s.leases.remove(key, e)
			if errors.Is(err, configsvc.ErrConflict) {
				err = fmt.Errorf("instance %s of %s is registered elsewhere (another server or a direct SDK registration) and must expire first: %w", id, ref.Name, err)
			}
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	e.expires = now.Add(s.cfg.InstanceTTL)
	// A refresh of a lease this server holds is routine: auditing every
	// heartbeat would bury the changes people make. Registration, refusals
	// and deregistration are audited.
	state(c).routine = status == http.StatusOK
	c.Header("X-Sluice-Lease-Seconds", fmt.Sprint(int(s.cfg.InstanceTTL/time.Second)))
	c.JSON(status, inst)
}

// deregisterInstance removes an instance registered through this server.
func (s *Server) deregisterInstance(c *gin.Context) {
	ref, id, ok := s.instanceParams(c)
	if !ok {
		return
	}
	key := leaseKey(ref.Name, id)
	e := s.leases.entry(key, false)
	if e == nil {
		s.fail(c, fmt.Errorf("instance %s of %s is not registered through this server: %w", id, ref.Name, configsvc.ErrNotFound))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone || e.lease == nil {
		s.fail(c, fmt.Errorf("instance %s of %s is not registered through this server: %w", id, ref.Name, configsvc.ErrNotFound))
		return
	}
	err := e.lease.Close()
	s.leases.remove(key, e)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
