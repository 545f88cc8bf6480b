package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
	"github.com/sluicehq/sluice/configsvc/secrets"
)

// Errors of the HTTP layer itself; classify maps them like the store's.
// A precondition failure (412) and a refusal (403) use the api package's
// sentinels, which clients match too.
var (
	errUnsupportedMed = errors.New("unsupported media type")
	errNoRoute        = errors.New("no such endpoint")
	errMethod         = errors.New("method not allowed")
)

// classify is the one table that maps errors to an HTTP status and an error
// code. Order matters: the most specific match comes first.
func classify(err error) (int, string) {
	var parseErr *configsvc.ParseError
	var contentErr *configsvc.ContentError
	var notReady *configsvc.NotReadyError
	switch {
	case errors.As(err, &parseErr), errors.As(err, &contentErr) && errors.Is(err, configsvc.ErrInvalid):
		return http.StatusUnprocessableEntity, api.CodeInvalid
	case errors.Is(err, api.ErrPrecondition):
		return http.StatusPreconditionFailed, api.CodePrecondition
	case errors.Is(err, configsvc.ErrOutcomeUnknown):
		return http.StatusServiceUnavailable, api.CodeOutcomeUnknown
	case errors.Is(err, api.ErrInProgress):
		return http.StatusConflict, api.CodeInProgress
	case errors.Is(err, access.ErrKeyReused):
		return http.StatusUnprocessableEntity, api.CodeInvalid
	case errors.Is(err, configsvc.ErrInvalid):
		return http.StatusBadRequest, api.CodeInvalid
	case errors.Is(err, configsvc.ErrNotFound), errors.Is(err, errNoRoute):
		return http.StatusNotFound, api.CodeNotFound
	case errors.As(err, &notReady):
		return http.StatusConflict, api.CodeNotReady
	case errors.Is(err, configsvc.ErrConflict):
		return http.StatusConflict, api.CodeConflict
	case errors.Is(err, configsvc.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, api.CodeTooLarge
	case errors.Is(err, configsvc.ErrTooMany):
		return http.StatusTooManyRequests, api.CodeTooMany
	case errors.Is(err, configsvc.ErrCompacted):
		return http.StatusGone, api.CodeCompacted
	case errors.Is(err, configsvc.ErrRewritten):
		return http.StatusConflict, api.CodeRewritten
	case errors.Is(err, api.ErrBehind):
		return http.StatusServiceUnavailable, api.CodeBehind
	case errors.Is(err, access.ErrCSRF), errors.Is(err, api.ErrForbidden), errors.As(err, new(*approval.Refusal)):
		return http.StatusForbidden, api.CodeForbidden
	case errors.Is(err, access.ErrUnauthenticated):
		return http.StatusUnauthorized, api.CodeUnauthorized
	case errors.Is(err, errUnsupportedMed):
		return http.StatusUnsupportedMediaType, api.CodeMediaType
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, api.CodeMethod
	case errors.Is(err, configsvc.ErrUnavailable), errors.Is(err, configsvc.ErrClosed),
		errors.Is(err, configsvc.ErrLocked), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, secrets.ErrKey):
		return http.StatusServiceUnavailable, api.CodeUnavailable
	}
	return http.StatusInternalServerError, api.CodeInternal
}

// details returns the structured details of err, per docs/architecture.md.
func details(err error) map[string]any {
	var (
		se *configsvc.SchemaError
		pe *configsvc.ParseError
		le *configsvc.LimitError
		ce *configsvc.CountError
		fe *configsvc.FieldError
		nr *configsvc.NotReadyError
		gc *configsvc.GrayConflictError
	)
	switch {
	case errors.As(err, &nr):
		list := make([]map[string]any, len(nr.Instances))
		for i, m := range nr.Instances {
			list[i] = map[string]any{"service": m.Service, "id": m.ID, "status": string(m.Status)}
			if m.Reason != "" {
				list[i]["reason"] = m.Reason
			}
		}
		return map[string]any{"gray": nr.GrayID, "instances": list}
	case errors.As(err, &gc):
		return map[string]any{"file": gc.File, "gray": gc.GrayID}
	case errors.As(err, &se) && len(se.Violations) > 0:
		return violationDetails(se)
	case errors.As(err, &pe):
		return map[string]any{"file": pe.File, "line": pe.Line, "column": pe.Column, "format": string(pe.Format)}
	case errors.As(err, &le):
		d := map[string]any{"limit": le.Limit, "size": le.Size, "what": le.What}
		if le.Unit != "" {
			d["unit"] = le.Unit
		}
		return d
	case errors.As(err, &ce):
		d := map[string]any{"limit": ce.Limit, "count": ce.Count, "what": ce.What}
		if ce.Setting != "" {
			d["setting"] = ce.Setting
		}
		return d
	case errors.As(err, &fe):
		d := map[string]any{"field": fe.Field}
		if fe.File != "" {
			d["file"] = fe.File
		}
		if fe.Line > 0 {
			d["line"] = fe.Line
		}
		return d
	}
	return nil
}

