package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// ProxyStateFresh is how recently a proxy must have published its state
// (configsvc.ProxyState, every 5 s by default) for GET /v1/routes to show it
// as live; an older record is listed as stale.
const ProxyStateFresh = 30 * time.Second

// liveRoutes answers GET /v1/routes: the live route tables the proxies
// publish in configsvc.ProxyStateCollection. It needs read access to sluice-system
// (admins, or a grant matching sluice-system): the tables name upstream
// addresses, as routes.yaml and the registry of sluice-system do.
func (s *Server) liveRoutes(c *gin.Context) {
	sys := configsvc.Service(configsvc.SystemService)
	if !s.authorizeRead(c, sys) {
		return
	}
	ctx := c.Request.Context()
	out := api.LiveRoutes{Proxies: []api.ProxyState{}, Stale: []api.StaleProxy{}}
	head, err := s.cfg.Store.Head(ctx, sys)
	switch {
	case err == nil:
		out.Revision = head.Revision
	case !isNotFound(err):
		s.fail(c, err)
		return
	}
	recs, err := s.cfg.Store.Records().List(ctx, configsvc.ProxyStateCollection)
	if err != nil {
		s.fail(c, err)
		return
	}
	registered, err := s.registeredProxies(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	now := s.cfg.Now()
	seen := map[string]bool{}
	for _, rec := range recs {
		st, err := decodeProxyState(rec)
		if err != nil {
			s.cfg.Logger.Warn("proxy state record not readable", "id", rec.ID, "err", err)
			continue
		}
		seen[rec.ID] = true
		_, reg := registered[rec.ID]
		if now.Sub(st.Updated) <= ProxyStateFresh {
			out.Proxies = append(out.Proxies, st)
			continue
		}
		updated := st.Updated
		out.Stale = append(out.Stale, api.StaleProxy{ID: st.ID, Addr: st.Addr, Reason: api.StaleOld, Updated: &updated, Revision: st.Revision, Registered: reg})
	}
	for id, in := range registered {
		if !seen[id] {
			out.Stale = append(out.Stale, api.StaleProxy{ID: id, Addr: in.Addr, Reason: api.StaleUnreported, Registered: true})
		}
	}
	sort.Slice(out.Proxies, func(i, j int) bool { return out.Proxies[i].ID < out.Proxies[j].ID })
	sort.Slice(out.Stale, func(i, j int) bool { return out.Stale[i].ID < out.Stale[j].ID })
	c.JSON(http.StatusOK, out)
}

// registeredProxies returns the proxies registered as instances of
// sluice-system, by instance id.
func (s *Server) registeredProxies(ctx context.Context) (map[string]configsvc.Instance, error) {
	list, err := s.cfg.Store.Instances(ctx, configsvc.SystemService)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	registered := map[string]configsvc.Instance{}
	for _, in := range list {
		if in.Labels[configsvc.ProxyRoleLabel] == configsvc.ProxyRole {
			registered[in.ID] = in
		}
	}
	return registered, nil
}

// decodeProxyState decodes the state a proxy published in rec, with its id,
// its time in UTC and empty lists, not null, for routes and instances.
func decodeProxyState(rec configsvc.Record) (configsvc.ProxyState, error) {
	var st configsvc.ProxyState
	if err := json.Unmarshal(rec.Data, &st); err != nil {
		return st, err
	}
	st.ID = rec.ID
	st.Updated = st.Updated.UTC()
	if st.Routes == nil {
		st.Routes = []configsvc.RouteState{}
	}
	for i := range st.Routes {
		if st.Routes[i].Instances == nil {
			st.Routes[i].Instances = []configsvc.InstanceState{}
		}
	}
	return st, nil
}

// putProxyState answers PUT /v1/routes/proxies/{id}: a proxy that reads
// the store through the API (sluice proxy --server) publishes its live
// state (configsvc.ProxyState) under its instance id of sluice-system, as
// proxies on the store write it in configsvc.ProxyStateCollection. Admins
// and proxies only (access.ActionProxy); a non-admin may not write under
// an id registered in sluice-system by another token (403), so one proxy
// cannot overwrite another's state. The body's id, when set, must be the
// path's. A refresh that succeeds is routine (not audited), as proxies
// publish every few seconds.
func (s *Server) putProxyState(c *gin.Context) {
	id, ok := s.proxyStateParams(c)
	if !ok {
		return
	}
	var st configsvc.ProxyState
	if err := decodeJSON(c, MaxJSONBody, &st); err != nil {
		s.fail(c, err)
		return
	}
	if st.ID != "" && st.ID != id {
		s.fail(c, &configsvc.FieldError{Field: "id", Value: st.ID, Msg: "must match the path"})
		return
	}
	st.ID = id
	data, err := json.Marshal(st)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.cfg.Store.Records().Put(c.Request.Context(), configsvc.ProxyStateCollection, id, data); err != nil {
		s.fail(c, err)
		return
	}
	state(c).routine = true
	c.Status(http.StatusNoContent)
}

// deleteProxyState answers DELETE /v1/routes/proxies/{id}: a proxy
// stopping removes its state. Authorized as putProxyState; 404 when there
// is none.
func (s *Server) deleteProxyState(c *gin.Context) {
	id, ok := s.proxyStateParams(c)
	if !ok {
		return
	}
	if err := s.cfg.Store.Records().Delete(c.Request.Context(), configsvc.ProxyStateCollection, id); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// proxyStateParams validates the proxy id of the path (an instance id),
// records the audit target and authorizes the caller to write that
// proxy's state; on failure the answer is written.
func (s *Server) proxyStateParams(c *gin.Context) (string, bool) {
	id, err := param(c, "id")
	if err == nil {
		err = configsvc.ValidateInstanceID(id)
	}
	if err != nil {
		s.fail(c, err)
		return "", false
	}
	sys := configsvc.Service(configsvc.SystemService)
	state(c).target = sys.String() + "/proxies/" + id
	if !s.authorize(c, access.ActionProxy, access.Target{Ref: sys}) {
		return "", false
	}
	if owner := s.foreignOwner(c, configsvc.SystemService, id); owner != "" {
		st := state(c)
		st.authorized = false
		st.reason = fmt.Sprintf("proxy %s is registered in %s by token %s: only that token or an admin may publish its state", id, configsvc.SystemService, owner)
		s.failf(c, api.ErrForbidden, "%s", st.reason)
		return "", false
	}
	return id, true
}
