package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/router"
)

// PinsCollection is the record collection of debug pins, keyed by the
// SHA-256 hex of the pin token (router.HashToken).
const PinsCollection = "pins"

// PinTokenPrefix starts every pin token.
const PinTokenPrefix = "slp_"

// MaxPinTargets bounds the services one pin covers.
const MaxPinTargets = 32

// pinJSON returns the wire form of p with its state now.
func (s *Server) pinJSON(p router.Pin) api.Pin {
	st := api.PinActive
	switch p.Check(s.cfg.Now()) {
	case router.ErrPinRevoked:
		st = api.PinRevoked
	case router.ErrPinExpired:
		st = api.PinExpired
	}
	p.Created, p.Expires = p.Created.UTC(), p.Expires.UTC()
	return api.Pin{Pin: p, State: st}
}

// createPin creates a pin; the caller must hold ActionPin on every target.
func (s *Server) createPin(c *gin.Context) {
	var req api.PinRequest
	if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Targets) == 0 || len(req.Targets) > MaxPinTargets {
		s.fail(c, &configsvc.FieldError{Field: "targets", Msg: fmt.Sprintf("must map 1 to %d services to instance ids", MaxPinTargets)})
		return
	}
	svcs := make([]string, 0, len(req.Targets))
	for svc, id := range req.Targets {
		if err := configsvc.ValidateServiceName(svc); err != nil {
			s.fail(c, err)
			return
		}
		if err := configsvc.ValidateInstanceID(id); err != nil {
			s.fail(c, err)
			return
		}
		svcs = append(svcs, svc)
	}
	sort.Strings(svcs)
	ttl := DefaultPinTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > MaxPinTTL {
			s.fail(c, &configsvc.FieldError{Field: "ttl", Value: req.TTL, Msg: fmt.Sprintf("must be a duration such as \"30m\", at most %s", MaxPinTTL)})
			return
		}
		ttl = d
	}
	if len(req.Note) > 256 || strings.ContainsFunc(req.Note, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		s.fail(c, &configsvc.FieldError{Field: "note", Value: req.Note, Msg: "must be at most 256 printable characters"})
		return
	}
	st := state(c)
	st.target = "pin/" + strings.Join(svcs, ",")
	for _, svc := range svcs {
		if !s.authorize(c, access.ActionPin, access.Target{Ref: configsvc.Service(svc)}) {
			return
		}
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := PinTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	hash := router.HashToken(token)
	now := s.cfg.Now().UTC()
	pin := router.Pin{ID: hash[:12], Targets: req.Targets, Note: req.Note, CreatedBy: st.principal.Name,
		Created: now, Expires: now.Add(ttl)}
	data, _ := json.Marshal(pin)
	if err := s.cfg.Store.Records().Put(c.Request.Context(), PinsCollection, hash, data); err != nil {
		s.fail(c, err)
		return
	}
	st.target = "pin/" + pin.ID
	out := s.pinJSON(pin)
	out.Secret = token
	c.JSON(http.StatusCreated, out)
}

// pins returns every stored pin with its record id.
func (s *Server) pins(ctx context.Context) (map[string]router.Pin, error) {
	recs, err := s.cfg.Store.Records().List(ctx, PinsCollection)
	if err != nil {
		return nil, err
	}
	out := make(map[string]router.Pin, len(recs))
	for _, r := range recs {
		var p router.Pin
		if json.Unmarshal(r.Data, &p) == nil {
			out[r.ID] = p
		}
	}
	return out, nil
}

// listPins lists pins the caller may see: all for admins, else those with
// at least one target the caller may read. Tokens are never listed.
func (s *Server) listPins(c *gin.Context) {
	all, err := s.pins(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	p := state(c).principal
	out := []api.Pin{}
	for _, pin := range all {
		for svc := range pin.Targets {
			if s.authz.Decide(p, access.ActionRead, access.Target{Ref: configsvc.Service(svc)}).Allowed {
				out = append(out, s.pinJSON(pin))
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	c.JSON(http.StatusOK, api.PinList{Pins: out})
}

// revokePin marks a pin revoked; the caller must hold ActionPin on every
// target. Revoked pins stay (the proxy answers "revoked") until they expire.
func (s *Server) revokePin(c *gin.Context) {
	id, err := param(c, "id")
	if err == nil && (len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "") {
		err = &configsvc.FieldError{Field: "id", Value: id, Msg: "must be 12 lowercase hex digits"}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	st := state(c)
	st.target = "pin/" + id
	ctx := c.Request.Context()
	all, err := s.pins(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	for key, pin := range all {
		if pin.ID != id {
			continue
		}
		for svc := range pin.Targets {
			if !s.authorize(c, access.ActionPin, access.Target{Ref: configsvc.Service(svc)}) {
				return
			}
		}
		if !pin.Revoked {
			pin.Revoked, pin.RevokedBy = true, st.principal.Name
			data, _ := json.Marshal(pin)
			if err := s.cfg.Store.Records().Put(ctx, PinsCollection, key, data); err != nil {
				s.fail(c, err)
				return
			}
		}
		c.JSON(http.StatusOK, s.pinJSON(pin))
		return
	}
	s.fail(c, fmt.Errorf("pin %s: %w", id, configsvc.ErrNotFound))
}