// userError is an error whose message is written for the API's users:
// what failed, naming what it failed on, and what to do about it. fail
// answers with msg; err decides the status (classify) and, with whatever
// internals it carries, goes to the request's log line.
type userError struct {
	msg string
	err error
}

// Error returns the message and the error under it, for logs.
func (e *userError) Error() string { return e.msg + ": " + e.err.Error() }

// Unwrap returns the error under the message.
func (e *userError) Unwrap() error { return e.err }

// userErr returns an error answered with the message format makes of args
// and classified and logged as err.
func userErr(err error, format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...), err: err}
}

// fail answers err in the one JSON error shape, with the request id, and
// aborts the chain. The message is written for users (userMessage); err
// itself, internals and all, goes to the request's log line (observe) with
// the request id, which the answer carries in X-Request-ID and the body.
// 503 (but outcome_unknown), 429 and a key in progress carry Retry-After;
// 5xx are logged at once.
func (s *Server) fail(c *gin.Context, err error) {
	status, code := classify(err)
	st := state(c)
	msg := s.userMessage(c, err, status)
	switch {
	case code == api.CodeOutcomeUnknown:
		// No Retry-After: the write may have been applied, so it is not
		// one to repeat blindly.
		s.metrics.storeErrors.Inc()
		s.cfg.Logger.Warn("write outcome unknown", "request_id", st.id, "err", err)
	case status == http.StatusTooManyRequests, code == api.CodeInProgress:
		c.Header("Retry-After", strconv.Itoa(s.retryAfter))
	case status == http.StatusServiceUnavailable:
		c.Header("Retry-After", strconv.Itoa(s.retryAfter))
		s.metrics.storeErrors.Inc()
		s.cfg.Logger.Warn("store unavailable", "request_id", st.id, "err", err)
	case status >= 500:
		s.cfg.Logger.Error("internal error", "request_id", st.id, "err", err)
	}
	st.code = code
	st.err = configsvc.Truncate(err.Error(), 1000)
	if st.reason == "" {
		st.reason = configsvc.Truncate(msg, 200)
	}
	c.AbortWithStatusJSON(status, api.ErrorBody{Error: &api.Error{Code: code, Message: msg, Details: details(err), RequestID: st.id}})
}

// failf answers the formatted message, classified as sentinel.
func (s *Server) failf(c *gin.Context, sentinel error, format string, args ...any) {
	s.fail(c, userErr(sentinel, format, args...))
}

