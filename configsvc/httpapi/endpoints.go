package httpapi

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
)

// endpointOpts modify the middleware of one endpoint.
type endpointOpts uint8

const (
	public endpointOpts = 1 << iota // no authentication required
	stream                          // no request timeout: a long-lived event stream
)

// newEngine builds the gin engine: the middleware every request passes
// (observe), the unmatched and wrong-method answers, the operational
// endpoints and the /v1 endpoint table.
func (s *Server) newEngine() (*gin.Engine, error) {
	e := gin.New()
	// Match on the escaped path and decode each name exactly once ourselves
	// (param), so "%2F" stays inside one segment and is refused by the name
	// rules instead of changing which endpoint matches.
	e.UseEscapedPath = true
	e.UnescapePathValues = false
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ForwardedByClientIP = true
	e.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	if err := e.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("httpapi: trusted proxies: %w", err)
	}
	e.Use(s.observe)
	e.NoRoute(s.noRoute)
	e.NoMethod(func(c *gin.Context) {
		s.failf(c, errMethod, "%s is not allowed on %s", c.Request.Method, c.Request.URL.EscapedPath())
	})

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, api.Status{Status: "ok"}) })
	e.GET("/readyz", s.withTimeout, s.readyz)
	e.GET("/metrics", s.metricsHandler)
	s.v1Endpoints(e.Group("/v1"))
	return e, nil
}

