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
// Each has an owner, the token that registered it: only that token or an
// admin may refresh or remove it.
type leaseTable struct {
	mu      sync.Mutex
	entries map[string]*heldLease
	owners  map[string]int // token id → registrations it owns here
	closed  bool
}

type heldLease struct {
	mu      sync.Mutex // serializes store I/O on this lease
	lease   configsvc.Lease
	owner   string // id of the token that registered it (configsvc.Instance.Owner)
	expires time.Time
	gone    bool // closed and removed from the table
}

func newLeaseTable() *leaseTable {
	return &leaseTable{entries: map[string]*heldLease{}, owners: map[string]int{}}
}

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

// lock returns key's entry, created if need be, with its mu held. It
// returns nil after closeAll.
func (t *leaseTable) lock(key string) *heldLease {
	for {
		e := t.entry(key, true)
		if e == nil {
			return nil
		}
		e.mu.Lock()
		if !e.gone {
			return e
		}
		e.mu.Unlock() // removed while we waited: take the table's new entry
	}
}

// remove takes e out of the table. e.mu must be held.
func (t *leaseTable) remove(key string, e *heldLease) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries[key] == e {
		delete(t.entries, key)
	}
	if !e.gone && e.owner != "" {
		if t.owners[e.owner]--; t.owners[e.owner] <= 0 {
			delete(t.owners, e.owner)
		}
	}
	e.gone = true
}

// owned counts the live registrations owned by token.
func (t *leaseTable) owned(token string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.owners[token]
}