// userMessage is the one place that words an error for the API's users.
// A message a handler wrote (userError) and the domain's typed errors,
// which name the field, file or limit, are used as they are; for the
// store's sentinel errors, whose text is the store's (package prefixes,
// node paths), the message is written here from the request: the route and
// its names, and, for 404 and 409, one store read that finds which part
// is missing or what the head is now.
func (s *Server) userMessage(c *gin.Context, err error, status int) string {
	var (
		ue *userError
		se *configsvc.SchemaError
		pe *configsvc.ParseError
		le *configsvc.LimitError
		ce *configsvc.CountError
		fe *configsvc.FieldError
		re *approval.Refusal
		nr *configsvc.NotReadyError
		gc *configsvc.GrayConflictError
	)
	switch {
	case status >= 500 && status != http.StatusServiceUnavailable:
		return "internal error; see the server log for request " + state(c).id
	case errors.As(err, &ue):
		return ue.msg
	case errors.As(err, &re):
		return re.Reason
	case errors.As(err, &nr):
		return nr.Error()
	case errors.As(err, &gc):
		return gc.Error() + "; promote or abandon gray " + gc.GrayID + " first, or leave the file out"
	case errors.As(err, &se):
		return se.Error()
	case errors.As(err, &pe):
		return pe.Error()
	case errors.As(err, &le):
		return le.Error()
	case errors.As(err, &ce):
		return ce.Error()
	case errors.As(err, &fe):
		return fe.Error()
	}
	target := targetWords(c)
	switch status {
	case http.StatusServiceUnavailable:
		return s.unavailableMessage(err)
	case http.StatusNotFound:
		return s.notFoundMessage(c)
	case http.StatusConflict:
		return s.conflictMessage(c)
	case http.StatusGone:
		if n := state(c).askedRev; n > 0 {
			return fmt.Sprintf("revision %d of %s was removed by history retention (only the newest revisions are kept); choose a newer one", n, target)
		}
		return fmt.Sprintf("a revision of %s asked for was removed by history retention (only the newest revisions are kept); choose a newer one", target)
	case http.StatusUnauthorized:
		if state(c).cred.session {
			return "your console session has ended (it expired, you signed out, or its token was revoked); sign in again"
		}
		return "the token was not accepted: it is mistyped, revoked or expired; use a valid token (an admin can create one)"
	case http.StatusForbidden:
		if errors.Is(err, access.ErrCSRF) {
			return "this console request lacks the session's CSRF header (" + CSRFHeader + "); reload the page and try again"
		}
		return "you may not do this to " + target + "; ask an admin for a grant that allows it"
	case http.StatusPreconditionFailed:
		return target + " changed since the revision the request was based on (If-Match); reload it and try again"
	case http.StatusUnprocessableEntity:
		return "the content was refused for " + target + "; fix it and publish again"
	}
	return "the request is not valid for " + target
}

// unavailableMessage words a 503.
func (s *Server) unavailableMessage(err error) string {
	retry := fmt.Sprintf("try again in %d s", s.retryAfter)
	switch {
	case errors.Is(err, secrets.ErrKey):
		// The message names the file, its revision and the key id, never a value.
		return err.Error() + " (the server's keyring lacks the key: docs/secrets.md)"
	case errors.Is(err, configsvc.ErrOutcomeUnknown):
		return "the write was sent to the configuration store, but whether it was applied could not be learnt; read the current state (the head, the links) before writing again"
	case errors.Is(err, configsvc.ErrClosed):
		return "the server is shutting down; " + retry + " (another server of the cluster may answer)"
	case errors.Is(err, configsvc.ErrUnavailable), errors.Is(err, configsvc.ErrLocked):
		return "the configuration store cannot be reached right now; " + retry
	}
	return fmt.Sprintf("the request did not finish within the server's deadline of %s; %s", s.cfg.RequestTimeout, retry)
}

// messageReadTimeout bounds the store read a 404 or 409 message makes.
const messageReadTimeout = time.Second

// messageCtx returns a context for the store read of an error message: the
// request's, without its cancellation, bounded by messageReadTimeout (the
// request may have failed because its own deadline passed).
func messageCtx(c *gin.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(c.Request.Context()), messageReadTimeout)
}

// routeRef returns the service or group the request's path names: :svc on
// /v1/services routes, :group on /v1/shared routes.
func routeRef(c *gin.Context) (configsvc.Ref, bool) {
	for _, k := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		name, err := param(c, paramOf(k))
		if err != nil || name == "" {
			continue
		}
		if k == configsvc.KindGroup && !strings.HasPrefix(c.FullPath(), "/v1/shared/") {
			continue // the group of a link route is not the target
		}
		ref := configsvc.Ref{Kind: k, Name: name}
		if ref.Validate() == nil {
			return ref, true
		}
	}
	return configsvc.Ref{}, false
}

// refWords names ref in words: "service orders", "shared group common".
func refWords(ref configsvc.Ref) string {
	if ref.Kind == configsvc.KindGroup {
		return "shared group " + ref.Name
	}
	return "service " + ref.Name
}

// targetWords names what the request is about: its service or group, else
// its path.
func targetWords(c *gin.Context) string {
	if ref, ok := routeRef(c); ok {
		return refWords(ref)
	}
	return configsvc.Truncate(c.Request.URL.EscapedPath(), 120)
}

