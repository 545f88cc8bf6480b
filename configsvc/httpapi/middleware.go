package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// reqState is what the middleware and handlers of one request share: the
// request id, the caller, and what the audit entry will say.
type reqState struct {
	id         string
	principal  *access.Principal
	action     string // audit action, e.g. "publish"
	target     string // audit target, e.g. "service/orders/db.yaml"
	service    string // the service or group the target belongs to
	revision   int64  // revision produced
	authorized bool   // the Authorizer allowed the request
	reason     string // why it was refused or failed, as the answer said it
	// err is the error the request failed with, internals and all, for its
	// log line; empty when it did not fail.
	err string
	// askedRev is the revision the request asked for (a file or revision
	// read, a diff, a rollback), for the words of a 404 or 410; 0 if none.
	askedRev int64
	// emergency is the reason of an admin's emergency change past an
	// approval policy, written to the audit entry.
	emergency string
	// routine marks a successful request that changes nothing an operator
	// audits (an instance lease refresh); it writes no audit entry.
	routine bool
	// replayed marks a request answered from the answer kept for its
	// Idempotency-Key: it wrote nothing and writes no audit entry.
	replayed bool
	// code is the error code the request was answered with, if any.
	code string
	// cred is what the caller authenticated with, for event streams to
	// re-check; zero for public endpoints.
	cred credential
}

const stateKey = "sluice.state"

func state(c *gin.Context) *reqState {
	if v, ok := c.Get(stateKey); ok {
		return v.(*reqState)
	}
	st := &reqState{}
	c.Set(stateKey, st)
	return st
}

// observe runs around every request: request id, security headers, then
// after the handler the log line, the metrics and, for a mutating API
// request, the audit entry.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	st := state(c)
	st.id = requestID(c.GetHeader("X-Request-ID"))
	c.Header("X-Request-ID", st.id)
	c.Header("X-Content-Type-Options", "nosniff")
	apiPath := isAPIPath(c.Request.URL.Path)
	if apiPath {
		c.Header("Cache-Control", "no-store")
	}
	c.Next()

	route := c.FullPath()
	if route == "" {
		route = unmatchedRoute
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	s.metrics.observe(route, c.Request.Method, status, elapsed)
	switch status {
	case http.StatusUnauthorized:
		s.metrics.refusals.WithLabelValues(refusedUnauthenticated).Inc()
	case http.StatusForbidden:
		s.metrics.refusals.WithLabelValues(refusedForbidden).Inc()
	}

	actor := ""
	if st.principal != nil {
		actor = st.principal.TokenID
	}
	attrs := []slog.Attr{
		slogStr("method", c.Request.Method),
		slogStr("route", route),
		slogStr("path", configsvc.Truncate(c.Request.URL.EscapedPath(), 256)),
		slogInt("status", status),
		slogDur("duration", elapsed),
		slogInt("bytes", c.Writer.Size()),
		slogStr("client", c.ClientIP()),
		slogStr("request_id", st.id),
		slogStr("actor", actor),
	}
	if st.err != "" {
		// What went wrong inside (the store's error); the answer's message
		// is written for users and points here with the request id.
		attrs = append(attrs, slogStr("error", st.err))
	}
	s.cfg.Logger.LogAttrs(c.Request.Context(), levelFor(status), "request", attrs...)

	if apiPath && isMutating(c.Request.Method) && c.FullPath() != "" && st.action != "" && !(st.routine && status < 400) && !st.replayed {
		s.recordAudit(c, st, status, start)
	}
}

// minAuditTime is the least time an audit write gets, even when the
// request used up its whole timeout.
const minAuditTime = 500 * time.Millisecond

// recordAudit writes the audit entry of a mutating request before the
// response is complete, so no change is acknowledged without its entry. It
// runs on a context detached from the request (which may already be
// canceled), bounded by what is left of the request timeout (at least
// minAuditTime): a hung store delays an answer by at most that much. A
// refused request (not authenticated, or not authorized) goes to the
// refusal sampler instead: anyone can send those, as fast as they like,
// so they are written sampled and apart from the audit log.
func (s *Server) recordAudit(c *gin.Context, st *reqState, status int, start time.Time) {
	e := access.Entry{
		Time:      s.cfg.Now(),
		Actor:     "anonymous",
		Action:    st.action,
		Target:    st.target,
		Service:   st.service,
		Revision:  st.revision,
		Outcome:   access.OutcomeRefused,
		Status:    status,
		Reason:    st.reason,
		Client:    c.ClientIP(),
		RequestID: st.id,
		Emergency: st.emergency,
	}
	if e.Target == "" {
		e.Target = strconv.Quote(configsvc.Truncate(c.Request.URL.EscapedPath(), 200))
	}
	if st.principal != nil {
		e.ActorID, e.Actor = st.principal.TokenID, st.principal.Name
	}
	if st.authorized {
		e.Outcome = access.OutcomeAllowed
		if status < 400 {
			e.Reason = ""
		}
	}
	budget := max(time.Until(start.Add(s.cfg.RequestTimeout)), minAuditTime)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), budget)
	defer cancel()
	var err error
	if e.Outcome == access.OutcomeRefused {
		err = s.refusals.Refused(ctx, e)
	} else {
		_, err = s.audit.Record(ctx, e)
	}
	if err != nil {
		s.metrics.storeErrors.Inc()
		s.cfg.Logger.Error("audit entry not written", "request_id", st.id, "action", e.Action, "target", e.Target, "err", err)
	}
}

// withTimeout bounds the request by Config.RequestTimeout. A mutating
// request keeps minAuditTime of it for its audit entry, so that even with a
// hung store the whole answer arrives within the timeout.
func (s *Server) withTimeout(c *gin.Context) {
	d := s.cfg.RequestTimeout
	if isMutating(c.Request.Method) && d > 2*minAuditTime {
		d -= minAuditTime
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), d)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// Cookie and header names of console sessions.
const (
	SessionCookie = "sluice_session"
	CSRFCookie    = "sluice_csrf"
	CSRFHeader    = "X-Sluice-CSRF"
)

// authenticate resolves the caller from "Authorization: Bearer <token>" or,
// failing that, the console session cookie; a cookie-authenticated
// state-changing request must carry X-Sluice-CSRF. No other header grants
// anything. Unauthenticated requests are answered 401 here.
func (s *Server) authenticate(c *gin.Context) {
	st := state(c)
	var (
		p   *access.Principal
		err error
	)
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			s.failf(c, access.ErrUnauthenticated, "the Authorization header must be \"Bearer <token>\"")
			return
		}
		st.cred = credential{secret: strings.TrimSpace(tok)}
		p, err = s.tokens.Authenticate(c.Request.Context(), st.cred.secret)
	} else if sid, cerr := c.Cookie(SessionCookie); cerr == nil && sid != "" {
		csrf := c.GetHeader(CSRFHeader)
		st.cred = credential{secret: sid, session: true}
		p, err = s.sessions.Authenticate(c.Request.Context(), sid, csrf, isMutating(c.Request.Method))
	} else {
		c.Header("WWW-Authenticate", `Bearer realm="sluice"`)
		s.failf(c, access.ErrUnauthenticated, "authentication required: send \"Authorization: Bearer <token>\"")
		return
	}
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="sluice"`)
		s.fail(c, err)
		return
	}
	st.principal = p
	s.withSecretView(c, p)
	c.Next()
}

// requestID returns the client's X-Request-ID when it is short and plain,
// else a new random one.
func requestID(h string) string {
	if len(h) > 0 && len(h) <= 64 && strings.Trim(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return h
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