// own records that e, just registered, is owned by token. e.mu must be
// held.
func (t *leaseTable) own(e *heldLease, token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e.owner = token
	t.owners[token]++
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
	t.owners = map[string]int{}
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
	if !ok || !s.authorize(c, access.ActionInstances, access.Target{Ref: ref}) {
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

// ownerCheck refuses (403) a caller other than an admin or owner, the token
// that registered instance id of ref.
func (s *Server) ownerCheck(c *gin.Context, owner string, ref configsvc.Ref, id, verb string) bool {
	p := state(c).principal
	if owner == "" || owner == p.TokenID || p.IsAdmin() {
		return true
	}
	st := state(c)
	st.authorized = false
	st.reason = fmt.Sprintf("instance %s of %s was registered by token %s: only that token or an admin may %s it", id, ref.Name, owner, verb)
	s.failf(c, api.ErrForbidden, "%s", st.reason)
	return false
}

// foreignOwner returns the owner of the live instance id of svc when it is
// neither empty nor the caller's token (nor the caller an admin): the
// instance is another token's, so a registration under its id is refused
// with 403 rather than reported as a conflict.
func (s *Server) foreignOwner(c *gin.Context, svc, id string) string {
	p := state(c).principal
	if p.IsAdmin() {
		return ""
	}
	list, err := s.cfg.Store.Instances(c.Request.Context(), svc)
	if err != nil {
		return ""
	}
	for _, in := range list {
		if in.ID == id && in.Owner != "" && in.Owner != p.TokenID {
			return in.Owner
		}
	}
	return ""
}

// checkInstanceLimits refuses (429) a new registration by the caller when
// its token already keeps MaxInstancesPerToken instances through this
// server, or svc has MaxInstancesPerService live instances.
func (s *Server) checkInstanceLimits(c *gin.Context, svc string) bool {
	token := state(c).principal.TokenID
	if limit := s.cfg.MaxInstancesPerToken; limit > 0 {
		if n := s.leases.owned(token); n >= limit {
			s.fail(c, &configsvc.CountError{What: "instances registered by token " + token + " through this server", Count: int64(n), Limit: int64(limit), Setting: settingInstancesToken})
			return false
		}
	}
	if limit := s.cfg.MaxInstancesPerService; limit > 0 {
		n, err := s.serviceInstances(c.Request.Context(), svc)
		if err != nil {
			s.fail(c, err)
			return false
		}
		if n >= limit {
			s.fail(c, &configsvc.CountError{What: "live instances of service " + svc, Count: int64(n), Limit: int64(limit), Setting: settingInstancesService})
			return false
		}
	}
	return true
}

// registerInstance registers or refreshes an instance held by this server
// for InstanceTTL. The instance's owner is the caller's token; a refresh by
// another token (unless an admin) is refused, and the owner of a
// registration never changes.
func (s *Server) registerInstance(c *gin.Context) {
	ref, id, ok := s.instanceParams(c)
	if !ok {
		return
	}
	now := s.cfg.Now().UTC()
	inst, err := decodeInstance(c, ref, id, now)
	if err != nil {
		s.fail(c, err)
		return
	}
	inst = configsvc.NormalizeInstance(inst) // the stores keep UTC; answer what they keep
	ctx := c.Request.Context()
	if _, err := s.cfg.Store.Head(ctx, ref); err != nil {
		s.fail(c, err)
		return
	}
	key := leaseKey(ref.Name, id)
	e := s.leases.lock(key)
	if e == nil {
		s.fail(c, userErr(configsvc.ErrClosed, "the server is shutting down; register through another server"))
		return
	}
	defer e.mu.Unlock()
	status := http.StatusCreated
	if e.lease != nil {
		status = http.StatusOK
		if !s.refreshLease(c, e, ref, &inst) {
			return
		}
	} else if !s.newLease(c, e, key, &inst) {
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

// decodeInstance reads the body of a registration of instance id of ref:
// service and id default to the path's and must match it, the status
// defaults to starting, and the times are stamped with now.
func decodeInstance(c *gin.Context, ref configsvc.Ref, id string, now time.Time) (configsvc.Instance, error) {
	var inst configsvc.Instance
	if err := decodeJSON(c, MaxJSONBody, &inst); err != nil {
		return inst, err
	}
	if inst.Service == "" {
		inst.Service = ref.Name
	}
	if inst.ID == "" {
		inst.ID = id
	}
	if inst.Service != ref.Name || inst.ID != id {
		return inst, &configsvc.FieldError{Field: "body", Value: inst.Service + "/" + inst.ID, Msg: "service and id must match the path"}
	}
	switch inst.Status {
	case "":
		inst.Status = configsvc.StatusStarting
	case configsvc.StatusStarting, configsvc.StatusApplied, configsvc.StatusRejected:
	default:
		return inst, &configsvc.FieldError{Field: "status", Value: string(inst.Status), Msg: "must be starting, applied or rejected"}
	}
	if err := inst.Validate(); err != nil {
		return inst, err
	}
	inst.Updated = now
	if inst.Started.IsZero() {
		inst.Started = now
	}
	return inst, nil
}

// refreshLease updates the instance of e's lease (e locked) to inst, whose
// owner stays the registering token's; a caller other than that token or an
// admin is refused (403). It reports whether it succeeded; on failure the
// answer is written.
func (s *Server) refreshLease(c *gin.Context, e *heldLease, ref configsvc.Ref, inst *configsvc.Instance) bool {
	if !s.ownerCheck(c, e.owner, ref, inst.ID, "update") {
		return false
	}
	inst.Owner = e.owner
	if err := e.lease.Update(c.Request.Context(), *inst); err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

// newLease registers inst in the store, owned by the caller's token, and
// keeps its lease in e (locked, held under key). It refuses a caller over
// its instance limits (429) and an id another token's live instance holds
// (403); a registration elsewhere that has not expired yet is a conflict
// (409). On failure e leaves the lease table and the answer is written.
func (s *Server) newLease(c *gin.Context, e *heldLease, key string, inst *configsvc.Instance) bool {
	if !s.checkInstanceLimits(c, inst.Service) {
		s.leases.remove(key, e)
		return false
	}
	caller := state(c).principal.TokenID
	inst.Owner = caller
	lease, err := s.cfg.Store.Register(c.Request.Context(), *inst)
	if err != nil {
		s.leases.remove(key, e)
		if errors.Is(err, configsvc.ErrConflict) {
			ref := configsvc.Ref{Kind: configsvc.KindService, Name: inst.Service}
			if owner := s.foreignOwner(c, inst.Service, inst.ID); !s.ownerCheck(c, owner, ref, inst.ID, "update") {
				return false
			}
			err = userErr(err, "instance %s of service %s is registered elsewhere (another server or a direct SDK registration) and must expire first", inst.ID, inst.Service)
		}
		s.fail(c, err)
		return false
	}
	e.lease = lease
	s.leases.own(e, caller)
	s.instanceAdded(inst.Service)
	return true
}

// deregisterInstance removes an instance: one registered through this
// server by its owner or an admin (the lease is closed), any other by an
// admin (its record is removed from the store, whoever holds it: a
// ZooKeeper session of a process that died, another server's lease; a
// registration that is alive after all writes its record again at its next
// refresh).
func (s *Server) deregisterInstance(c *gin.Context) {
	ref, id, ok := s.instanceParams(c)
	if !ok {
		return
	}
	if s.closeHeldLease(c, ref, id) {
		return
	}
	if !state(c).principal.IsAdmin() {
		s.fail(c, &userError{msg: fmt.Sprintf("instance %s of service %s is not registered through this server; "+
			"only the server holding it or an admin can remove it", id, ref.Name), err: configsvc.ErrNotFound})
		return
	}
	if err := s.cfg.Store.RemoveInstance(c.Request.Context(), ref.Name, id); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// closeHeldLease removes instance id of ref when this server holds its
// lease and the caller is its owner or an admin. It reports whether the
// request is answered.
func (s *Server) closeHeldLease(c *gin.Context, ref configsvc.Ref, id string) bool {
	key := leaseKey(ref.Name, id)
	e := s.leases.entry(key, false)
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone || e.lease == nil {
		return false
	}
	if !s.ownerCheck(c, e.owner, ref, id, "remove") {
		return true
	}
	err := e.lease.Close()
	s.leases.remove(key, e)
	if err != nil {
		s.fail(c, err)
		return true
	}
	c.Status(http.StatusNoContent)
	return true
}