// notFoundMessage says which part of the request does not exist. For a
// route under a service or group it reads that service's or group's head
// (one store read, on the error path only) to tell a missing service from
// a missing file, revision, link or instance inside it.
func (s *Server) notFoundMessage(c *gin.Context) string {
	route := c.FullPath()
	p := func(name string) string { v, _ := param(c, name); return configsvc.Truncate(v, 130) }
	switch {
	case strings.HasPrefix(route, "/v1/tokens/"):
		return fmt.Sprintf("no token has id %q; GET /v1/tokens lists them", p("id"))
	case strings.HasPrefix(route, "/v1/pins/"):
		return fmt.Sprintf("no pin has id %q; GET /v1/pins lists them", p("id"))
	case strings.HasPrefix(route, "/v1/policies/"):
		return fmt.Sprintf("no approval policy is named %q; GET /v1/policies lists them", p("name"))
	case strings.HasPrefix(route, "/v1/emergencies/"):
		return fmt.Sprintf("no emergency change has id %q; GET /v1/emergencies?all=true lists them", p("id"))
	}
	ref, ok := routeRef(c)
	if !ok {
		return "nothing was found at " + configsvc.Truncate(c.Request.URL.EscapedPath(), 120)
	}
	ctx, cancel := messageCtx(c)
	defer cancel()
	h, err := s.cfg.Store.Head(ctx, ref)
	if isNotFound(err) {
		list := "/v1/services"
		if ref.Kind == configsvc.KindGroup {
			list = "/v1/shared"
		}
		return fmt.Sprintf("%s does not exist; check the name (GET %s lists them)", refWords(ref), list)
	}
	what := refWords(ref)
	newest := ""
	if err == nil {
		newest = fmt.Sprintf(" (its newest revision is %d)", h.Revision)
	}
	asked := state(c).askedRev
	switch {
	case strings.HasSuffix(route, "/files/:file"):
		if h.Revision == 0 && err == nil {
			return fmt.Sprintf("%s has no file %s: nothing is published in it yet", what, p("file"))
		}
		if asked > 0 {
			return fmt.Sprintf("%s has no file %s at revision %d%s", what, p("file"), asked, newest)
		}
		return fmt.Sprintf("%s has no file %s", what, p("file"))
	case strings.HasSuffix(route, "/links/:group"):
		group := configsvc.Group(p("group"))
		if _, err := s.cfg.Store.Head(ctx, group); isNotFound(err) {
			return refWords(group) + " does not exist; check the name (GET /v1/shared lists them)"
		}
		return fmt.Sprintf("%s does not link shared group %s", what, p("group"))
	case strings.HasSuffix(route, "/instances/:id"):
		return fmt.Sprintf("instance %s of %s is not registered (it may have stopped already)", p("id"), what)
	case strings.Contains(route, "/changes/:id"):
		return fmt.Sprintf("%s has no change request %s; GET …/changes?all=true lists them", what, p("id"))
	case strings.Contains(route, "/grays/:gray"):
		return fmt.Sprintf("%s has no gray %s; GET …/grays lists them (only the newest %d ended grays are kept)", what, p("gray"), configsvc.MaxEndedGrays)
	case strings.HasSuffix(route, "/rollback") && asked > 0 && err == nil && asked <= h.Revision:
		return fmt.Sprintf("a file asked for exists neither at revision %d of %s nor at its head; roll back other files", asked, what)
	case asked > 0:
		return fmt.Sprintf("%s has no revision %d%s", what, asked, newest)
	}
	return fmt.Sprintf("what the request names in %s does not exist%s", what, newest)
}