// v1Endpoints registers the admin API. Each endpoint names its audit action
// ("" for reads) and gets, before its handler, the request timeout (not on
// streams), authentication (not on public endpoints) and, on an
// authenticated mutating endpoint, the Idempotency-Key check (idempotent).
func (s *Server) v1Endpoints(v1 *gin.RouterGroup) {
	r := func(method, path, action string, h gin.HandlerFunc, opts ...endpointOpts) {
		var o endpointOpts
		for _, x := range opts {
			o |= x
		}
		chain := []gin.HandlerFunc{func(c *gin.Context) { state(c).action = action }}
		if o&stream == 0 {
			chain = append(chain, s.withTimeout)
		}
		if o&public == 0 {
			chain = append(chain, s.authenticate)
			if isMutating(method) {
				chain = append(chain, s.idempotent)
			}
		}
		v1.Handle(method, path, append(chain, h)...)
	}

	r("GET", "/openapi.json", "", s.openapi, public)
	r("POST", "/session", access.ActionSessionOpen, s.openSession, public)
	r("DELETE", "/session", access.ActionSessionClose, s.closeSession)
	r("GET", "/whoami", "", s.whoami)
	r("GET", "/tokens", "", s.listTokens)
	r("POST", "/tokens", "token.create", s.createToken)
	r("DELETE", "/tokens/:id", "token.revoke", s.revokeToken)
	r("GET", "/audit", "", s.queryAudit)
	r("GET", "/pins", "", s.listPins)
	r("GET", "/pins/watch", "", s.watchPins, stream)
	r("POST", "/pins", "pin.create", s.createPin)
	r("DELETE", "/pins/:id", "pin.revoke", s.revokePin)
	r("GET", "/routes", "", s.liveRoutes)
	r("PUT", "/routes/proxies/:id", "proxy.state", s.putProxyState)
	r("DELETE", "/routes/proxies/:id", "proxy.state.delete", s.deleteProxyState)
	r("GET", "/summary/services", "", s.summaryPage(configsvc.KindService))
	r("GET", "/summary/shared", "", s.summaryPage(configsvc.KindGroup))
	r("GET", "/search", "", s.search)
	r("GET", "/policies", "", s.listPolicies)
	r("GET", "/policies/:name", "", s.getPolicy)
	r("PUT", "/policies/:name", "policy.put", s.putPolicy)
	r("DELETE", "/policies/:name", "policy.delete", s.deletePolicy)
	r("GET", "/changes", "", s.inbox)
	r("GET", "/emergencies", "", s.listEmergencies)
	r("POST", "/emergencies/:id/review", "emergency.review", s.reviewEmergency)

	for _, k := range []struct {
		kind   configsvc.Kind
		prefix string
	}{{configsvc.KindService, "/services"}, {configsvc.KindGroup, "/shared"}} {
		kind, base := k.kind, k.prefix+"/:"+paramOf(k.kind)
		r("GET", k.prefix, "", s.listRefs(kind))
		r("GET", base, "", s.getRef(kind))
		r("PUT", base, "create", s.createRef(kind))
		r("DELETE", base, "delete", s.deleteRef(kind))
		r("GET", base+"/files/:file", "", s.getFile(kind))
		r("PUT", base+"/files/:file", "publish", s.putFile(kind))
		r("DELETE", base+"/files/:file", "publish", s.deleteFile(kind))
		r("GET", base+"/revisions", "", s.listRevisions(kind))
		r("POST", base+"/revisions", "publish", s.publish(kind))
		r("GET", base+"/revisions/:n", "", s.getRevision(kind))
		r("GET", base+"/diff", "", s.diff(kind))
		r("POST", base+"/rollback", "rollback", s.rollback(kind))
		r("POST", base+"/datakey", "secret.datakey", s.dataKey(kind))
		r("GET", base+"/snapshot", "", s.snapshot(kind))
		r("GET", base+"/watch", "", s.watch(kind), stream)
		r("GET", base+"/changes", "", s.listChanges(kind))
		r("GET", base+"/changes/:id", "", s.getChange(kind))
		r("POST", base+"/changes/:id/approve", "change.approve", s.reviewChange(kind, approval.EventApproved))
		r("POST", base+"/changes/:id/decline", "change.decline", s.reviewChange(kind, approval.EventDeclined))
		r("POST", base+"/changes/:id/apply", "change.apply", s.applyChange(kind))
		r("POST", base+"/changes/:id/rebase", "change.rebase", s.rebaseChange(kind))
		r("GET", base+"/grays", "", s.listGrays(kind))
		r("POST", base+"/grays", "gray.create", s.createGray(kind))
		r("GET", base+"/grays/:gray", "", s.getGray(kind))
		r("DELETE", base+"/grays/:gray", "gray.abandon", s.abandonGray(kind))
		r("PUT", base+"/grays/:gray/selector", "gray.selector", s.putGraySelector(kind))
		r("POST", base+"/grays/:gray/promote", "gray.promote", s.promoteGray(kind))
		r("POST", base+"/grays/:gray/rollout", "gray.rollout", s.startRollout(kind))
	}
	r("GET", "/shared/:group/users", "", s.users)
	r("GET", "/services/:svc/effective", "", s.effective)
	r("PUT", "/services/:svc/links/:group", "link", s.link(true))
	r("DELETE", "/services/:svc/links/:group", "unlink", s.link(false))
	r("GET", "/services/:svc/instances", "", s.listInstances)
	r("GET", "/services/:svc/instances/watch", "", s.watchInstances, stream)
	r("PUT", "/services/:svc/instances/:id", "instance.register", s.registerInstance)
	r("DELETE", "/services/:svc/instances/:id", "instance.deregister", s.deregisterInstance)
}

func paramOf(k configsvc.Kind) string {
	if k == configsvc.KindGroup {
		return "group"
	}
	return "svc"
}

func (s *Server) noRoute(c *gin.Context) {
	p := c.Request.URL.Path
	if s.cfg.UI != nil && !isAPIPath(p) && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) {
		s.serveUI(c)
		return
	}
	s.failf(c, errNoRoute, "no endpoint %s %s", c.Request.Method, configsvc.Truncate(c.Request.URL.EscapedPath(), 200))
}

func (s *Server) readyz(c *gin.Context) {
	if err := s.cfg.Store.Ping(c.Request.Context()); err != nil {
		s.fail(c, fmt.Errorf("store not reachable: %w", err))
		return
	}
	c.JSON(http.StatusOK, api.Status{Status: "ready"})
}

func (s *Server) metricsHandler(c *gin.Context) {
	if s.metricsHTTP == nil {
		s.failf(c, errNoRoute, "no metrics gatherer configured")
		return
	}
	s.metricsHTTP.ServeHTTP(c.Writer, c.Request)
}
