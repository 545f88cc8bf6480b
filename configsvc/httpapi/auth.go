package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// authorize asks the Authorizer and answers 403 when denied. It records the
// decision for the audit entry.
func (s *Server) authorize(c *gin.Context, a access.Action, t access.Target) bool {
	st := state(c)
	d := s.authz.Decide(st.principal, a, t)
	if !d.Allowed {
		st.authorized = false
		st.reason = d.Reason
		s.failf(c, api.ErrForbidden, "%s; ask an admin for a grant that allows it", d.Reason)
		return false
	}
	st.authorized = true
	return true
}

// authorizeRead authorizes reading ref; for a group, services linked to it
// count (their SDKs read it), which costs one store call only when the
// direct grant does not suffice.
func (s *Server) authorizeRead(c *gin.Context, ref configsvc.Ref) bool {
	st := state(c)
	t := access.Target{Ref: ref}
	if ref.Kind == configsvc.KindGroup && !s.authz.Decide(st.principal, access.ActionRead, t).Allowed && !st.principal.IsAdmin() {
		users, err := s.cfg.Store.Users(c.Request.Context(), ref.Name)
		if err != nil && !isNotFound(err) {
			s.fail(c, err)
			return false
		}
		t.Users = users
	}
	return s.authorize(c, access.ActionRead, t)
}

// manage authorizes managing tokens and reading the audit log (admin only).
func (s *Server) manage(c *gin.Context) bool {
	return s.authorize(c, access.ActionManage, access.Target{})
}

func (s *Server) whoami(c *gin.Context) {
	p := state(c).principal
	c.JSON(http.StatusOK, api.Whoami{Admin: p.IsAdmin(), ID: p.TokenID, Name: p.Name, Roles: append([]access.Grant{}, p.Grants...),
		Session: p.Session})
}

func (s *Server) listTokens(c *gin.Context) {
	if !s.manage(c) {
		return
	}
	list, err := s.tokens.List(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]api.Token, len(list))
	for i, t := range list {
		out[i] = api.FromToken(t)
	}
	c.JSON(http.StatusOK, api.TokenList{Tokens: out})
}

func (s *Server) createToken(c *gin.Context) {
	st := state(c)
	st.target = "token"
	if !s.manage(c) {
		return
	}
	var req api.TokenRequest
	if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
		s.fail(c, err)
		return
	}
	ttl, err := access.ParseTokenTTL(req.TTL)
	if err != nil {
		s.fail(c, err)
		return
	}
	var opts []access.TokenOption
	if ttl > 0 {
		opts = append(opts, access.WithTTL(ttl))
	}
	secret, t, err := s.tokens.Create(c.Request.Context(), req.Name, req.Roles, st.principal.TokenID, opts...)
	if err != nil {
		s.fail(c, err)
		return
	}
	st.target = "token/" + t.ID
	out := api.FromToken(t)
	out.Secret = secret
	c.JSON(http.StatusCreated, out)
}

