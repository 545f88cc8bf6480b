package httpapi

import (
	"net/http"
	"sort"
	"strings"

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
		visible := make(map[string]string, len(pin.Targets))
		for svc, inst := range pin.Targets {
			if s.authz.Decide(p, access.ActionInstances, access.Target{Ref: configsvc.Service(svc)}).Allowed {
				visible[svc] = inst
			}
		}
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
	c.JSON(http.StatusOK, s.pinJSON(pin))
}