// conflictMessage says what the request conflicts with, reading the
// current state (one store read, on the error path only).
func (s *Server) conflictMessage(c *gin.Context) string {
	route, method := c.FullPath(), c.Request.Method
	ref, ok := routeRef(c)
	if !ok {
		if strings.HasPrefix(route, "/v1/emergencies/") {
			id, _ := param(c, "id")
			return "emergency change " + configsvc.Truncate(id, 130) + " was reviewed already; GET /v1/emergencies?all=true shows by whom"
		}
		return "the request conflicts with the current state; reload and try again"
	}
	what := refWords(ref)
	ctx, cancel := messageCtx(c)
	defer cancel()
	switch {
	case method == http.MethodDelete && route == "/v1/shared/:group":
		users, err := s.cfg.Store.Users(ctx, ref.Name)
		if err == nil && len(users) > 0 {
			return fmt.Sprintf("%s is still linked by %s; unlink it from them first", what, servicesWords(users))
		}
		return what + " is still linked by services; unlink it from them first"
	case method == http.MethodPut && (route == "/v1/services/:svc" || route == "/v1/shared/:group"):
		return what + " cannot be created: an earlier delete of it did not finish; delete it again, then create it"
	case strings.HasSuffix(route, "/links/:group"):
		return what + " changed while the link was being written; try again"
	case strings.Contains(route, "/grays"):
		return s.grayConflictMessage(ctx, c, ref)
	case strings.HasSuffix(route, "/files/:file"), strings.HasSuffix(route, "/revisions"), strings.HasSuffix(route, "/rollback"):
		if h, err := s.cfg.Store.Head(ctx, ref); err == nil {
			return fmt.Sprintf("%s changed since the revision your change is based on: it is at revision %d now; "+
				"reload it, apply your change again and publish", what, h.Revision)
		}
		return what + " changed since the revision your change is based on; reload it, apply your change again and publish"
	}
	return "the request conflicts with the current state of " + what + "; reload and try again"
}

// grayConflictMessage says what a request on the grays of ref conflicts
// with, reading the gray (or, for a creation, the head): a gray that
// ended, a rollout that drives it, a promote with nothing left to
// publish, or a change that raced another.
func (s *Server) grayConflictMessage(ctx context.Context, c *gin.Context, ref configsvc.Ref) string {
	what := refWords(ref)
	id, _ := param(c, "gray")
	if id == "" { // POST …/grays: the base moved
		if h, err := s.cfg.Store.Head(ctx, ref); err == nil {
			return fmt.Sprintf("%s changed since the revision your gray is based on: it is at revision %d now; "+
				"reload it and create the gray again", what, h.Revision)
		}
		return what + " changed since the revision your gray is based on; reload it and create the gray again"
	}
	g, err := s.cfg.Store.Gray(ctx, ref, id)
	switch {
	case err != nil:
		return fmt.Sprintf("gray %s of %s changed while your request was written; reload it and try again", id, what)
	case g.State == configsvc.GrayPromoted:
		return fmt.Sprintf("gray %s of %s was promoted already (revision %d); an ended gray does not change", id, what, g.EndedRevision)
	case g.State != configsvc.GrayActive:
		return fmt.Sprintf("gray %s of %s was %s already; an ended gray does not change", id, what, g.State)
	case g.Rollout.Active():
		return fmt.Sprintf("a rollout drives gray %s of %s (step %d of %d, %v %%, %s); abandon the gray or wait for the rollout to end",
			id, what, g.Rollout.State.Step+1, len(g.Rollout.Steps), g.Rollout.State.Percent, g.Rollout.State.State)
	case strings.HasSuffix(c.FullPath(), "/promote"):
		if h, err := s.cfg.Store.Head(ctx, ref); err == nil && len(configsvc.PromoteChanges(&g, h.Files)) == 0 {
			return fmt.Sprintf("gray %s of %s has nothing left to promote: main deleted every file it deletes already; abandon it", id, what)
		}
	}
	return fmt.Sprintf("gray %s or %s changed while your request was written; reload the gray and try again", id, what)
}

// servicesWords lists service names for a message, at most five.
func servicesWords(names []string) string {
	const most = 5
	out := "service"
	if len(names) > 1 {
		out += "s"
	}
	for i, n := range names {
		if i == most {
			return fmt.Sprintf("%s and %d more", out, len(names)-most)
		}
		if i > 0 {
			out += ","
		}
		out += " " + n
	}
	return out
}

// violationDetails are the details of a schema refusal: the first
// violation's fields (line and column only where the format gives them),
// every violation listed under "violations", and how many more were found
// under "violations_omitted".
func violationDetails(se *configsvc.SchemaError) map[string]any {
	v := se.Violations[0]
	d := map[string]any{"file": v.File, "pointer": v.Pointer, "keyword": v.Keyword, "message": v.Message, "violations": se.Violations}
	if v.Line > 0 {
		d["line"] = v.Line
	}
	if v.Column > 0 {
		d["column"] = v.Column
	}
	if v.Schema != "" {
		d["schema"] = v.Schema
	}
	if se.Omitted > 0 {
		d["violations_omitted"] = se.Omitted
	}
	return d
}