func (s *Server) revokeToken(c *gin.Context) {
	id, err := param(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	st := state(c)
	st.target = "token/" + configsvc.Truncate(id, 12)
	if !s.manage(c) {
		return
	}
	if _, err := s.tokens.Revoke(c.Request.Context(), id); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// queryAudit answers GET /v1/audit?service=&actor=&action=&outcome=&sessions=&since=&limit=&cursor=
// (and the older paging parameters before= and before_sampled=); the
// answer's next is the cursor of the page after it.
func (s *Server) queryAudit(c *gin.Context) {
	if !s.manage(c) {
		return
	}
	q, ok := s.parseAuditQuery(c)
	if !ok {
		return
	}
	entries, err := s.audit.Query(c.Request.Context(), q)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := api.AuditList{Entries: entries}
	if next, ok := q.NextPage(entries); ok {
		out.Next = encodeAuditCursor(next)
	}
	c.JSON(http.StatusOK, out)
}

// auditCursor is where the next page of the audit log starts: below
// Before in the log and below BeforeSampled in the sampled refusals. It
// travels base64url-encoded JSON, which clients treat as opaque.
type auditCursor struct {
	Before        int64 `json:"b"`
	BeforeSampled int64 `json:"s"`
}

func encodeAuditCursor(q access.Query) string {
	b, _ := json.Marshal(auditCursor{Before: q.Before, BeforeSampled: q.BeforeSampled})
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseAuditQuery reads the query of GET /v1/audit; it answers 400 naming
// the parameter when one is bad.
func (s *Server) parseAuditQuery(c *gin.Context) (access.Query, bool) {
	q := access.Query{Service: c.Query("service"), Actor: c.Query("actor"), Action: c.Query("action"), Outcome: c.Query("outcome")}
	bad := func(field, value, msg string) (access.Query, bool) {
		s.fail(c, &configsvc.FieldError{Field: field, Value: configsvc.Truncate(value, 80), Msg: msg})
		return q, false
	}
	if len(q.Action) > 64 || strings.Trim(q.Action, "abcdefghijklmnopqrstuvwxyz.-*?") != "" {
		return bad("action", q.Action, "must be an action (publish, token.create) or a glob of them (token.*), at most 64 characters")
	}
	switch q.Outcome {
	case "", access.OutcomeAllowed, access.OutcomeRefused:
	default:
		return bad("outcome", q.Outcome, "must be allowed or refused")
	}
	switch raw := c.Query("sessions"); raw {
	case "", "false":
	case "true":
		q.Sessions = true
	default:
		return bad("sessions", raw, "must be true or false")
	}
	if q.Service != "" {
		if err := configsvc.ValidateServiceName(q.Service); err != nil {
			s.fail(c, err)
			return q, false
		}
	}
	if len(q.Actor) > access.MaxTokenName {
		return bad("actor", q.Actor, "is longer than any token name or id")
	}
	if raw := c.Query("since"); raw != "" {
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return bad("since", raw, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		q.Since = t
	}
	limit, ok := s.queryInt(c, "limit", 1, access.MaxAuditLimit)
	if !ok {
		return q, false
	}
	before, ok := s.queryInt(c, "before", 0, 1<<62)
	if !ok {
		return q, false
	}
	beforeSampled, ok := s.queryInt(c, "before_sampled", 0, 1<<62)
	if !ok {
		return q, false
	}
	q.Limit, q.Before, q.BeforeSampled = int(limit), before, beforeSampled
	if raw := c.Query("cursor"); raw != "" {
		var k auditCursor
		b, err := base64.RawURLEncoding.DecodeString(raw)
		if err != nil || json.Unmarshal(b, &k) != nil || k.Before < 0 || k.BeforeSampled < 0 {
			return bad("cursor", raw, "is not a cursor of this API; start again from the first page")
		}
		if before != 0 || beforeSampled != 0 {
			return bad("cursor", raw, "replaces before and before_sampled; send only the cursor")
		}
		q.Before, q.BeforeSampled = k.Before, k.BeforeSampled
	}
	return q, true
}

// openSession exchanges a token for a console session: an HttpOnly,
// SameSite=Strict session cookie and a script-readable CSRF cookie whose
// value must be echoed in X-Sluice-CSRF on state-changing requests.
func (s *Server) openSession(c *gin.Context) {
	st := state(c)
	st.target = "session"
	var req api.SessionRequest
	if err := decodeJSON(c, MaxJSONBody, &req); err != nil {
		s.fail(c, err)
		return
	}
	id, csrf, expires, p, err := s.sessions.Open(c.Request.Context(), req.Token)
	var ce *configsvc.CountError
	if errors.As(err, &ce) {
		ce.Setting = settingSessions
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	st.principal, st.authorized = p, true
	secure := c.Request.TLS != nil
	maxAge := int(expires.Sub(s.cfg.Now()) / time.Second)
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(c.Writer, &http.Cookie{Name: CSRFCookie, Value: csrf, Path: "/", MaxAge: maxAge, Secure: secure, SameSite: http.SameSiteStrictMode})
	c.JSON(http.StatusOK, api.Session{Admin: p.IsAdmin(), Expires: expires.UTC(), ID: p.TokenID, Name: p.Name,
		Roles: append([]access.Grant{}, p.Grants...)})
}

// closeSession ends the console session and clears its cookies. A bearer
// caller has no session; the call then only clears cookies.
func (s *Server) closeSession(c *gin.Context) {
	st := state(c)
	st.target, st.authorized = "session", true
	if sid, err := c.Cookie(SessionCookie); err == nil {
		if err := s.sessions.Close(c.Request.Context(), sid); err != nil {
			s.fail(c, err)
			return
		}
	}
	secure := c.Request.TLS != nil
	http.SetCookie(c.Writer, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(c.Writer, &http.Cookie{Name: CSRFCookie, Value: "", Path: "/", MaxAge: -1, Secure: secure, SameSite: http.SameSiteStrictMode})
	c.Status(http.StatusNoContent)
}
