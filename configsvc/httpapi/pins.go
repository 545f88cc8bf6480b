package httpapi

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// pinJSON returns the wire form of p with its state now.
func (s *Server) pinJSON(p configsvc.Pin) api.Pin {
	st := api.PinActive
	switch s.pins.Check(p) {
	case configsvc.ErrPinRevoked:
		st = api.PinRevoked
	case configsvc.ErrPinExpired:
		st = api.PinExpired
	}
	p.Created, p.Expires = p.Created.UTC(), p.Expires.UTC()
	return api.Pin{Pin: p, State: st}
}

// createPin creates a pin; the caller must hold ActionPin on every target.
// The request is validated before it is authorized, so that the audit
// target names only well-formed services.
func (s *Server) createPin(c *gin.Context) {
	var req api.PinRequest
	if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
		s.fail(c, err)
		return
	}
	ttl, err := access.ParsePinTTL(req.TTL)
	spec := access.PinSpec{Targets: req.Targets, TTL: ttl, Note: req.Note}
	if err == nil {
		err = spec.Validate()
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	svcs := make([]string, 0, len(req.Targets))
	for svc := range req.Targets {
		svcs = append(svcs, svc)
	}
	sort.Strings(svcs)
	st := state(c)
	st.target = "pin/" + strings.Join(svcs, ",")
	for _, svc := range svcs {
		if !s.authorize(c, access.ActionPin, access.Target{Ref: configsvc.Service(svc)}) {
			return
		}
	}
	token, pin, err := s.pins.Create(c.Request.Context(), spec, st.principal.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.pinNews.notify()
	st.target = "pin/" + pin.ID
	out := s.pinJSON(pin)
	out.Secret = token
	c.JSON(http.StatusCreated, out)
}

// listPins lists pins the caller may see, each with only the targets the
// caller may see: all for admins, else the targets on services whose
// instances the caller may list (access.ActionInstances); a pin with no
// such target is left out, and one with some hidden says how many in
// hidden_targets. Tokens are never listed.
func (s *Server) listPins(c *gin.Context) {
	all, err := s.pins.List(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	p := state(c).principal
	out := []api.Pin{}
	for _, pin := range all {
		visible := s.visibleTargets(p, pin.Targets)
		if len(visible) == 0 {
			continue
		}
		hidden := len(pin.Targets) - len(visible)
		pin.Targets = visible
		out = append(out, s.pinJSON(pin))
		out[len(out)-1].HiddenTargets = hidden
	}
	c.JSON(http.StatusOK, api.PinList{Pins: out})
}

// revokePin marks a pin revoked; the caller must hold ActionPin on every
// target. Revoked pins stay (the proxy answers "revoked") until they are
// swept, a while after they expire.
func (s *Server) revokePin(c *gin.Context) {
	id, err := param(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	st := state(c)
	st.target = "pin/" + configsvc.Truncate(id, 12)
	ctx := c.Request.Context()
	pin, err := s.pins.Get(ctx, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	for svc := range pin.Targets {
		if !s.authorize(c, access.ActionPin, access.Target{Ref: configsvc.Service(svc)}) {
			return
		}
	}
	if pin, err = s.pins.Revoke(ctx, id, st.principal.Name); err != nil {
		s.fail(c, err)
		return
	}
	s.pinNews.notify()
	c.JSON(http.StatusOK, s.pinJSON(pin))
}

// PinsPollInterval is how often the pins streams (GET /v1/pins/watch) of
// a Server read the stored pins for changes made through other servers:
// one read per interval for all of them (pinsHub), not one per stream. A
// pin created or revoked through this server is read and sent at once, and
// a stream that opens reads the store at once for its first event.
const PinsPollInterval = time.Second

// pinNews wakes the pins reader of this server (pinsHub) after a pin
// changed here.
// The zero value is ready to use.
type pinNews struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (n *pinNews) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// notify wakes every waiter.
func (n *pinNews) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// pinsUpdate is one step of a pins stream: the list, or a store error.
type pinsUpdate struct {
	data api.PinsData
	err  error
}

// watchPins streams the pins a proxy resolves tokens with (admins and
// proxies only: it carries their record keys): a "pins" event with every
// stored pin that has a target whose instances the caller may list, with
// only those targets, now and after every change of that list. The store is
// read by the Server's one pins reader (pinsHub) that every pins stream
// shares: every PinsPollInterval, at once after a change through this
// server and at once when a stream opens; each stream applies its
// principal's view and sends only when its own list changed. A store error
// is sent as a stream-error event, once when failing starts, and the stream
// goes on (the list is sent again once the store answers). The stream holds
// no goroutine of its own beyond the one streamSSE runs it on.
func (s *Server) watchPins(c *gin.Context) {
	st := state(c)
	st.target = "pins"
	if !s.authorize(c, access.ActionProxy, access.Target{Ref: configsvc.Service(configsvc.SystemService)}) {
		return
	}
	p := st.principal
	watch := func(ctx context.Context) source[pinsUpdate] {
		return s.pinsHub.subscribe(ctx, p).source()
	}
	streamSSE(c, s, "pins", watch, nil, func(c *gin.Context, w *sseWriter, u pinsUpdate) (bool, error) {
		if u.err != nil {
			return false, w.event("", api.EventError, s.streamError(c, u.err))
		}
		return false, w.event("", api.EventPins, u.data)
	})
}

// visibleTargets returns the targets (service → instance) whose service p
// may list the instances of.
func (s *Server) visibleTargets(p *access.Principal, targets map[string]string) map[string]string {
	visible := make(map[string]string, len(targets))
	for svc, inst := range targets {
		if s.authz.Decide(p, access.ActionInstances, access.Target{Ref: configsvc.Service(svc)}).Allowed {
			visible[svc] = inst
		}
	}
	return visible
}

// visiblePins returns the pins of all (by record key) that have a target
// p may list the instances of, with only those targets, sorted by key.
func (s *Server) visiblePins(p *access.Principal, all map[string]configsvc.Pin) api.PinsData {
	out := api.PinsData{Pins: []api.PinRecord{}}
	for key, pin := range all {
		visible := s.visibleTargets(p, pin.Targets)
		if len(visible) == 0 {
			continue
		}
		pin.Targets = visible
		pin.Created, pin.Expires = pin.Created.UTC(), pin.Expires.UTC()
		out.Pins = append(out.Pins, api.PinRecord{Hash: key, Pin: pin})
	}
	sort.Slice(out.Pins, func(i, j int) bool { return out.Pins[i].Hash < out.Pins[j].Hash })
	return out
}
